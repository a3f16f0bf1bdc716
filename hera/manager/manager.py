"""One object per agent that every controller goes through: start, is it alive, signal, ask, wait, shut down.

jupyter_client's ``KernelManager`` pattern. The command line, the hera
shell and ``hera agents`` hold an :class:`AgentManager` and never look at
pid-files, sockets, connection files or processes themselves: how an agent
is found alive (:mod:`hera.cache.pidfile`), reached (:mod:`hera.manager.client`),
started (:mod:`hera.manager.launch`) and waited for lives here once, so a
fix to any of them reaches every command. It never imports the agent
process's own modules, and never Taichi.
"""

from __future__ import annotations

import os
import select
import signal as signals
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hera.errors import AgentFailed, Conflict, HeraError
from hera.progress import QUIET, Meter

if TYPE_CHECKING:
    import subprocess

    from hera.cache.paths import RuntimeFiles
    from hera.cache.pidfile import Liveness
    from hera.cache.store import Agent, Store
    from hera.manager.client import AgentClient
    from hera.manager.files import Launch, LiveStatus

#: How long a shutdown waits for the process to exit once its state is saved (seconds).
EXIT_TIMEOUT = 60.0
#: How often a controller waiting for a long save reads the agent's progress (seconds).
FOLLOW_SECONDS = 0.25
T = TypeVar("T")


class AgentManager:
    """An installed agent and the process that runs it, if one does."""

    def __init__(self, store: Store, agent: Agent) -> None:
        self.store = store
        self.agent = agent

    # -- who --------------------------------------------------------------------------------------

    @property
    def uuid(self) -> str:
        return self.agent.uuid

    @property
    def callsign(self) -> str:
        return self.agent.callsign

    @property
    def name(self) -> str:
        """How messages name it: ``callsign (uuid8)``."""
        return f"{self.callsign} ({self.uuid[:8]})"

    def files(self) -> RuntimeFiles | None:
        """Its files in our runtime directory, checked safe first; None for another user's agent (theirs)."""
        from hera.cache.paths import RuntimeFiles, runtime_dir

        if self.store.runtime_dir is None:
            return None
        directory = runtime_dir(self.store.runtime_dir)
        return RuntimeFiles(directory, self.uuid) if directory is not None else None

    # -- alive ------------------------------------------------------------------------------------

    def liveness(self, titles: dict[str, list[int]] | None = None) -> Liveness:
        return self.store.liveness(self.uuid, titles)

    def is_alive(self) -> bool:
        return self.liveness().up

    def pid(self) -> int | None:
        return self.liveness().pid

    def require_up(self) -> int:
        """Its pid; :class:`Conflict` (wrong state) if it is not up."""
        pid = self.pid()
        if pid is None:
            raise Conflict(f"agent {self.name} is not up")
        return pid

    def live_status(self, live: Liveness | None = None) -> LiveStatus | None:
        """What the agent last published of itself, without asking it (no round trip, whatever its batch).

        Believed only from the process that is up now: a status file that
        names another pid is an earlier run's.
        """
        from hera.manager.files import LiveStatus

        live = self.liveness() if live is None else live
        files = self.files()
        if files is None or live.pid is None or not live.pid_file:
            return None
        status = LiveStatus.read(files.status)
        if status is None or status.pid != live.pid or status.uuid != self.uuid:
            return None
        return status

    # -- talking ----------------------------------------------------------------------------------

    def client(self, timeout: float | None = 30.0) -> AgentClient:
        """A client on the agent's unix socket, in a runtime directory checked first, served by our own process."""
        from hera.manager.client import AgentClient, AgentGone

        files = self.files()
        if files is None:
            raise Conflict(
                f"agent {self.name} has no control socket here",
                hint="only the user who upped it can talk to it",
            )
        try:
            return AgentClient.unix(files.socket, timeout=timeout)
        except AgentGone:
            status = self.live_status()
            if status is not None and status.state == "loading":  # it serves its socket once it is up
                raise Conflict(
                    f"agent {self.name} is still coming up ({status.shown}); it takes requests once it is up",
                    hint="'hera agents' shows how far it is; try again then",
                ) from None
            raise

    def request(self, op: str, *, timeout: float | None = 30.0, **args: Any) -> Any:
        """One request on a connection of its own."""
        with self.client(timeout=timeout) as client:
            return client.request(op, **args)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, launch: Launch, meter: Meter = QUIET) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        """Start its process; return it and the agent's first status once it serves requests.

        Checked and claimed under the store's lock (which destroy and
        uninstall take too), so it never comes up with its cached file gone.
        ``meter`` draws the phases of its load while the controller waits.
        """
        from hera.manager import launch as launcher

        return launcher.start(launch, claim=self.store.claimed(self.agent), meter=meter)

    def following(self, meter: Meter, work: Callable[[], T]) -> T:
        """``work()`` (a request that waits for a long save: down, checkpoint), the agent's phases drawn meanwhile.

        The agent publishes its save's progress in its status file; the
        request's answer comes only at the end. So the request waits on a
        thread of its own while this one reads the status file every
        quarter second. Without a drawn meter it is simply ``work()``.
        """
        if not meter.drawn:
            return work()
        import threading

        from hera.progress import Follower

        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, work()))
            except BaseException as exc:  # handed to the caller's thread as it is
                outcome.append((False, exc))

        worker = threading.Thread(target=run, name="hera-request", daemon=True)
        worker.start()
        with Follower(meter) as follower:
            while worker.is_alive():
                status = self.live_status()
                if status is not None:
                    follower.show(status.phase, status.done, status.total)
                worker.join(FOLLOW_SECONDS)
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def signal(self, signum: int) -> int:
        """Send a real signal to the agent's process, if it is still the agent's when the signal goes; its pid.

        The agent may go down between any two looks at it, and a pid that
        ended may be reused. So the pid is looked up, a pidfd is opened on
        it, the agent is looked up again (the pidfd now holds that very
        process, whatever its number becomes), and the signal goes through
        the pidfd. Where pidfds are missing (Linux before 5.3) plain kill.
        """
        pid = self._up_pid()
        pidfd = -1
        try:
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                raise self._went_down() from None
            except (OSError, AttributeError):
                pidfd = -1  # no pidfds here: the window is the microseconds before kill
            if pidfd >= 0 and self._up_pid() != pid:
                raise self._went_down()
            try:
                if pidfd >= 0:
                    signals.pidfd_send_signal(pidfd, signum)
                else:
                    os.kill(pid, signum)
            except ProcessLookupError:
                raise self._went_down() from None
            except PermissionError:
                raise HeraError(
                    f"cannot signal {self.callsign} (pid {pid}): permission denied",
                    hint="that process is not yours; 'hera agents' shows whether the agent is up",
                ) from None
            except OSError as exc:
                raise HeraError(f"cannot signal {self.callsign} (pid {pid}): {exc.strerror or exc}") from None
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        return pid

    def shutdown(self, *, timeout: float = EXIT_TIMEOUT, meter: Meter = QUIET) -> dict[str, Any]:
        """Down: the agent saves its complete state to the cache and exits; returns once its process has.

        The result is the agent's answer (``iteration``, ``path``): the
        iteration the cache now holds, so nobody reports a stale one.
        ``meter`` draws the save's progress.
        """
        pid = self._up_pid()  # before the down: once it has answered, its pid-file may be gone
        with self.client() as client:
            result = dict(self.following(meter, lambda: client.request("down", timeout=None)))
        if not wait_exit(pid, timeout):
            raise AgentFailed(
                f"agent {self.name} saved iteration {result['iteration']} but its process {pid} "
                f"did not exit within {timeout:.0f} s",
                hint=f"see 'hera --uuid {self.uuid[:8]} logs'",
            )
        return result

    def _up_pid(self) -> int:
        pid = self.pid()
        if pid is None:
            raise self._went_down()
        return pid

    def _went_down(self) -> HeraError:
        return Conflict(f"agent {self.name} is not up (it went down just now)")


def wait_exit(pid: int, timeout: float | None) -> bool:
    """Until process ``pid`` has exited (a zombie counts) or ``timeout`` passed; whether it has.

    One wait for every controller: a pidfd becomes readable when its
    process ends, with no polling; where pidfds are missing, psutil's status
    every 50 ms.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (OSError, AttributeError):
        return _poll_exit(pid, timeout)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)


def _poll_exit(pid: int, timeout: float | None) -> bool:
    import psutil

    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False

