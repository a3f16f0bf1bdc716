"""Durable, all-or-nothing file replacement.

The cache holds the only copy of a live agent, so every write goes to a
temporary file beside the target, is fsynced, renamed over the target and the
directory fsynced. A crash at any instant leaves either the old file or the
new one, never a mixture; the temporary is removed on every error path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".hera-tmp-"
#: Longest file name where the filesystem does not say (Linux's NAME_MAX).
NAME_MAX = 255


def previous_path(path: Path) -> Path:
    """Where the previous good version of ``path`` is kept (see ``keep_previous``)."""
    return path.with_name(path.name + ".prev")


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def temporary_path(path: Path) -> Path:
    """A fresh temporary name beside ``path``: ``.hera-tmp-<name>.<random>``, within NAME_MAX.

    The sweepers recognise a temporary by that shape: the cache's reads the
    agent's UUID from the start of ``<name>`` (``<uuid>.json``), an agent's
    own globs ``.hera-tmp-<uuid>.json*``. Cache names are short and always
    get exactly that shape. Only a name too long for it (a legal file name of
    237-255 bytes in a working directory) is shortened: its start is kept, and
    a hash of the whole name keeps two long names' temporaries apart.
    """
    token = secrets.token_hex(4)
    name = f"{TMP_PREFIX}{path.name}.{token}"
    limit = _name_max(path.parent)
    if len(os.fsencode(name)) <= limit:
        return path.parent / name
    digest = hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]
    tail = f"~{digest}.{token}"
    head = path.name
    while head and len(os.fsencode(TMP_PREFIX + head + tail)) > limit:  # by characters: never cuts one in half
        head = head[:-1]
    return path.parent / f"{TMP_PREFIX}{head}{tail}"


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: Path,
    mode: int = 0o644,
    *,
    overwrite: bool = True,
    keep_previous: bool = False,
    verify: Callable[[Path], None] | None = None,
) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only if the block succeeds.

    With ``overwrite=False`` the final step is a hard link instead of a rename,
    so an existing ``path`` (even one created by a racing process meanwhile)
    is never replaced: :class:`FileExistsError` is raised instead.

    ``verify`` is called with the complete, fsynced temporary file before it
    replaces anything; if it raises, nothing is replaced. ``keep_previous``
    first makes the file being replaced ``<path>.prev`` (by a hard link and a
    rename, so at every instant both names hold a complete file).
    """
    path = Path(path)
    directory = path.parent
    tmp = temporary_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    # Held until the temporary is renamed or gone, before its first byte: a sweeper that can take
    # this lock knows the writer is dead (see sweep_abandoned). A separate descriptor, because the
    # writing one is closed before the verify and the rename.
    guard = os.open(tmp, os.O_RDONLY)
    fcntl.flock(guard, fcntl.LOCK_EX)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
        with os.fdopen(fd, "wb", buffering=0, closefd=True) as raw:
            yield raw
            raw.flush()
            os.fsync(raw.fileno())
        if verify is not None:
            verify(tmp)
        if keep_previous and path.exists():
            previous = previous_path(path)
            staging = temporary_path(previous)
            os.link(path, staging)
            os.replace(staging, previous)
            # Where a killed save left .prev and the file as one inode, that rename did nothing (POSIX: two
            # links of one file) and the staging name is still there; otherwise it is gone.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
        fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(guard)


#: A temporary with no byte in it may be one whose writer has not yet taken its lock; left alone this long.
EMPTY_GRACE_SECONDS = 2.0


def sweep_abandoned(directory: Path) -> None:
    """Remove the temporaries in ``directory`` whose writer died (a SIGKILL mid-install, mid-save).

    Needs no lock of the store's, so read-only commands (``agents``) can
    clean up after a killed one: every writer holds an exclusive ``flock`` on
    its temporary from before its first byte until it is renamed (see
    :func:`atomic_write`), and the kernel drops it when the writer dies. So a
    temporary whose lock can be taken has no living writer, unless it is
    still empty and young (created, lock not yet taken). Only the caller's
    own regular files are touched, opened without following links.
    """
    import stat
    import time

    try:
        names = [entry.name for entry in os.scandir(directory) if entry.name.startswith(TMP_PREFIX)]
    except OSError:
        return
    for name in names:
        try:
            fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink > 1:
                continue  # not ours; or a link of a live file (a save's staging name), for the locked sweep
            if info.st_size == 0 and time.time() - info.st_mtime < EMPTY_GRACE_SECONDS:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its writer is alive
            if os.path.samestat(os.stat(directory / name, follow_symlinks=False), info):
                os.unlink(directory / name)
        except OSError:
            continue
        finally:
            os.close(fd)


@contextlib.contextmanager
def inside(directory: int) -> Iterator[Path]:
    """A path that names the open directory ``directory`` itself, for writers that take paths (:func:`atomic_write`).

    Why: a destination in a directory others can change (a shared working
    directory, ``/tmp``) is resolved once, safely, into a descriptor (see
    :func:`hera.destination.destination_directory`); walking its path again to
    write would let a link swapped in meanwhile send the file elsewhere. On
    Linux ``/proc/self/fd/N`` is that directory however its path changes, so
    the temporary, its fsync and the final rename or link all happen in it.
    Where there is no such path the process's working directory is moved to
    the descriptor for the block (and back), which names it just as well.
    """
    proc = Path(f"/proc/self/fd/{directory}")
    try:
        same = os.path.samestat(os.stat(proc), os.fstat(directory))
    except OSError:
        same = False
    if same:
        yield proc
        return
    back = os.open(".", getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    try:
        os.fchdir(directory)
        try:
            yield Path(".")
        finally:
            os.fchdir(back)
    finally:
        os.close(back)
