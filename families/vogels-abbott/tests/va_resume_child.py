"""Run in a fresh process by test_va_resume: import a saved state, run M iterations, save the export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from hera.kernels import init


def main(folder: Path, m: int) -> None:
    init("cpu")
    from vogels_abbott import CubaParams
    from vogels_abbott.runtime import CubaRuntime

    meta = json.loads((folder / "meta.json").read_text())
    with np.load(folder / "state.npz") as saved:
        arrays = {name: saved[name] for name in saved.files}
    params = CubaParams.model_validate(meta["params"])
    runtime = CubaRuntime(params, meta["seed"], arrays, "cpu", dynamic=True, fused=meta["fused"])
    runtime.step(m)
    np.savez(folder / "after.npz", **runtime.export_state())


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
