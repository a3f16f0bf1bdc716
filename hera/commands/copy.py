"""``hera --uuid X copy``: a point-in-time copy of an agent, in the working directory.

The spec: "It is possible to copy the file stored in the local cache, but that
will only be a copy at a specific time, and on the next up the copy and the
original will start to diverge." A copy keeps the agent's UUID; installing or
upping it while the original is installed needs ``--as-new`` (a clone).

Where the copy goes is resolved here, by the controller, and never through
a link another user could have planted (the working directory may be shared):

* the parents of ``-o FILE`` are opened one by one, relative to the working
  directory (or ``/``), each with ``O_NOFOLLOW``; a symbolic link among them
  is followed only if it belongs to the caller or to root, and then its text
  is resolved the same way (at most ``MAX_LINKS`` links);
* the file itself is never followed: the copy is written to a temporary file
  made with ``O_CREAT | O_EXCL | O_NOFOLLOW`` in that directory, fsynced, and
  hard-linked to its name, which fails if anything (a file, a dangling link)
  holds the name meanwhile. Nothing is ever overwritten or written through.

A running agent writes the copy into a directory only its owner reaches (its
cache directory, or its runtime directory) under a name it makes: the
``copy`` request carries no path (docs/protocol.md). This command then moves
it into place: a hard link where the two are on one file system, else a copy
of the bytes; the agent's file is removed either way, and one that a killed
``hera copy`` left behind is removed by the next after an hour.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HELP = "write a point-in-time copy of an agent (running or down) to the working directory"
EXAMPLE = """\
examples:
  hera --uuid 3f2a copy                   # ./<uuid>.<iteration>.json
  hera --callsign brisk-otter copy -o snapshot.json
  hera install snapshot.json --as-new     # a clone: new UUID and callsign, lineage kept

A running agent writes its complete state at the current iteration without
stopping; a down agent's cached file is copied as it is. An existing file is
never overwritten, and a symbolic link is never written through; one in a
parent directory is followed only if it is yours (or root's)."""

#: Symbolic links followed while resolving one -o FILE (the kernel's own limit).
MAX_LINKS = 40
COPY_CHUNK = 8 << 20
#: The name a temporary copy has until it is complete (short: any legal file name still fits beside it).
TMP_NAME = ".hera-tmp-copy-{}"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("copy", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write it")
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.errors import HeraError

    store, agent = target.select(ctx, verb="copy")
    if agent.header is None:
        raise HeraError(f"{agent.path}: the agent's cached file cannot be read", hint="'hera agents' shows its state")
    live = store.liveness(agent.uuid)
    iteration = agent.header.iteration
    if live.up:
        with target.connect(store, agent) as client:
            iteration = int(client.request("status")["iteration"])
    name = ctx.args.output or Path(f"{agent.uuid}.{iteration}.json")
    shown = name if name.is_absolute() else ctx.workdir / name
    with destination_directory(ctx.workdir, name, shown) as directory:
        final = name.name
        refuse_existing(directory, final, shown)
        if live.up:
            with target.connect(store, agent, timeout=None) as client:
                result = client.request("copy", timeout=None)
            iteration = int(result["iteration"])
            with agent_made(store, agent, str(result["path"])) as (source_dir, source_name):
                place(source_dir, source_name, directory, final, shown, agents_own=True)
        else:
            with store.locked():
                copy_cached(agent.path, directory, final, shown)
    ctx.out.write(f"copied {agent.callsign} {agent.uuid} at iteration {iteration} -> {shown}\n")
    return 0


# -- resolving -o FILE without following another user's links ----------------------------------


@contextlib.contextmanager
def destination_directory(workdir: Path, name: Path, shown: Path) -> Iterator[int]:
    """An open descriptor of the directory ``name`` goes into, reached without a link another user owns."""
    from hera.errors import HeraError

    if name.name in ("", ".", "..") or "\0" in str(name):
        raise HeraError(f"{str(shown)!r}: not a file name", hint="give -o FILE, e.g. -o snapshot.json")
    try:
        start = os.open("/" if name.is_absolute() else workdir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise HeraError(f"cannot open {workdir}: {exc.strerror or exc}") from None
    fd = _walk(start, [p for p in name.parent.parts if p != "/"], shown, links=0)  # closes ``start``, even on errors
    try:
        yield fd
    finally:
        os.close(fd)


def _walk(fd: int, parts: list[str], shown: Path, links: int) -> int:
    """Descend from ``fd`` through ``parts``; returns the last directory's descriptor (``fd`` is consumed)."""
    for part in parts:
        if part in ("", "."):
            continue
        fd, links = _step(fd, part, shown, links)
    return fd


def _step(fd: int, part: str, shown: Path, links: int) -> tuple[int, int]:
    """One component: a directory opened with O_NOFOLLOW, or a link that is the caller's (or root's), resolved.

    ``fd`` is consumed: closed on success (the child's descriptor is returned) and on error.
    """
    from hera.errors import HeraError

    try:
        found = os.stat(part, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISLNK(found.st_mode):
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            return child, links
        text = _trusted_link(fd, part, found, shown)
        if links + 1 > MAX_LINKS:
            raise HeraError(f"{shown}: too many levels of symbolic links")
    except HeraError:
        os.close(fd)
        raise
    except OSError as exc:
        os.close(fd)
        why = "a symbolic link was swapped in meanwhile" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise HeraError(f"{shown}: cannot open {part}: {why}") from None
    return _follow(fd, text, shown, links + 1)


def _trusted_link(fd: int, part: str, found: os.stat_result, shown: Path) -> str:
    """The text of a link the caller (or root) owns; another user's link is refused, never followed."""
    from hera.errors import HeraError

    if found.st_uid not in (os.geteuid(), 0):
        raise HeraError(
            f"{shown}: {part} is a symbolic link that belongs to another user (uid {found.st_uid}); "
            "hera does not write through it",
            hint="give a path without it",
        )
    text = os.readlink(part, dir_fd=fd)
    again = os.stat(part, dir_fd=fd, follow_symlinks=False)
    # A link's text never changes, so one that is still the same inode still says what we read.
    if (again.st_ino, again.st_dev) != (found.st_ino, found.st_dev):
        raise HeraError(f"{shown}: {part} changed while hera resolved it", hint="try again")
    return text


def _follow(fd: int, text: str, shown: Path, links: int) -> tuple[int, int]:
    """Resolve a link's text from the directory that holds the link (``fd``, consumed), by the same rules."""
    from hera.errors import HeraError

    if text.startswith("/"):
        os.close(fd)
        try:
            fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise HeraError(f"{shown}: cannot open /: {exc.strerror or exc}") from None
    for piece in [p for p in text.split("/") if p not in ("", ".")]:
        fd, links = _step(fd, piece, shown, links)
    return fd, links


def refuse_existing(directory: int, final: str, shown: Path) -> None:
    """Refuse before any work is done if the name is taken (by anything, a dangling link included)."""
    from hera.errors import Conflict

    try:
        os.stat(final, dir_fd=directory, follow_symlinks=False)
    except OSError:
        return  # free, or unreadable: the write itself names the reason
    raise Conflict(f"{shown} already exists", hint="choose another -o FILE")


# -- the agent's copy, and moving a file into place ---------------------------------------------


def copy_cached(cached: Path, directory: int, final: str, shown: Path) -> None:
    """A down agent's cached file, byte for byte (the caller holds the store's lock)."""
    from hera.errors import HeraError

    try:
        source_dir = os.open(cached.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise HeraError(f"cannot read {cached}: {exc.strerror or exc}") from None
    try:
        place(source_dir, cached.name, directory, final, shown, agents_own=False)
    finally:
        os.close(source_dir)


#: The copies a running agent writes for this command (see ``hera.agent.runner.Runner.op_copy``).
MADE_NAME = r"\.hera-copy\.{uuid}\.\d+\.[0-9a-f]{{8}}"
#: A made copy older than this was left by a ``hera copy`` that was killed: the next one removes it.
STALE_SECONDS = 3600.0


@contextlib.contextmanager
def agent_made(store: Any, agent: Any, path: str) -> Iterator[tuple[int, str]]:
    """The directory and name of the copy the agent made, checked to be one it could have made; removed after.

    It must be in the agent's cache directory or the runtime directory, the
    two places only the owner reaches, under the name the agent gives copies.
    """
    from hera.errors import HeraError

    made = Path(path)
    for where in (agent.path.parent, store.runtime_dir):
        try:
            directory = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        if _same_directory(directory, made.parent) and re.fullmatch(MADE_NAME.format(uuid=re.escape(agent.uuid)), made.name):
            break
        os.close(directory)
    else:
        raise HeraError(f"the agent named {made} as its copy: not a file it could have made; nothing was copied")
    try:
        _sweep_stale(directory, agent.uuid, made.name)
        try:
            yield directory, made.name
        finally:
            with contextlib.suppress(OSError):
                os.unlink(made.name, dir_fd=directory)
    finally:
        os.close(directory)


def _same_directory(fd: int, path: Path) -> bool:
    try:
        one, other = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def _sweep_stale(directory: int, uuid: str, keep: str) -> None:
    """Remove this agent's made copies that a killed ``hera copy`` left behind (never the one in hand)."""
    import time

    pattern = re.compile(MADE_NAME.format(uuid=re.escape(uuid)))
    for name in os.listdir(directory):
        if name == keep or not pattern.fullmatch(name):
            continue
        with contextlib.suppress(OSError):
            if time.time() - os.stat(name, dir_fd=directory, follow_symlinks=False).st_mtime > STALE_SECONDS:
                os.unlink(name, dir_fd=directory)


def place(source_dir: int, source_name: str, directory: int, final: str, shown: Path, *, agents_own: bool) -> None:
    """Put a copy of the source at ``final`` in ``directory``: complete or not at all, never over anything.

    ``agents_own``: the source is the copy a running agent made for this
    command, which must be a file of the caller's and may simply be linked
    into place (it is removed afterwards); otherwise it is a cached file,
    whose bytes are copied.
    """
    from hera.errors import Conflict, HeraError

    try:
        source = os.open(source_name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=source_dir)
    except OSError as exc:
        raise HeraError(f"cannot read the agent's copy {source_name}: {exc.strerror or exc}") from None
    try:
        facts = os.fstat(source)
        if not stat.S_ISREG(facts.st_mode) or (agents_own and facts.st_uid != os.geteuid()):
            raise HeraError(f"{source_name} is not a file of yours; nothing was copied")
        if agents_own and _linked(source_dir, source_name, directory, final, shown):
            return
        _write_copy(source, directory, final, shown)
    except FileExistsError:
        raise Conflict(f"{shown} already exists", hint="choose another -o FILE") from None
    except OSError as exc:
        raise HeraError(f"cannot write {shown}: {exc.strerror or exc}") from None
    finally:
        os.close(source)


def _linked(source_dir: int, source_name: str, directory: int, final: str, shown: Path) -> bool:
    """Hard-link the agent's copy into place where both are on one file system (no second write of a big brain)."""
    try:
        os.link(source_name, final, src_dir_fd=source_dir, dst_dir_fd=directory, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
            return False  # another file system, or links not allowed there: copy the bytes
        raise
    os.fsync(directory)
    return True


def _write_copy(source: int, directory: int, final: str, shown: Path) -> None:
    """Bytes into a temporary made here with O_EXCL|O_NOFOLLOW, fsynced, then linked to its name."""
    tmp = TMP_NAME.format(secrets.token_hex(4))
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=directory)
    try:
        try:
            os.fchmod(out, 0o600)  # the umask must not widen or narrow it
            _copy_bytes(source, out)
            os.fsync(out)
        finally:
            os.close(out)
        os.link(tmp, final, src_dir_fd=directory, dst_dir_fd=directory, follow_symlinks=False)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=directory)
    os.fsync(directory)


def _copy_bytes(source: int, out: int) -> None:
    offset = 0
    while True:
        try:
            done = os.copy_file_range(source, out, COPY_CHUNK, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            done = _copy_chunk(source, out, offset)
        if done == 0:
            return
        offset += done


def _copy_chunk(source: int, out: int, offset: int) -> int:
    data = os.pread(source, COPY_CHUNK, offset)
    view = memoryview(data)
    while view:
        view = view[os.write(out, view) :]
    return len(data)
