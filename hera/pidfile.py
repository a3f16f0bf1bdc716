"""pid-files of running agents, and whether to believe them.

An up agent has ``<uuid>.pid`` in the runtime directory holding its process
id (so ``kill $(cat …pid)`` works, as the spec promises), and its process is
titled ``hera: <callsign> <uuid8> <family>/<layout>`` by setproctitle.

A pid-file is believed only if its pid is alive, started no later than the
file was written, and carries this agent's title; otherwise it is stale (the
agent died, or its pid was reused by another program) and is removed. The
spec's odd case, a pid-file removed while its agent still runs, is found by
the title alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TITLE_PREFIX = "hera: "
#: A process may start up to this long before writing its pid-file (seconds)
#: and clocks in create times are coarse; beyond that, a younger process is a reused pid.
START_SLACK = 2.0


def title(callsign: str, uuid: str, family: str, layout: str) -> str:
    return f"{TITLE_PREFIX}{callsign} {uuid[:8]} {family}/{layout}"


def path(runtime_dir: Path, uuid: str) -> Path:
    return runtime_dir / f"{uuid}.pid"


def write(runtime_dir: Path, uuid: str, pid: int) -> Path:
    """Atomically: a reader never sees an empty or half-written pid-file."""
    target = path(runtime_dir, uuid)
    tmp = target.with_name(f".{target.name}.{pid}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{pid}\n")
    os.replace(tmp, target)
    return target


@dataclass(frozen=True)
class Liveness:
    pid: int | None  # the live agent process, if any
    pid_file: bool  # whether a believable pid-file exists
    stale: str | None = None  # why a pid-file was found stale (and removed)

    @property
    def up(self) -> bool:
        return self.pid is not None


def _titled(pid: int, uuid: str) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        text = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return text.startswith(TITLE_PREFIX) and f" {uuid[:8]} " in text


def running_titles() -> dict[str, int]:
    """Short uuid → pid of every live process titled as a hera agent (one scan for many agents)."""
    import psutil

    found: dict[str, int] = {}
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info.get("cmdline") or []
        if process.info.get("status") == psutil.STATUS_ZOMBIE or not cmdline:
            continue
        text = " ".join(cmdline)
        if text.startswith(TITLE_PREFIX):
            parts = text.split()
            if len(parts) >= 3:
                found[parts[2]] = process.pid
    return found


def check(runtime_dir: Path, uuid: str, titles: dict[str, int] | None = None) -> Liveness:
    """Believe, or clean up, the pid-file of ``uuid``; then look for an untracked process."""
    import psutil

    target = path(runtime_dir, uuid)
    stale: str | None = None
    try:
        text = target.read_text()
        written = target.stat().st_mtime
    except FileNotFoundError:
        text, written = None, 0.0
    except OSError as exc:
        text, written, stale = None, 0.0, f"unreadable pid-file ({exc.strerror})"
    if text is not None:
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
                if started > written + START_SLACK or not _titled(pid, uuid):
                    stale = f"pid {pid} now belongs to another program"
                else:
                    return Liveness(pid=pid, pid_file=True)
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            stale = f"{stale} (and the pid-file could not be removed)"
    titles = running_titles() if titles is None else titles
    orphan = titles.get(uuid[:8])
    if orphan is not None and _titled(orphan, uuid):
        return Liveness(pid=orphan, pid_file=False, stale=stale)
    return Liveness(pid=None, pid_file=False, stale=stale)
