"""pid-files of running agents, and whether to believe them.

An up agent has ``<uuid>.pid`` in the runtime directory holding its process
id (so ``kill $(cat …pid)`` works, as the spec promises), and its process is
titled ``hera: <callsign> <uuid8> <family>/<layout>`` by setproctitle.

A pid-file is believed only if the runtime directory is safe (ours, never a
link: :func:`hera.cache.paths.runtime_dir`), the file is a regular file of ours,
its pid is alive, runs as a believed user, started no later than the file was
written, and carries this agent's title; otherwise it is stale (the agent
died, or its pid was reused by another program) and is removed. The spec's
odd case, a pid-file removed while its agent still runs, is found by the
title alone.

Whose processes are believed: a title is a string any local user can set
(``exec -a``), so it names an agent only on a process of the agent's own
user. A user believes only their own processes. Root believes its own and,
for an agent in another user's cache or a system agent installed by a
service account, those of the user who owns the cached file (the only other
user who can read it, so the only one who can run it); never another's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

TITLE_PREFIX = "hera: "
#: A process may start up to this long before writing its pid-file (seconds)
#: and clocks in create times are coarse; beyond that, a younger process is a reused pid.
START_SLACK = 2.0
#: A pid-file is one number and a newline; anything longer is not one.
MAX_PID_FILE = 64


def title(callsign: str, uuid: str, family: str, layout: str) -> str:
    return f"{TITLE_PREFIX}{callsign} {uuid[:8]} {family}/{layout}"


def path(runtime_dir: Path, uuid: str) -> Path:
    from hera.cache.paths import RuntimeFiles  # every runtime file is named in one place

    return RuntimeFiles(runtime_dir, uuid).pid


def write(runtime_dir: Path, uuid: str, pid: int) -> Path:
    """Atomically: a reader never sees an empty or half-written pid-file.

    Through :func:`hera.instance.atomic.atomic_write`: its temporary has a name no one
    can guess and is created exclusively (so never through a planted link),
    and the rename replaces whatever is at the pid-file's name without
    following it.
    """
    from hera.instance.atomic import atomic_write

    target = path(runtime_dir, uuid)
    with atomic_write(target, 0o600) as out:
        out.write(f"{pid}\n".encode())
    return target


def remove(runtime_dir: Path, uuid: str, pid: int) -> None:
    """Remove the pid-file of ``uuid`` if it still names ``pid`` (a later up may have written its own)."""
    with contextlib.suppress(OSError):
        if _read(path(runtime_dir, uuid))[0].split() == [str(pid)]:
            path(runtime_dir, uuid).unlink()


@dataclass(frozen=True)
class Liveness:
    pid: int | None  # the live agent process, if any
    pid_file: bool  # whether a believable pid-file exists
    stale: str | None = None  # why a pid-file was found stale (and removed)

    @property
    def up(self) -> bool:
        return self.pid is not None


def believed_users(file_owner: int | None = None) -> frozenset[int]:
    """The users whose processes may be an agent: ours; as root, also the owner of the agent's cached file."""
    me = os.getuid()
    if me == 0 and file_owner is not None:
        return frozenset({me, file_owner})
    return frozenset({me})


def names_agent(cmdline: list[str], uuid: str) -> bool:
    """Whether a command line is agent ``uuid``'s: its title, or the launch before it titles itself.

    ``hera up`` claims an agent the moment it starts its process, before the
    process has loaded anything; until setproctitle runs, the process is
    ``python -m hera.agent LAUNCH-JSON``, and the launch names the uuid.
    """
    text = " ".join(cmdline)
    if text.startswith(TITLE_PREFIX):
        return f" {uuid[:8]} " in text
    if len(cmdline) >= 4 and cmdline[-3:-1] == ["-m", "hera.agent"]:
        try:
            return json.loads(cmdline[-1]).get("uuid") == uuid
        except (ValueError, AttributeError):
            return False
    return False


def _is_agent(pid: int, uuid: str, users: Collection[int]) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        real, effective, _ = process.uids()
        if real not in users or effective not in users:
            return False  # anyone may title a process so: only a believed user's counts
        return names_agent(process.cmdline(), uuid)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def running_titles() -> dict[str, list[int]]:
    """Short uuid → pids of live processes titled as a hera agent (one scan for many agents).

    A user sees only their own processes here; root sees everyone's, and
    :func:`check` keeps those of the users it believes for each agent.
    """
    import psutil

    me = os.getuid()
    found: dict[str, list[int]] = {}
    for process in psutil.process_iter(["cmdline", "status", "uids"]):
        cmdline = process.info.get("cmdline") or []
        uids = process.info.get("uids")
        if process.info.get("status") == psutil.STATUS_ZOMBIE or not cmdline or uids is None:
            continue
        if me != 0 and (uids.real != me or uids.effective != me):
            continue
        text = " ".join(cmdline)
        if text.startswith(TITLE_PREFIX):
            parts = text.split()
            if len(parts) >= 3:
                found.setdefault(parts[2], []).append(process.pid)
    return found


def _read(target: Path) -> tuple[str, float]:
    """The text and mtime of a pid-file: never through a link, never a FIFO, never another user's file."""
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_uid != os.getuid():
            raise OSError(errno.EPERM, "written by another user")
        return os.read(fd, MAX_PID_FILE).decode("ascii", "replace"), info.st_mtime
    finally:
        os.close(fd)


def check(
    runtime_dir: Path | None,
    uuid: str,
    titles: dict[str, list[int]] | None = None,
    *,
    users: Collection[int] | None = None,
) -> Liveness:
    """Believe, or clean up, the pid-file of ``uuid``; then look for an untracked process.

    ``runtime_dir`` must have passed :func:`hera.cache.paths.runtime_dir` (the
    :class:`hera.cache.store.Store` that owns it checks it once); None means no
    pid-files to look at (it does not exist yet, or another user's agents,
    found by title alone). ``users``: whose processes count (default: ours).
    """
    users = believed_users() if users is None else users
    stale: str | None = None
    if runtime_dir is not None:
        found = _believe(path(runtime_dir, uuid), uuid, users)
        if isinstance(found, Liveness):
            return found
        stale = found
    titles = running_titles() if titles is None else titles
    for orphan in titles.get(uuid[:8], []):
        if _is_agent(orphan, uuid, users):
            return Liveness(pid=orphan, pid_file=False, stale=stale)
    return Liveness(pid=None, pid_file=False, stale=stale)


def _believe(target: Path, uuid: str, users: Collection[int]) -> Liveness | str | None:
    """The agent a pid-file names, or why it is stale (and then it is removed), or None without one."""
    import psutil

    try:
        text, written = _read(target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            stale = "the pid-file is a symbolic link"
        else:
            stale = f"unreadable pid-file ({exc.strerror or exc})"
    else:
        try:
            pid = int(text.split()[0])
        except (ValueError, IndexError):
            stale = "pid-file holds no process id"
        else:
            try:
                process = psutil.Process(pid)
                started = process.create_time()
                if process.status() == psutil.STATUS_ZOMBIE:
                    raise psutil.NoSuchProcess(pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                stale = f"process {pid} is gone"
            else:
                if started > written + START_SLACK or not _is_agent(pid, uuid, users):
                    stale = f"pid {pid} now belongs to another program"
                else:
                    return Liveness(pid=pid, pid_file=True)
    try:
        target.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        stale = f"{stale} (and the pid-file could not be removed)"
    return stale
