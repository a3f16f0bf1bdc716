"""Putting a file into a directory another user may be able to change (a shared working directory, /tmp).

``copy -o``, ``uninstall -o`` and ``build -o`` all write where the user
says, and a symbolic link planted on the way must not send the file (or the
only copy of an agent) somewhere else:

* the parents of the name are opened one by one, relative to the working
  directory (or ``/``), each with ``O_NOFOLLOW``; a symbolic link among them
  is followed only if it belongs to the caller or to root, and then its text
  is resolved the same way (at most ``MAX_LINKS`` links);
* the file itself is never followed: it is hard-linked to its name, or its
  bytes are written to a temporary made with ``O_CREAT | O_EXCL | O_NOFOLLOW``
  in that directory, fsynced, and hard-linked to its name, which fails if
  anything (a file, a dangling link) holds the name meanwhile. Nothing is ever
  overwritten or written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hera.errors import Conflict, HeraError
from hera.ownership import MAX_LINKS, trusted_owner, user_name

COPY_CHUNK = 8 << 20
#: The name a temporary copy has until it is complete (short: any legal file name still fits beside it).
TMP_NAME = ".hera-tmp-copy-{}"
#: What to do about a name that is taken, unless a command says otherwise.
TAKEN_HINT = "choose another -o FILE"


@contextlib.contextmanager
def destination_directory(workdir: Path, name: Path, shown: Path) -> Iterator[int]:
    """An open descriptor of the directory ``name`` goes into, reached without a link another user owns."""
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
    if not trusted_owner(found.st_uid):
        raise HeraError(
            f"{shown}: {part} is a symbolic link that belongs to another user ({user_name(found.st_uid)}); "
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
    if text.startswith("/"):
        os.close(fd)
        try:
            fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise HeraError(f"{shown}: cannot open /: {exc.strerror or exc}") from None
    for piece in [p for p in text.split("/") if p not in ("", ".")]:
        fd, links = _step(fd, piece, shown, links)
    return fd, links


@contextlib.contextmanager
def writing(shown: Path, taken_hint: str = TAKEN_HINT) -> Iterator[None]:
    """A write to ``shown`` whose failure is the user's one line: the name taken, or the system's reason."""
    try:
        yield
    except FileExistsError:
        raise Conflict(f"{shown} already exists", hint=taken_hint) from None
    except OSError as exc:
        raise HeraError(f"cannot write {shown}: {exc.strerror or exc}") from None


def refuse_existing(directory: int, final: str, shown: Path, hint: str = TAKEN_HINT) -> None:
    """Refuse before any work is done if the name is taken (by anything, a dangling link included)."""
    try:
        os.stat(final, dir_fd=directory, follow_symlinks=False)
    except OSError:
        return  # free, or unreadable: the write itself names the reason
    raise Conflict(f"{shown} already exists", hint=hint)


def stream_cached(
    cached: Path, directory: int, final: str, shown: Path, *, link: bool = False, progress: Any = None, phase: str = "copy"
) -> None:
    """A down agent's cached file at ``final`` in ``directory`` (the caller holds the store's lock).

    ``link``: hard-link it into place where both are on one file system (no
    byte written; ``uninstall``, which then removes the cached name). Else
    (``copy``, or another file system) the file is streamed through
    :func:`hera.instance.transcribe`: every checksum verified as it passes, a
    few MiB in hand however large the brain, into a temporary made in that
    directory (``O_EXCL``: never through a link), fsynced and linked to its
    name. A damaged cached file is refused with nothing written, rather than
    copied and found out at the next install; the copy is complete or absent,
    and never over anything. ``progress`` (a :class:`hera.progress.Meter`)
    shows the bytes streamed as ``phase``.
    """
    from hera.instance import InstanceFile, transcribe
    from hera.instance.atomic import inside
    from hera.progress import QUIET

    if link:
        try:
            source_dir = os.open(cached.parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise HeraError(f"cannot read {cached}: {exc.strerror or exc}") from None
        try:
            with writing(shown):
                if _linked(source_dir, cached.name, directory, final, shown):
                    return
        finally:
            os.close(source_dir)
    with InstanceFile(cached, follow=False) as opened:
        header, total = opened.header, opened.nbytes
    with writing(shown), (progress or QUIET).phase(phase, total) as moved, inside(directory) as here:
        transcribe(cached, here / final, header, mode=0o600, overwrite=False, follow=False, on_bytes=moved)


def place(
    source_dir: int, source_name: str, directory: int, final: str, shown: Path, *, link: bool, mine: bool
) -> None:
    """Put the source at ``final`` in ``directory``: complete or not at all, never over anything.

    ``link``: a hard link where both are on one file system, else (and
    without ``link``) a copy of the bytes. ``mine``: the source must be a file
    of the caller's (the copy a running agent made in a place only its owner
    reaches, say).
    """
    try:
        source = os.open(source_name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=source_dir)
    except OSError as exc:
        raise HeraError(f"cannot read the agent's copy {source_name}: {exc.strerror or exc}") from None
    try:
        with writing(shown):
            facts = os.fstat(source)
            if not stat.S_ISREG(facts.st_mode) or (mine and facts.st_uid != os.geteuid()):
                raise HeraError(f"{source_name} is not a file of yours; nothing was copied")
            if link and _linked(source_dir, source_name, directory, final, shown):
                return
            _write_copy(source, directory, final, shown)
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
