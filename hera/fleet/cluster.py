"""The controller's side of a cluster: connect to Ray, start an agent's actor, find, list and stop them.

Each cluster agent is a detached named actor (named by the agent's uuid, in
the :data:`NAMESPACE` namespace) hosting :class:`hera.fleet.host.AgentHost`.
Ray is imported here only, and only when a command is given a cluster, so
single-machine hera never imports it.
"""

from __future__ import annotations

import os
from typing import Any

from hera.errors import Conflict, HeraError, NotFound

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
    if ray.is_initialized():
        return ray
    _reachable(address)
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
    return ray


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

        def __init__(self, launch_json: str) -> None:
            context = ray.get_runtime_context()
            super().__init__(launch_json, context.get_node_id(), context.was_current_actor_reconstructed)

    return ray.remote(HeraAgent)


def up(address: str, launch_json: str, uuid: str, *, host_bytes: int, gpus: float, timeout: float = 600.0) -> dict[str, Any]:
    """Start the agent's actor with the resources its family's estimate asks for; its description once up."""
    ray = connect(address)
    try:
        ray.get_actor(uuid)
    except ValueError:
        pass
    else:
        raise Conflict(f"agent {uuid[:8]} is already up on the cluster at {address}")
    options: dict[str, Any] = {
        "name": uuid,
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "max_restarts": MAX_RESTARTS,
        "max_concurrency": CONCURRENCY,
        "num_cpus": 0,
        "resources": {AGENT_RESOURCE: 0.001},
    }
    options["memory"] = int(host_bytes) + RUNTIME_BYTES
    if gpus:
        options["num_gpus"] = gpus
    if not _fits_somewhere(ray, options):
        raise HeraError(
            f"no node of the cluster at {address} has room for agent {uuid[:8]} "
            f"({options['memory'] / 2**30:.2f} GiB host memory{', a GPU' if gpus else ''})",
            hint="'ray status' shows what each node has free; add a node or down another agent",
        )
    actor = _actor_class(ray).options(**options).remote(launch_json)
    try:
        return dict(ray.get(actor.describe.remote(), timeout=timeout))
    except Exception as exc:  # noqa: BLE001 - Ray wraps the agent's own failure; one line, the actor gone
        ray.kill(actor, no_restart=True)
        raise HeraError(f"agent {uuid[:8]} did not come up on the cluster: {_cause(exc)}") from None


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


def request(address: str, uuid: str, op: str, timeout: float | None = 30.0, **args: Any) -> Any:
    ray = connect(address)
    try:
        return ray.get(handle(address, uuid).request.remote(op, args, timeout))
    except ray.exceptions.RayTaskError as exc:
        raise HeraError(f"agent {uuid[:8]}: {_cause(exc)}") from None


def down(address: str, uuid: str) -> dict[str, Any]:
    """The agent saves to the shared cache and exits; then its actor is removed for good (no restart)."""
    ray = connect(address)
    actor = handle(address, uuid)
    try:
        result = dict(ray.get(actor.down.remote()))
    except ray.exceptions.RayTaskError as exc:
        raise HeraError(f"agent {uuid[:8]} could not go down: {_cause(exc)}") from None
    ray.kill(actor, no_restart=True)
    return result


def owner_tag() -> str:
    """Who upped an agent, for the listing (the cluster's own auth decides who may reach it; see docs/cluster.md)."""
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
