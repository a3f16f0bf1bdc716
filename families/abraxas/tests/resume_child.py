"""Child process of the bit-exact resume test: load an instance, run M iterations, save it.

Run as ``python resume_child.py IN OUT M [ARCH]``; a fresh interpreter, so
nothing but the file carries state from the parent. ``ARCH`` ("cpu" by
default, or "cuda") is where Taichi runs the brain: CPU → file → GPU resume.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import init_taichi  # noqa: E402
from hera import family as families, instance  # noqa: E402
from hera.runtime import dynamic_header  # noqa: E402


def main(source: str, target: str, iterations: int, arch: str = "cpu") -> None:
    init_taichi(arch)
    loaded = instance.load(Path(source))
    rt = families.get(loaded.header.family.name).runtime(loaded.header, loaded.arrays, arch)
    rt.step(iterations)
    instance.save(Path(target), dynamic_header(loaded.header, rt), rt.export_state())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
