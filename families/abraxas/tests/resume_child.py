"""Child process of the bit-exact resume test: load an instance, run M iterations, save it.

Run as ``python resume_child.py IN OUT M``; a fresh interpreter, so nothing
but the file carries state from the parent.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import init_taichi  # noqa: E402
from hera import family as families, instance  # noqa: E402
from hera.runtime import dynamic_header  # noqa: E402


def main(source: str, target: str, iterations: int) -> None:
    init_taichi()
    loaded = instance.load(Path(source))
    rt = families.get(loaded.header.family.name).runtime(loaded.header, loaded.arrays, "cpu")
    rt.step(iterations)
    instance.save(Path(target), dynamic_header(loaded.header, rt), rt.export_state())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
