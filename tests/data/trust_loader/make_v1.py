"""Remake the format-1 abraxas fixtures of tests/test_trust_loader.py with this hera and this abraxas.

Run from the repository root: ``.venv/bin/python tests/data/trust_loader/make_v1.py``.

The loader tests need abraxas brains written in the previous instance format (1), and abraxas refuses
files of an older family version (and files whose params or state arrays are not its own), so the
fixtures must be remade whenever any of those change.
hera writes only the current format, but format 1 differs from it only in the arrays: each entry is
base64 or a fill whose checksum covers its data alone (no name, dtype or shape), and there is no zstd.
That is exactly what hera's codec writes for an unnamed, uncompressed array (a runtime snapshot's), so
each file here is the real one hera wrote, re-encoded entry by entry with the header unchanged:

* ``v1-built-abraxas.json``: ``hera --family abraxas --seed 5 --callsign old-format build``;
* ``v1-lived-abraxas.json``: that agent installed, upped paused, stepped 16,150 iterations unfed,
  fed a line while paused (so ``io.pending`` is queued), downed and uninstalled; without the agent's
  I/O counts (``hera.io``), which hera saved only after format 1 had gone.

``v1-arrays.json`` was written by format 1's own writer and is not remade.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[1]
sys.path.insert(0, str(TESTS))

ITERATIONS = 16_150
#: Arrays hera began to save after format 1 was replaced: a real format-1 file never has them.
NEWER = ("hera.io",)
LINE = "queued while paused\n"


def write_format_1(source: Path, target: Path) -> None:
    """``source`` (any format) re-encoded in format 1: the same header and arrays (less ``NEWER``), data-only checksums."""
    import json

    from hera.instance import load
    from hera.instance.codec import _write_all as write_all, write_array

    instance = load(source)
    head = json.dumps(instance.header.model_dump(mode="json", exclude_none=True), indent=2)
    with target.open("wb") as out:
        write_all(out, f'{{"format": "hera-instance", "format_version": 1,\n"header": {head},\n"arrays": {{'.encode())
        arrays = {name: array for name, array in instance.arrays.items() if name not in NEWER}
        for index, (name, array) in enumerate(arrays.items()):
            write_all(out, (",\n" if index else "\n").encode() + json.dumps(name).encode() + b": ")
            write_array(out, array)  # no name: format 1's checksum; compress=False: base64 or fill
        write_all(out, b"\n}}\n")
    assert load(target).header == instance.header


def main() -> None:
    from agent_helpers import request, wait_up
    from herakit import World

    with tempfile.TemporaryDirectory() as root, World(Path(root)) as world:
        world("--family", "abraxas", "--seed", "5", "--callsign", "old-format", "build", "-o", "built.json", check=True)
        write_format_1(world.workdir / "built.json", HERE / "v1-built-abraxas.json")

        from hera.instance import read_header

        uuid = read_header(world.workdir / "built.json").uuid
        world("install", "built.json", check=True)
        world("--uuid", uuid, "up", "--daemon", "--paused", check=True)
        wait_up(world, uuid)
        request(world, uuid, "step", n=ITERATIONS)
        request(world, uuid, "feed", text=LINE)
        world("--uuid", uuid, "down", check=True)
        world("--uuid", uuid, "uninstall", "-o", "lived.json", check=True)
        write_format_1(world.workdir / "lived.json", HERE / "v1-lived-abraxas.json")


if __name__ == "__main__":
    main()
