"""The body of the Ray actor that hosts one cluster agent on its node (no Ray import here: :mod:`.cluster` wraps it).

The actor does not run a brain itself: it starts the *same* agent runtime a
single machine runs (``python -m hera.agent``, through
:func:`hera.manager.launch.start`) as its child on the node Ray placed it on,
with a node-local runtime directory for its socket, pid-file and status, and
the cached file on the cluster's shared cache path. Control requests reach
the agent through the actor, which holds one connection to the agent's unix
socket. So everything the agent does (saves, autosaves, the file format, the
protocol) is what it does on one machine, and a fix there reaches clusters.

The agent is *tied* to the thread that started it (``PR_SET_PDEATHSIG``): if
the actor's process dies (its node lost, ``ray.kill``), the kernel kills the
agent too, so a restarted actor elsewhere never shares the cached file with
an orphan. The restarted actor simply starts the agent again, which resumes
from the last save (the down's, or the last autosave).
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any


def node_runtime_dir(node_id: str) -> Path:
    """This node's runtime directory for cluster agents: private to the user, one per Ray node.

    One per node, not one per host: a local test cluster runs several Ray
    nodes on one machine, and each must keep its agents' files apart.
    """
    return Path(tempfile.gettempdir()) / f"hera-fleet-{os.getuid()}" / node_id[:16]


class AgentHost:
    """One agent on this node: started at construction (also after a restart), reached through ``request``."""

    def __init__(self, launch_json: str, node_id: str, restarted: bool) -> None:
        from hera.cache.paths import private_dir, runtime_dir
        from hera.manager.files import Launch

        self.node_id = node_id
        self.restarted = restarted
        base = node_runtime_dir(node_id)
        private_dir(base.parent)
        runtime_dir(base, create=True)
        self.launch = Launch.model_validate_json(launch_json).model_copy(
            update={"runtime_dir": base, "log_dir": base / "logs", "daemon": False}
        )
        self.lock = threading.Lock()
        self.client: Any = None
        self.status: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.process: Any = None
        started = threading.Event()
        # The agent is tied to the thread that starts it, so that thread lives as long as the actor does.
        self.keeper = threading.Thread(target=self._keep, args=(started,), name="hera-agent-keeper", daemon=True)
        self.keeper.start()
        started.wait()
        if self.error is not None:
            raise self.error

    def _keep(self, started: threading.Event) -> None:
        from hera.manager import launch as launcher

        try:
            self.process, self.status = launcher.start(self.launch, tied=True)
        except BaseException as exc:  # handed to the constructor, which raises it to Ray (and the controller)
            self.error = exc
            started.set()
            return
        started.set()
        self.process.wait()

    def describe(self) -> dict[str, Any]:
        """Where the agent runs and what it last published (read from its status file, never asked)."""
        from hera.cache.paths import RuntimeFiles
        from hera.manager.files import LiveStatus

        live = LiveStatus.read(RuntimeFiles(self.launch.runtime_dir, self.launch.uuid).status)
        running = self.process is not None and self.process.poll() is None
        return {
            "node": self.node_id,
            "ip": _node_ip(),
            "pid": self.process.pid if self.process is not None else None,
            "up": running,
            "restarted": self.restarted,
            "status": {**live.model_dump(mode="json"), "shown": live.shown} if live is not None and running else None,
        }

    def request(self, op: str, args: dict[str, Any], timeout: float | None = 30.0) -> Any:
        """One control request to the agent, on the connection this actor keeps (opened again if it was lost)."""
        from hera.cache.paths import RuntimeFiles
        from hera.manager.client import AgentClient, AgentGone

        with self.lock:
            for attempt in (1, 2):
                if self.client is None:
                    self.client = AgentClient.unix(RuntimeFiles(self.launch.runtime_dir, self.launch.uuid).socket)
                try:
                    return self.client.request(op, timeout=timeout, **args)
                except AgentGone:
                    self.client.close()
                    self.client = None
                    if attempt == 2 or op == "down":
                        raise
        raise AssertionError("unreachable")

    def down(self) -> dict[str, Any]:
        """Save and stop the agent; the answer once its process has exited (the actor is killed after it)."""
        result = dict(self.request("down", {}, timeout=None))
        if self.process is not None:
            self.process.wait(timeout=60)
        return result


def _node_ip() -> str | None:
    try:
        import ray

        return str(ray.util.get_node_ip_address())
    except Exception:  # noqa: BLE001 - an address is a nicety in a listing
        return None
