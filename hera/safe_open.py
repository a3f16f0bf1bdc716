"""Open a file for reading only if it is a regular file, and only the very file that was checked.

Opening is already an action, so "open, then fstat, then refuse" is too late:
opening a device runs its driver (an open of ``/dev/watchdog`` arms the
hardware watchdog; ``O_NONBLOCK`` only keeps a FIFO or a tty from hanging),
and opening a FIFO releases whoever waits to write into it. hera reads files
another user may have planted or linked (a family folder's
``pyproject.toml``, an entry in a cache listed as root, ``./hera.json`` in a
shared directory), so every such read goes through :func:`open_regular`:

1. ``lstat`` the path (and ``stat`` it, for a link that may be followed) and
   refuse anything but a regular file, before any open;
2. get hold of the object the path names *without opening it*: on Linux an
   ``O_PATH`` descriptor (no driver's open, no FIFO wake-up), whose ``fstat``
   must show a regular file; elsewhere ``stat`` it by path;
3. open it ``O_RDONLY|O_NONBLOCK|O_NOCTTY|O_CLOEXEC`` (and ``O_NOFOLLOW`` where
   links are not followed): on Linux through ``/proc/self/fd/N`` of that very
   ``O_PATH`` descriptor, so what is opened is what was checked even if the
   path was swapped meanwhile;
4. ``fstat`` the open file and refuse it unless its device and inode are
   those checked (a swap between check and open, on systems without
   ``O_PATH``), and unless the path still names what step 1 saw.

Each caller decides whether a link may be followed (see ``follow``), and may
vet a link before it is followed (``vet_link``), such as by its owner.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

#: ``os.O_PATH`` where the system has it (Linux), else None: then the object is stat'ed by path before the open.
O_PATH: int | None = getattr(os, "O_PATH", None)

#: Flags of every real open: never wait (FIFO), never become a controlling terminal, never leak to children.
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)

_KINDS = {
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFLNK: "symbolic link",
}


class Refused(OSError):
    """:func:`open_regular` would not open the path; ``strerror`` says why, in words fit for one line."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(0, reason, str(path))

    def __str__(self) -> str:
        return str(self.strerror)


class NotRegular(Refused):
    """The path is (or leads to) something other than a regular file; ``kind`` names it ("FIFO", ...)."""

    def __init__(self, path: Path, mode: int, *, followed: bool = True) -> None:
        self.kind = _KINDS.get(stat.S_IFMT(mode), "special file")
        more = "" if followed or not stat.S_ISLNK(mode) else " (links are not followed here)"
        super().__init__(path, f"not a regular file but a {self.kind}{more}")


class Replaced(Refused):
    """What the path names changed between the check and the open: someone swapped it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "changed while it was being opened (replaced by someone else?)")


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _reopen(handle: int, path: Path, nofollow: int) -> int:
    """Open for reading the very object the ``O_PATH`` descriptor ``handle`` holds.

    ``/proc/self/fd/N`` leads to the object itself, not to the path, so a
    swap of the path after the check cannot change what is opened. Without
    ``/proc`` (a bare chroot) the path is opened instead and the caller's
    device/inode comparison catches a swap, after the fact.
    """
    try:
        return os.open(f"/proc/self/fd/{handle}", READ_FLAGS)
    except FileNotFoundError:
        return os.open(path, READ_FLAGS | nofollow)


def open_regular(
    path: Path | str,
    *,
    follow: bool,
    vet_link: Callable[[Path, os.stat_result], None] | None = None,
) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file at ``path``, and its ``fstat``; never opens anything else.

    ``follow``: whether a symbolic link at the last component is followed.
    Say no for a file found in a place another user may write or own (a
    planted folder, a cache listed as root): its link would choose what hera
    reads. ``vet_link`` is called with the link's ``lstat`` before a link is
    followed, and may raise to refuse it (by its owner, say).

    Raises :class:`NotRegular` or :class:`Replaced` (both :class:`Refused`,
    an OSError), or the OSError of the system call that failed
    (FileNotFoundError, PermissionError, ...). A NUL in the path is a
    ValueError, as for :func:`os.open`.
    """
    path = Path(path)
    nofollow = 0 if follow else getattr(os, "O_NOFOLLOW", 0)
    entry = target = os.lstat(path)
    link = stat.S_ISLNK(entry.st_mode)
    if link:
        if not follow:
            raise NotRegular(path, entry.st_mode, followed=False)
        if vet_link is not None:
            vet_link(path, entry)
        target = os.stat(path)
    if not stat.S_ISREG(target.st_mode):
        raise NotRegular(path, target.st_mode)
    if O_PATH is not None:
        handle = os.open(path, O_PATH | os.O_CLOEXEC | nofollow)  # opens no file: only names it
        try:
            held = os.fstat(handle)
            if not stat.S_ISREG(held.st_mode):  # swapped since the stat: still nothing opened
                raise NotRegular(path, held.st_mode, followed=follow)
            fd = _reopen(handle, path, nofollow)
        finally:
            os.close(handle)
    else:
        fd = os.open(path, READ_FLAGS | nofollow)
    try:
        info = os.fstat(fd)
        # The very file checked, and the path still names what was checked: the file, or the link vetted.
        if not stat.S_ISREG(info.st_mode) or not _same(info, target) or (link and not _same(entry, os.lstat(path))):
            raise Replaced(path)
    except BaseException:
        os.close(fd)
        raise
    return fd, info
