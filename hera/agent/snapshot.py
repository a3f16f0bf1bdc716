"""Handing a running brain's arrays to a controller without a huge socket message.

The agent writes them as an ordinary instance file (0600) in the private
runtime directory and replies with its path; the controller reads it with the
same codec as any instance, then removes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hera.runtime import Runtime


def write_snapshot(runtime: Runtime, names: Any, runtime_dir: str, uuid: str) -> Path:
    from hera.arrays import write_array
    from hera.atomic import atomic_write

    arrays = runtime.export_state()
    if names:
        unknown = set(names) - arrays.keys()
        if unknown:
            raise ValueError(f"no state array {sorted(unknown)[0]!r}; arrays: {', '.join(sorted(arrays))}")
        arrays = {name: arrays[name] for name in names}
    path = Path(runtime_dir) / f"{uuid}.state.{runtime.iteration}.json"
    with atomic_write(path, 0o600) as out:
        out.write(b'{"iteration": ' + str(runtime.iteration).encode() + b', "arrays": {')
        for index, (name, array) in enumerate(arrays.items()):
            out.write((b", " if index else b"") + f'"{name}": '.encode())
            write_array(out, array)
        out.write(b"}}\n")
    return path


def read_snapshot(path: Path) -> tuple[int, dict[str, Any]]:
    """The iteration and arrays of a snapshot file (removed once read)."""
    import mmap
    import os

    from hera.arrays import ArrayEntry, data_length_hint
    from hera.jsonscan import Scanner

    fd = os.open(path, os.O_RDONLY)
    try:
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as buf:
            document = Scanner(buf, length_hint=data_length_hint).document()
            arrays = {name: ArrayEntry.parse(name, raw).decode(fd, buf) for name, raw in document["arrays"].items()}
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return int(document["iteration"]), arrays
