"""The agent manager of a cluster agent: the same seam every command goes through, its ends on a Ray cluster.

:class:`ClusterAgentManager` is an :class:`hera.manager.AgentManager` whose
agent runs on some node of a cluster, so ``inspect``, ``signal`` (feeding and
reading included), ``checkpoint``, ``copy``, ``pace`` and ``down`` work on it
unchanged: what is up comes from its actor's description, requests go
straight to the agent's signed control port on its node (the owner's key,
:mod:`hera.fleet.keys`), real signals go through its actor with the owner's
proof, and a down waits for the agent's process through its actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hera.errors import AgentFailed, Conflict, HeraError
from hera.manager.manager import EXIT_TIMEOUT, AgentManager
from hera.progress import QUIET, Meter

if TYPE_CHECKING:
    import subprocess

    from hera.cache.pidfile import Liveness
    from hera.cache.store import Agent, Store
    from hera.manager.client import AgentClient
    from hera.manager.files import Launch, LiveStatus

#: How long one description of the agent is believed (seconds): a status line's refresh asks again.
FRESH = 0.2


class ClusterAgentManager(AgentManager):
    """An installed agent (in the shared cache) whose process, if any, runs on a node of the cluster at ``address``."""

    def __init__(self, store: Store, agent: Agent, address: str) -> None:
        super().__init__(store, agent)
        self.address = address
        self._found: tuple[float, dict[str, Any] | None] | None = None

    def found(self) -> dict[str, Any] | None:
        """Its actor's description; None when the cluster runs no actor for it, or its actor is restarting.

        Kept for :data:`FRESH` seconds, so one command's checks (is it up,
        whose is it, where is its port) cost one round trip through Ray.
        """
        import time

        from hera.errors import NotFound
        from hera.fleet import cluster

        if self._found is not None and time.monotonic() - self._found[0] < FRESH:
            return self._found[1]
        try:
            found = cluster.describe(self.address, self.uuid)
        except NotFound:
            found = None
        self._found = (time.monotonic(), found)
        return found

    def key(self) -> bytes:
        from hera.fleet import keys

        found = self.found()
        return keys.load_key(self.store, self.uuid, found["owner"] if found else None, self.name)

    # -- alive ------------------------------------------------------------------------------------

    def liveness(self, titles: dict[str, list[int]] | None = None) -> Liveness:
        from hera.cache.pidfile import Liveness

        found = self.found()
        return Liveness(pid=found["pid"] if found and found["up"] else None, pid_file=bool(found and found["up"]))

    def require_up(self) -> int:
        pid = self.pid()
        if pid is None:
            raise Conflict(
                f"agent {self.name} is not up on the cluster at {self.address}",
                hint="'hera agents --cluster' lists the agents it runs",
            )
        return pid

    def live_status(self, live: Liveness | None = None) -> LiveStatus | None:
        from hera.manager.files import LiveStatus

        found = self.found()
        status = (found or {}).get("status")
        return LiveStatus.model_validate(status) if status else None

    def files(self) -> None:
        return None  # its runtime files are on its node, private there

    # -- talking ----------------------------------------------------------------------------------

    def client(self, timeout: float | None = 30.0) -> AgentClient:
        from hera.fleet import cluster

        client: AgentClient = cluster.client(self.address, self.uuid, self.key(), timeout)
        return client

    def signal(self, signum: int) -> int:
        from hera.fleet import cluster

        self.require_up()
        return cluster.signal(self.address, self.uuid, self.key(), signum)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, launch: Launch, meter: Meter = QUIET) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        raise HeraError("a cluster agent is started by 'hera up --cluster' (hera.fleet.commands)")

    def shutdown(self, *, timeout: float = EXIT_TIMEOUT, meter: Meter = QUIET) -> dict[str, Any]:
        """Down on its node: it saves to the shared cache and exits; then its actor ends for good and its key goes."""
        from hera.fleet import cluster, keys

        self.require_up()
        self._found = None
        with self.client() as client:
            result = dict(self.following(meter, lambda: client.request("down", timeout=None)))
        if not cluster.finish(self.address, self.uuid, timeout):
            raise AgentFailed(
                f"agent {self.name} saved iteration {result['iteration']} but its process did not exit "
                f"within {timeout:.0f} s",
                hint=f"see 'hera --uuid {self.uuid[:8]} logs --cluster {self.address}'",
            )
        keys.forget(self.store, self.uuid)
        return result
