"""The body of the Ray actor that hosts one cluster agent on its node (no Ray import here: :mod:`.cluster` wraps it).

The actor does not run a brain itself: it starts the *same* agent runtime a
single machine runs (``python -m hera.agent``, through
:func:`hera.manager.launch.start`) as its child on the node Ray placed it on,
in daemon mode: a node-local private runtime directory for its socket,
pid-file and status, the cached file on the cluster's shared cache path, and
a control port on the node's address whose every message is signed with the
key the owner's controller made (:mod:`hera.fleet.keys`). Controllers talk to
the agent on that port directly, as to a daemon on one machine; the actor
only says where the agent is (:meth:`AgentHost.describe`), sends it real
signals that carry the owner's proof (:meth:`AgentHost.signal`), and waits for
it to exit (:meth:`AgentHost.wait_exit`). So everything the agent does (saves,
autosaves, the file format, the protocol) is what it does on one machine.

The agent is *tied* to the thread that started it (``PR_SET_PDEATHSIG``): if
the actor's process dies (its node lost, ``ray.kill``), the kernel kills the
agent too, so a restarted actor elsewhere never shares the cached file with
an orphan. The restarted actor simply starts the agent again, which resumes
from the last save (the down's, or the last autosave).
"""

from __future__ import annotations

import hmac
import os
import signal as signals
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: How far a signal's timestamp may be from the node's clock (seconds): a proof is good once, and only this long.
SIGNAL_WINDOW = 120.0


def node_runtime_dir(node_id: str) -> Path:
    """This node's runtime directory for cluster agents: private to the user, one per Ray node.

    One per node, not one per host: a local test cluster runs several Ray
    nodes on one machine, and each must keep its agents' files apart.
    """
    return Path(tempfile.gettempdir()) / f"hera-fleet-{os.getuid()}" / node_id[:16]


def signal_proof(key: bytes, uuid: str, signum: int, stamp: float) -> str:
    """What a controller shows to have a real signal sent: the key's HMAC of the agent, the signal and the time."""
    from hera.agent import protocol

    return protocol.sign(key, uuid, 0, f"{signum}\n{stamp!r}", "signal")


class AgentHost:
    """One agent on this node: started at construction (also after a restart), described, signalled, waited for."""

    def __init__(self, launch_json: str, key_hex: str, owner: str, node_id: str, node_ip: str, restarted: bool) -> None:
        from hera.cache.paths import private_dir, runtime_dir
        from hera.manager.files import Launch, write_key

        self.node_id = node_id
        self.node_ip = node_ip
        self.owner = owner
        self.restarted = restarted
        self.key = bytes.fromhex(key_hex)
        self.used: dict[str, float] = {}  # signal proofs already honoured, until they are too old to be taken anyway
        base = node_runtime_dir(node_id)
        private_dir(base.parent)
        runtime_dir(base, create=True)
        launch = Launch.model_validate_json(launch_json)
        key_file = base / f"{launch.uuid}.key"
        write_key(key_file, self.key)  # for the agent: on its argv, the key would be anyone's to read
        self.launch = launch.model_copy(update={"runtime_dir": base, "daemon": True, "tcp_host": node_ip, "key_file": key_file})
        self.lock = threading.Lock()
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
            self.process, _ = launcher.start(self.launch, tied=True)
        except BaseException as exc:  # handed to the constructor, which raises it to Ray (and the controller)
            self.error = exc
            started.set()
            return
        started.set()
        self.process.wait()

    def describe(self) -> dict[str, Any]:
        """Where the agent runs, whose it is and what it last published (read from its status file, never asked)."""
        from hera.cache.paths import RuntimeFiles
        from hera.manager.files import LiveStatus

        live = LiveStatus.read(RuntimeFiles(self.launch.runtime_dir, self.launch.uuid).status)
        running = self.process is not None and self.process.poll() is None
        return {
            "node": self.node_id,
            "ip": self.node_ip,
            "pid": self.process.pid if self.process is not None else None,
            "up": running,
            "exit_code": None if running or self.process is None else self.process.returncode,
            "owner": self.owner,
            "restarted": self.restarted,
            "status": {**live.model_dump(mode="json"), "shown": live.shown} if live is not None and running else None,
        }

    def signal(self, signum: int, stamp: float, proof: str) -> int:
        """Send the agent a real signal, if the proof is the owner's, fresh, and not used before; the agent's pid."""
        from hera.errors import Conflict, HeraError

        expected = signal_proof(self.key, self.launch.uuid, signum, stamp)
        now = time.time()
        with self.lock:
            self.used = {seen: at for seen, at in self.used.items() if now - at < 2 * SIGNAL_WINDOW}
            if not hmac.compare_digest(proof, expected) or abs(now - stamp) > SIGNAL_WINDOW or proof in self.used:
                raise HeraError("the signal's proof is not the owner's (or is stale, or was used before); nothing was sent")
            self.used[proof] = now
            if self.process is None or self.process.poll() is not None:
                raise Conflict(f"agent {self.launch.uuid[:8]} is not up (it went down just now)")
            self.process.send_signal(signals.Signals(signum))  # Popen never signals a pid it has reaped
            return int(self.process.pid)

    def wait_exit(self, timeout: float) -> bool:
        """Whether the agent's process has exited within ``timeout`` seconds (after a down, or a signal that ends it)."""
        import subprocess

        if self.process is None:
            return True
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
