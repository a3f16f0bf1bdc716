"""Starting one agent process and knowing when it is up (the controller's side).

The agent is a fresh interpreter (``python -m hera.agent``), never a fork: a
process that initialised Taichi hangs when forked, and the controller must not
import Taichi at all. It starts in a session of its own so the terminal's
signals and hang-up reach only the controller, which decides what the agent
should do with them. It reports READY or ERROR on a pipe; anything it prints
goes to its log.

Ctrl-C while the agent loads does not abandon it half up, nor leave it
running with nobody watching: the interrupt is noted, passed on to the agent
as SIGINT once it has its handlers (its title says so), and the controller
keeps waiting; the agent comes up in standby, nothing lost, and the status
returned says ``interrupted``.

How long to wait is bounded by progress, not by the clock: the agent
publishes its phases (``read``, ``init``, ``load``, a fresh brain's first
``save``) with bytes done in its status file from the moment it holds its
lock, and the controller waits as long as they move. An agent whose progress
stands still for :data:`STALL_TIMEOUT` seconds (one phase: Taichi's start, a
family's compile, no bytes decoded) is killed; one that dies is noticed at
once (its end of the pipe closes). A 94 GB brain that loads for ten minutes
is waited for; a hung one is not. On a terminal the phases are drawn
(:mod:`hera.progress`) while it waits.

The controller writes the new process's pid-file itself, under the store's
lock, the moment the process exists: so an agent is "up" for every other
command before it opens its cached file, and ``destroy`` or ``uninstall``
can never remove that file from under an agent that is coming up.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from hera import children
from hera.cache import pidfile
from hera.cache.paths import RuntimeFiles
from hera.errors import AgentFailed, HeraError
from hera.manager.files import Launch, LiveStatus, log_path
from hera.progress import QUIET, Follower, Meter

#: How long a coming-up agent may make no progress (no phase begun, no bytes done) before it is killed (seconds).
STALL_TIMEOUT = 120.0
#: How often the controller reads the agent's status file while it waits (seconds): a bar moves within a second.
POLL_SECONDS = 0.25


def start(
    launch: Launch,
    stall: float = STALL_TIMEOUT,
    *,
    claim: AbstractContextManager[Any] | None = None,
    meter: Meter = QUIET,
    tied: bool = False,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start the agent; return its process and first status once it serves requests.

    ``claim`` (the store's lock, see :meth:`hera.cache.store.Store.claimed`) is
    held only while the process is started and its pid-file written for it,
    not while it loads: from then on every command sees the agent as up. A
    Ctrl-C meanwhile (see :class:`Interrupt`) brings it up in standby, with
    ``"interrupted": True`` in the status. ``stall``: see :data:`STALL_TIMEOUT`;
    ``meter`` draws the phases the agent reports. ``tied``: the agent is
    killed by the kernel when the thread that started it ends (a cluster
    actor hosting it, :mod:`hera.fleet.host`): a lost host must never leave
    an orphan writing the same cached file as its restarted successor.
    """
    from hera.cache.paths import private_dir

    # The agent runs elsewhere (its working directory is its log directory, where a
    # core dump of SIGQUIT or SIGABRT lands), so every path it is given is absolute.
    absolute = {name: Path(getattr(launch, name)).absolute() for name in ("cache_path", "runtime_dir", "log_dir", "workdir")}
    private_dir(absolute["log_dir"])
    read_fd, write_fd = os.pipe()
    launch = launch.model_copy(update={"ready_fd": write_fd, **absolute})
    interrupt = Interrupt()
    with interrupt.noting():
        try:
            with claim if claim is not None else contextlib.nullcontext():
                process = _spawn(launch, write_fd, tied)
                interrupt.process = process
                _claim(launch, process)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        try:
            with Follower(meter) as follower:
                status = RuntimeFiles(launch.runtime_dir, launch.uuid).status
                watch = Watch(status, process.pid, follower, log_path(launch.log_dir, launch.uuid))
                line = _read_line(read_fd, process, stall, interrupt, watch)
        except HeraError:
            pidfile.remove(launch.runtime_dir, launch.uuid, process.pid)
            raise
        finally:
            os.close(read_fd)
    word, _, payload = line.partition(" ")
    if word == "READY":
        status = json.loads(payload)
        return process, _standby(launch, status) if interrupt.noted else status
    process.wait(timeout=30)
    pidfile.remove(launch.runtime_dir, launch.uuid, process.pid)  # the claim of a process that never came up
    if word == "ERROR":
        raise AgentFailed(json.loads(payload))  # the agent's own failure: exit status 5
    raise AgentFailed(
        f"the agent process exited ({process.returncode}) before it was up",
        hint=f"see its log: {log_path(launch.log_dir, launch.uuid)}",
    )


class Interrupt:
    """Ctrl-C (SIGINT) while an agent starts: noted here, and passed on to the agent once it can take it.

    The agent notes SIGINT for its loop (standby) from the moment its own
    handlers are in, which its process title shows; before that, SIGINT
    would kill the interpreter as it starts. So the signal waits for the
    title, and the first status after READY is a ``standby`` request in any
    case: the agent never runs a batch with nobody holding it.
    """

    def __init__(self) -> None:
        self.noted = False
        self.passed_on = False
        self.process: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def noting(self) -> Iterator[None]:
        """SIGINT noted instead of raised, while the block runs (only the main thread can catch signals)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _note(self, signum: int, frame: Any) -> None:
        self.noted = True
        self.pass_on()

    def pass_on(self) -> None:
        """SIGINT to the agent, once, if one was noted and the agent has its handlers."""
        process = self.process
        if not self.noted or self.passed_on or process is None or process.poll() is not None:
            return
        if _titled(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
            self.passed_on = True


def _titled(pid: int) -> bool:
    """Whether the agent process has titled itself, which it does once its signal handlers are in."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read(len(pidfile.TITLE_PREFIX)).decode("utf-8", "replace") == pidfile.TITLE_PREFIX
    except OSError:
        import psutil

        try:
            return " ".join(psutil.Process(pid).cmdline()).startswith(pidfile.TITLE_PREFIX)
        except psutil.Error:
            return False


def _standby(launch: Launch, status: dict[str, Any]) -> dict[str, Any]:
    """The interrupted agent put in standby (the SIGINT it was sent may not have reached its loop yet)."""
    from hera.cache.paths import RuntimeFiles
    from hera.manager.client import AgentClient

    with AgentClient.unix(RuntimeFiles(launch.runtime_dir, launch.uuid).socket) as client:
        standby = dict(client.request("standby"))
    kept = {"warning": status["warning"]} if status.get("warning") else {}
    return {**standby, **kept, "interrupted": True}


def _claim(launch: Launch, process: subprocess.Popen[bytes]) -> None:
    """Write the new process's pid-file now, before it has loaded anything (it rewrites the same later)."""
    try:
        pidfile.write(launch.runtime_dir, launch.uuid, process.pid)
    except OSError as exc:
        process.kill()
        process.wait()
        raise HeraError(f"cannot write the pid-file in {launch.runtime_dir}: {exc.strerror or exc}") from None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the thread that forked it ends (Linux ``PR_SET_PDEATHSIG``)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def _spawn(launch: Launch, write_fd: int, tied: bool = False) -> subprocess.Popen[bytes]:
    from hera.devices import child_env

    env = child_env(launch.device)  # on cuda:N, GPU N alone is visible to it, named by its UUID
    log = os.open(log_path(launch.log_dir, launch.uuid), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return subprocess.Popen(
            children.python("-m", "hera.agent", launch.model_dump_json()),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            start_new_session=True,
            cwd=launch.log_dir,
            env=env,
            preexec_fn=_die_with_parent if tied else None,
        )
    finally:
        os.close(log)


class Watch:
    """The coming-up agent's progress, read from its status file: whether it moved, and drawn as it does."""

    def __init__(self, path: Path, pid: int, follower: Follower, log: Path) -> None:
        self.path = path
        self.pid = pid
        self.log = log
        self.follower = follower
        self.seen: tuple[Any, ...] | None = None
        self.follower.show("start")  # at once: the interpreter starting, until the agent reports its first phase

    def moved(self) -> bool:
        """Read the status now: whether it says more than the last time (a new phase, more bytes)."""
        status = LiveStatus.read(self.path)
        if status is None or status.pid != self.pid:
            return False  # not written yet (the interpreter starts), or an earlier run's
        if status.phase is not None:  # between two phases the last bar stays, rather than flicker
            self.follower.show(status.phase, status.done, status.total)
        now = (status.state, status.phase, status.done, status.total)
        moved, self.seen = now != self.seen, now
        return moved

    def where(self) -> str:
        """Where it stood, for the message: `` in phase load at 3.2 GiB of 16.0 GiB``."""
        if self.seen is None:
            return " (it never reported a phase)"
        _, phase, done, total = self.seen
        if phase is None:
            return ""
        from hera.table import human_bytes

        return f" (in phase {phase}" + (f" at {human_bytes(done)} of {human_bytes(total)})" if total else ")")


def _read_line(fd: int, process: subprocess.Popen[bytes], stall: float, interrupt: Interrupt, watch: Watch) -> str:
    """READY or ERROR from the agent, waiting as long as its progress moves (see the module's docstring)."""
    moved = time.monotonic()
    data = b""
    while not data.endswith(b"\n"):
        interrupt.pass_on()
        now = time.monotonic()
        if watch.moved():
            moved = now
        if now - moved > stall:
            process.kill()
            raise HeraError(
                f"the agent made no progress for {stall:.0f} s{watch.where()}; it was killed",
                hint=f"see its log: {watch.log}",
            )
        # Quick turns while an interrupt waits for the agent to take it; select is not cut short by it.
        ready, _, _ = select.select([fd], [], [], 0.05 if interrupt.noted and not interrupt.passed_on else POLL_SECONDS)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()
