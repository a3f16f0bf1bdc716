"""Run vogels-abbott networks in a fresh process, as FOLDER/plan.json says (see va_helpers.run_child).

A fresh process because Taichi has one arch and one thread count per process,
set at its first init: the tests' own process runs on one CPU thread, while
these runs need two threads, a GPU, or a state that came only through a file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import taichi as ti

from hera.kernels import init


def main(folder: Path) -> None:
    plan = json.loads((folder / "plan.json").read_text())
    arch = init(plan["arch"], threads=plan["threads"])
    from va_helpers import play
    from vogels_abbott import CubaParams, VogelsAbbott
    from vogels_abbott.runtime import CubaRuntime

    report: dict = {"arch": arch, "threads": ti.lang.impl.current_cfg().cpu_max_num_threads, "runs": {}}
    for run in plan["runs"]:
        params = CubaParams.model_validate(run["params"])
        if run.get("state"):
            with np.load(folder / run["state"]) as saved:
                arrays = {name: saved[name] for name in saved.files}
        else:
            arrays = dict(VogelsAbbott().build(params, run["seed"]).arrays)
        runtime = CubaRuntime(params, run["seed"], arrays, arch, dynamic=bool(run.get("state")), fused=run.get("fused"))
        played = play(runtime, run["steps"])
        np.savez(folder / f"{run['name']}.npz", **played.state)
        np.savez(folder / f"{run['name']}.log.npz", iterations=played.iterations, neurons=played.neurons)
        report["runs"][run["name"]] = {"results": played.results, "fused": played.fused}
    (folder / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
