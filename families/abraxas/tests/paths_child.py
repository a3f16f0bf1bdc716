"""Child process of the path tests: a fresh brain's :func:`conftest.fingerprint` on each path, as JSON.

Run as ``python paths_child.py ARCH THREADS PATH...``: Taichi is started on
``ARCH`` ("cpu" or "cuda") with ``THREADS`` CPU threads (once per process,
which is why this is a child), and each PATH ("fused" or "parallel") runs a
fresh example brain. Prints ``{path: fingerprint}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import fingerprint, header_for, init_taichi, params_for  # noqa: E402


def main(arch: str, threads: int, paths: list[str]) -> None:
    init_taichi(arch, threads)
    from abraxas import Abraxas

    family, params = Abraxas(), params_for()
    found = {}
    for path in paths:
        # The runtime fuses iterations when told "cpu" and launches one per iteration otherwise,
        # whatever Taichi itself runs on: so both paths run on either arch.
        rt = family.runtime(header_for(params), family.build(params, 7).arrays, "cpu" if path == "fused" else "cuda")
        assert rt.fused == (path == "fused")
        found[path] = fingerprint(rt)
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
