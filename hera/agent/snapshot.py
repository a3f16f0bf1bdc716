"""Handing a running brain's arrays to a controller without a huge socket message.

The agent writes them as an ordinary instance file (0600) in the private
runtime directory and replies with its path; the controller reads it with the
same codec as any instance, then removes it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hera.runtime import Runtime


def write_snapshot(runtime: Runtime, names: Any, runtime_dir: str, uuid: str) -> Path:
    from hera.instance.atomic import atomic_write
    from hera.instance.codec import write_array

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


#: What the agent names a snapshot: the controller reads (and removes) nothing else a reply names.
SNAPSHOT_NAME = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.state\.\d+\.json")


def read_snapshot(path: Path) -> tuple[int, dict[str, Any]]:
    """The iteration and arrays of a snapshot file (removed once read).

    The path comes from a reply, so it is trusted no further than it must
    be: it must carry the name the agent gives snapshots and be a regular
    file of the caller's, opened without following a link, before anything
    is read from it or removed.
    """
    import mmap
    import os
    import stat

    from hera.errors import HeraError
    from hera.instance.codec import ArrayEntry, data_length_hint
    from hera.instance.scanner import Scanner

    path = Path(path)
    if not SNAPSHOT_NAME.fullmatch(path.name):
        raise HeraError(f"{path}: not a snapshot an agent writes; nothing was read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise HeraError(f"cannot read the snapshot {path}: {exc.strerror or exc}") from None
    facts = os.fstat(fd)
    if not stat.S_ISREG(facts.st_mode) or facts.st_uid != os.geteuid():
        os.close(fd)
        raise HeraError(f"{path} is not a snapshot file of yours; nothing was read")
    try:
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as buf:
            document = Scanner(buf, length_hint=data_length_hint).document()
            arrays = {name: ArrayEntry.parse(name, raw).decode(fd, buf) for name, raw in document["arrays"].items()}
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return int(document["iteration"]), arrays
