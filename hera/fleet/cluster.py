"""The controller's side of a cluster: connect to Ray, start an agent's actor, find, list and stop them.

Each cluster agent is a detached named actor (named by the agent's uuid, in
the :data:`NAMESPACE` namespace) hosting :class:`hera.fleet.host.AgentHost`.
Ray is imported here only, and only when a command is given a cluster, so
single-machine hera never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hera.errors import Conflict, HeraError, NotFound

if TYPE_CHECKING:
    from hera.cache.pidfile import Liveness

#: The Ray namespace every hera actor lives in.
NAMESPACE = "hera"
#: How often Ray restarts an agent's actor after its node (or process) died.
MAX_RESTARTS = 8
#: Concurrent calls one actor serves: a listing's ``describe`` is answered while a ``down`` saves.
CONCURRENCY = 4
#: Host memory an agent process takes besides its brain (the interpreter, numpy, Taichi's runtime), asked of Ray too.
RUNTIME_BYTES = 512 << 20
#: Resource the actor asks for besides memory and GPUs, so a test can say which nodes may host agents.
AGENT_RESOURCE = "hera_agent"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HeraError(
            "--cluster needs Ray, which is not installed", hint="pip install 'hera[ray]' (or 'ray[default]>=2.9')"
        ) from None
    return ray


def connect(address: str) -> Any:
    """Ray, connected to the cluster at ``address`` in hera's namespace (once per process); one line if it cannot."""
    ray = _ray()
    # Checked every time, not once: a controller that lost the cluster (the hera shell, a --follow) says so in
    # one line, where Ray itself would retry its GCS for a minute and then end the process from C++.
    _reachable(address, timeout=5.0 if not ray.is_initialized() else 2.0)
    if ray.is_initialized():
        return ray
    try:
        ray.init(
            address=address, namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False, configure_logging=False
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HeraError(
            f"cannot reach the Ray cluster at {address}: {first}",
            hint="start it with 'ray start --head' (see docs/cluster.md), or check --cluster / HERA_CLUSTER",
        ) from None
    _quiet_raylet()
    return ray


def _quiet_raylet() -> None:
    """Ray's cluster-wide warnings (a raylet starting many workers...) into hera's log, never into a command's stdout.

    Every driver runs a thread that prints the GCS's error channel to
    *stdout* (``ray._private.worker.listen_error_messages``), whatever
    ``log_to_driver`` says, so ``hera up --json`` would print them before its
    JSON. They are about the cluster, not the command: hera says its own
    errors in one line, and these go to the ``hera.fleet`` logger.
    """
    import logging

    import ray._private.worker as worker

    logger = logging.getLogger("hera.fleet")
    printed = worker.print_to_stdstream

    def logged(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") == "raylet":
            for line in data.get("lines", []):
                logger.info("ray: %s", line)
            return
        printed(data, ignore_prefix)

    worker.print_to_stdstream = logged


def _reachable(address: str, timeout: float = 5.0) -> None:
    """One TCP connect to the cluster's GCS first: Ray itself retries an absent cluster for a minute, logging as it goes."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in address:
        return  # "auto", a ray:// client address: left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise HeraError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
            hint="start it with 'ray start --head' (see docs/cluster.md), or check --cluster / HERA_CLUSTER",
        ) from None


def _actor_class(ray: Any) -> Any:
    from hera.fleet.host import AgentHost

    class HeraAgent(AgentHost):
        """AgentHost told where it runs and whether Ray restarted it (Ray's context, read on its node)."""

        def __init__(self, launch_json: str, key_hex: str, owner: str) -> None:
            context = ray.get_runtime_context()
            super().__init__(
                launch_json, key_hex, owner, context.get_node_id(), ray.util.get_node_ip_address(),
                context.was_current_actor_reconstructed,
            )

    return ray.remote(HeraAgent)


def start(address: str, launch_json: str, uuid: str, *, key: bytes, owner: str, host_bytes: int, gpus: float) -> Any:
    """Create the agent's actor with the resources its family's estimate asks for (it comes up meanwhile: :func:`ready`).

    The caller has made room for it first (:func:`vacate`); an actor of the
    same name started meanwhile makes Ray refuse this one.
    """
    ray = connect(address)
    options: dict[str, Any] = {
        "name": uuid,
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "max_restarts": MAX_RESTARTS,
        "max_concurrency": CONCURRENCY,
        "num_cpus": 0,
        "resources": {AGENT_RESOURCE: 0.001},
        "memory": int(host_bytes) + RUNTIME_BYTES,
        # Spread, not packed (Ray's default fills one node first): agents share a node's cores and memory
        # bandwidth, and a lost node should take as few of them as it can.
        "scheduling_strategy": "SPREAD",
    }
    if gpus:
        options["num_gpus"] = gpus
    if not _fits_somewhere(ray, options):
        raise HeraError(
            f"no node of the cluster at {address} has room for agent {uuid[:8]} "
            f"({options['memory'] / 2**30:.2f} GiB host memory{', a GPU' if gpus else ''})",
            hint="'ray status' shows what each node has free; add a node or down another agent",
        )
    try:
        actor = _actor_class(ray).options(**options).remote(launch_json, key.hex(), owner)
    except ValueError:  # the name is taken: another up of the same agent won the race
        raise Conflict(f"agent {uuid[:8]} is already up on the cluster at {address}") from None
    return actor


def ready(address: str, uuid: str, actor: Any, timeout: float = 600.0) -> dict[str, Any]:
    """The agent's description once its actor has started it (its brain loaded); one line, the actor gone, if it failed."""
    ray = connect(address)
    try:
        return dict(ray.get(actor.describe.remote(), timeout=timeout))
    except Exception as exc:  # noqa: BLE001 - Ray wraps the agent's own failure; one line, the actor gone
        ray.kill(actor, no_restart=True)
        raise HeraError(f"agent {uuid[:8]} did not come up on the cluster: {_cause(exc)}") from None


def vacate(address: str, uuid: str) -> None:
    """Before an up: a :class:`Conflict` if the agent is up on the cluster; an actor whose agent exited is removed."""
    ray = connect(address)
    try:
        old = ray.get_actor(uuid)
    except ValueError:
        return
    found = describe(address, uuid)
    if found is None or found["up"]:
        raise Conflict(f"agent {uuid[:8]} is already up on the cluster at {address}")
    ray.kill(old, no_restart=True)  # its agent was killed or crashed: the cached file holds its last save
    _until_gone(ray, uuid)


def _until_gone(ray: Any, uuid: str, timeout: float = 30.0) -> None:
    """Until the name of a killed actor is free again (Ray frees it a moment after the kill)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get_actor(uuid)
        except ValueError:
            return
        time.sleep(0.1)


def _fits_somewhere(ray: Any, options: dict[str, Any]) -> bool:
    """Whether some live node has the resources at all (Ray would otherwise wait for ever, silently)."""
    wanted = {"memory": options.get("memory", 0), "GPU": options.get("num_gpus", 0), AGENT_RESOURCE: 0.001}
    for node in ray.nodes():
        if node.get("Alive") and all(node["Resources"].get(key, 0) >= need for key, need in wanted.items() if need):
            return True
    return False


def _cause(exc: BaseException) -> str:
    """The first line of what really failed, under Ray's wrappers."""
    cause = getattr(exc, "cause", None) or exc
    message = getattr(cause, "message", None) or str(cause)
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(cause).__name__


def handle(address: str, uuid: str) -> Any:
    """The actor of agent ``uuid``; :class:`NotFound` if the cluster runs no such agent."""
    ray = connect(address)
    try:
        return ray.get_actor(uuid)
    except ValueError:
        raise NotFound(f"agent {uuid[:8]} is not up on the cluster at {address}", hint="'hera agents --cluster' lists them") from None


def running(address: str) -> list[str]:
    """The uuids of the agents this cluster hosts (the named actors in hera's namespace)."""
    ray = connect(address)
    return sorted(entry["name"] for entry in ray.util.list_named_actors(all_namespaces=True) if entry["namespace"] == NAMESPACE)


def describe(address: str, uuid: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """Where agent ``uuid`` runs and its published status; None while its actor is (re)starting."""
    ray = connect(address)
    try:
        return dict(ray.get(handle(address, uuid).describe.remote(), timeout=timeout))
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
        return None


def client(address: str, uuid: str, key: bytes, timeout: float | None = 30.0) -> Any:
    """A signed connection to the agent's own control port on its node: no Ray in the path of a request."""
    import socket

    from hera.manager.client import AgentClient, AgentGone

    found = describe(address, uuid)
    if found is None:
        raise Conflict(f"agent {uuid[:8]} is restarting on the cluster at {address}", hint="try again in a few seconds")
    port = (found.get("status") or {}).get("tcp_port")
    if not found["up"] or port is None:
        raise Conflict(f"agent {uuid[:8]} is not up on the cluster at {address}")
    try:
        sock = socket.create_connection((found["ip"], int(port)), timeout=timeout)
    except OSError as exc:
        raise AgentGone(f"cannot reach agent {uuid[:8]} at {found['ip']}:{port}: {exc.strerror or exc}") from None
    return AgentClient(sock, key=key, timeout=timeout, uuid=uuid)


def signal(address: str, uuid: str, key: bytes, signum: int) -> int:
    """A real signal to the agent's process on its node, sent by its actor on the owner's proof; the agent's pid."""
    import time

    from hera.fleet.host import signal_proof

    ray = connect(address)
    stamp = time.time()
    try:
        return int(ray.get(handle(address, uuid).signal.remote(signum, stamp, signal_proof(key, uuid, signum, stamp))))
    except ray.exceptions.RayTaskError as exc:
        raise Conflict(f"agent {uuid[:8]}: {_cause(exc)}") from None


def finish(address: str, uuid: str, timeout: float) -> bool:
    """After a down: wait for the agent's process to exit, then remove its actor for good (no restart); whether it exited."""
    ray = connect(address)
    actor = handle(address, uuid)
    try:
        exited = bool(ray.get(actor.wait_exit.remote(timeout)))
    except ray.exceptions.RayActorError:
        exited = True
    if exited:
        ray.kill(actor, no_restart=True)
        _until_gone(ray, uuid)
    return exited


def describe_all(address: str, uuids: list[str], timeout: float = 10.0) -> dict[str, dict[str, Any] | None]:
    """:func:`describe` of many agents at once: every call sent, then every answer gathered (one wait, not N)."""
    ray = connect(address)
    calls: dict[str, Any] = {}
    for uuid in uuids:
        try:
            calls[uuid] = ray.get_actor(uuid).describe.remote()
        except ValueError:  # went down between the listing and now
            continue
    found: dict[str, dict[str, Any] | None] = {}
    for uuid, call in calls.items():
        try:
            found[uuid] = dict(ray.get(call, timeout=timeout))
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
            found[uuid] = None
    return found


def liveness_on(address: str) -> Callable[[str], Liveness | None]:
    """For :attr:`hera.cache.store.Store.elsewhere`: whether an agent is up on this cluster (pid on its node)."""
    from hera.cache.pidfile import Liveness

    def up_there(uuid: str) -> Liveness | None:
        try:
            found = describe(address, uuid)
        except NotFound:
            return None
        if found is None:  # its actor is restarting: as good as up, nobody may take its file now
            return Liveness(pid=-1, pid_file=True)
        return Liveness(pid=found["pid"], pid_file=True) if found["up"] else None

    return up_there
