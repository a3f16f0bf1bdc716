"""Whose a path is, and whether another local user could change it (or what it leads to).

One answer for every place hera must not be steered by another user: the
runtime directory and everything above it (:mod:`hera.cache.paths`), a family
folder before it is imported (:mod:`hera.family`), a settings file
(:mod:`hera.config`). Trusted owners are the caller and root: root can change
anything anyway. Never imports anything heavy; runs on every command.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

#: Symbolic links followed while walking one path before it counts as a loop (Linux's own limit).
MAX_LINKS = 40


def user_name(uid: int) -> str:
    """A uid as people know it, for error lines that say whose a file or process is."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def trusted_owner(uid: int) -> bool:
    """Whether a file or link of ``uid`` may steer the caller: the caller's own, or root's."""
    return uid in (os.geteuid(), 0)


def _private_group(gid: int, uid: int) -> bool:
    """Whether ``gid`` is ``uid``'s own group (the user-private-group scheme, umask 002), so group write is harmless."""
    import grp

    try:
        group, user = grp.getgrgid(gid), pwd.getpwuid(uid)
    except KeyError:
        return False
    return group.gr_name == user.pw_name and user.pw_gid == gid and set(group.gr_mem) <= {user.pw_name}


def others_may_write(info: os.stat_result) -> str | None:
    """Who besides the owner may write to a file or directory, in words, or None.

    A group write bit is harmless when the group is the owner's private one,
    as on systems where every user has their own group and umask 002.
    """
    if info.st_mode & 0o002:
        return "every user"
    if info.st_mode & 0o020 and not _private_group(info.st_gid, info.st_uid):
        import grp

        try:
            return f"group {grp.getgrgid(info.st_gid).gr_name}"
        except KeyError:
            return f"group {info.st_gid}"
    return None


def node_problem(path: Path, info: os.stat_result, *, sticky_ok: bool) -> str | None:
    """Why one file or directory (its ``lstat``, not a link) lets another user change what it holds, if it does.

    ``sticky_ok``: a world-writable directory is harmless when sticky, as
    ``/tmp`` is, since no one else can rename or remove what is ours in it.
    """
    if not trusted_owner(info.st_uid):
        return f"{path} belongs to another user ({user_name(info.st_uid)})"
    writers = others_may_write(info)
    if writers and not (sticky_ok and info.st_mode & stat.S_ISVTX):
        return f"{path} can be changed by other users (writable by {writers})"
    return None


def chain_problem(path: Path, *, missing_ok: bool = False, last_sticky_ok: bool = False) -> str | None:
    """Why another user could swap ``path``, or anything above it, for something of theirs; None if no one could.

    Walked from ``/`` one component at a time, following links by hand, so
    every directory really passed through is looked at (not only the
    resolved path): a link counts by its own owner and then by where it
    leads. Directories above ``path`` may be world-writable only when sticky;
    ``path`` itself only with ``last_sticky_ok``. ``missing_ok``: a component
    that does not exist yet ends the walk (it will be created below what was
    checked) instead of being a problem.
    """
    pending = list(reversed(Path(os.path.abspath(path)).parts[1:]))
    current, links = Path("/"), 0
    problem = node_problem(current, os.lstat(current), sticky_ok=True)
    while pending and problem is None:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            current = current.parent
            continue
        candidate = current / name
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            return None if missing_ok else f"{candidate}: No such file or directory"
        except OSError as exc:
            return f"{candidate}: {exc.strerror or exc}"
        if stat.S_ISLNK(info.st_mode):
            if not trusted_owner(info.st_uid):
                return f"{candidate} is a link made by another user ({user_name(info.st_uid)})"
            links += 1
            if links > MAX_LINKS:
                return f"{path}: too many levels of symbolic links"
            target = Path(os.readlink(candidate))
            if target.is_absolute():
                current = Path("/")
            pending.extend(reversed([part for part in target.parts if part != "/"]))
            continue
        problem = node_problem(candidate, info, sticky_ok=bool(pending) or last_sticky_ok)
        current = candidate
    return problem
