"""Agents on a real local Ray cluster (``hera[ray]``): up, agents, down, resume bit-exactly, and a lost node.

The cluster is Ray's own test utility (``ray.cluster_utils.Cluster``) on
loopback: a head node that hosts no agent and worker nodes that do (the
``hera_agent`` resource), each a real raylet with its own processes. hera is
run as a user runs it, with ``HERA_CLUSTER`` naming the cluster; where a
test steps an agent it talks to the agent's signed control port on its node
with the owner's key, as the local tests talk to a socket. Skipped where Ray
is not installed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_helpers import build, cache_path, cached_arrays, same_arrays, tick_world
from herakit import World

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'hera[ray]')")
pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head node (no agents) and one worker node that hosts agents, on loopback."""
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    made.add_node(num_cpus=1, resources={"hera_agent": 16})
    made.wait_for_nodes()
    from hera.fleet import cluster as fleet

    fleet.connect(made.address)  # this process too, as a driver: the test talks to agents through their actors
    yield made
    ray.shutdown()
    made.shutdown()


@pytest.fixture
def world(hera: World, cluster: Any) -> World:
    world = tick_world(hera)
    world.env["HERA_CLUSTER"] = cluster.address
    return world


def _up(world: World, *args: str) -> dict[str, Any]:
    result = world("up", *args, "--json", timeout=180)
    assert result.rc == 0, str(result)
    return dict(json.loads(result.out))


def _listed(world: World) -> dict[str, dict[str, Any]]:
    result = world("agents", "--json", check=True)
    return {row["uuid"]: row for row in json.loads(result.out)}


def _key(world: World, uuid: str) -> bytes:
    """The owner's key, where its controller keeps it: the private corner of the (shared) cache."""
    from hera.manager.files import read_key

    return read_key(cache_path(world, uuid).parent / ".cluster" / "keys" / f"{uuid}.key")


def _request(world: World, cluster: Any, uuid: str, op: str, **args: Any) -> Any:
    from hera.fleet import cluster as fleet

    with fleet.client(cluster.address, uuid, _key(world, uuid), timeout=None) as client:
        return client.request(op, **args)


def _step(world: World, cluster: Any, uuid: str, n: int) -> int:
    return int(_request(world, cluster, uuid, "step", n=n)["iteration"])


def test_up_agents_down_and_resume_bit_exactly(world: World, cluster: Any) -> None:
    """N+M iterations on the cluster equal N, down, up again on the cluster, M: every cached array, bit for bit.

    On the way: a second up of an agent up on the cluster, and a down of one
    that is not, are each one line.
    """
    n, m = 25, 400
    straight = build(world, "straight.json")
    resumed = build(world, "resumed.json")  # the same seed: the same brain under another uuid
    workers = {node["NodeID"] for node in ray.nodes() if node["Alive"] and node["Resources"].get("hera_agent")}

    first = _up(world, "straight.json", "--paused")
    second = _up(world, "resumed.json", "--paused")
    again = world("up", "straight.json")
    assert again.rc == 4 and again.err.count("\n") == 1 and "already up on the cluster" in again.err, str(again)
    assert first["node"] in workers and second["node"] in workers  # placed where agents may run
    listed = _listed(world)
    assert listed[straight.uuid]["state"] == listed[resumed.uuid]["state"] == "paused"
    assert listed[straight.uuid]["node"] == first["node"] and listed[straight.uuid]["callsign"] == straight.callsign

    assert _step(world, cluster, straight.uuid, n + m) == n + m
    world("down", "straight.json", check=True)
    assert _step(world, cluster, resumed.uuid, n) == n
    down = world("down", "resumed.json", "--json", check=True)
    assert json.loads(down.out)["iteration"] == n
    assert set(_listed(world)) == set()  # both actors gone for good
    header, _ = cached_arrays(world, resumed.uuid)
    assert header.iteration == n

    _up(world, "resumed.json", "--paused")
    assert _request(world, cluster, resumed.uuid, "status")["iteration"] == n
    assert _step(world, cluster, resumed.uuid, m) == n + m
    world("down", "resumed.json", check=True)
    gone = world("down", "resumed.json")
    assert gone.rc == 4 and gone.err.count("\n") == 1 and "is not up on the cluster" in gone.err, str(gone)

    straight_header, straight_arrays = cached_arrays(world, straight.uuid)
    resumed_header, resumed_arrays = cached_arrays(world, resumed.uuid)
    assert straight_header.iteration == resumed_header.iteration == n + m
    same_arrays(straight_arrays, resumed_arrays)


def test_an_agent_no_node_has_room_for_is_refused_in_one_line_and_not_installed(world: World) -> None:
    """A GPU agent on a cluster without GPUs: refused at once (Ray would wait for ever), the cache as it was."""
    build(world, "t.json")
    result = world("up", "t.json", "--device", "cuda", timeout=120)
    assert result.rc == 1 and result.err.count("\n") == 1, str(result)
    assert "no node of the cluster" in result.err and "a GPU" in result.err, str(result)
    listed = world("agents", "--json", env={"HERA_CLUSTER": None}, check=True)
    assert json.loads(listed.out) == []  # the up that installed it rolled it back


def test_a_cluster_nobody_serves_is_one_line(hera: World) -> None:
    tick_world(hera)
    build(hera, "t.json")
    result = hera("agents", "--cluster", "127.0.0.1:1", timeout=120)
    assert result.rc == 1 and result.err.count("\n") == 1, str(result)
    assert result.err.startswith("hera: cannot reach the Ray cluster at 127.0.0.1:1"), str(result)


def test_an_agent_whose_node_dies_runs_again_on_another_from_its_last_save(world: World, cluster: Any) -> None:
    """Kill the node holding a running agent: Ray restarts its actor on the other node, from the last autosave."""
    cluster.add_node(num_cpus=1, resources={"hera_agent": 16})
    cluster.wait_for_nodes()
    built = build(world, "t.json")
    world.env["HERA_AUTOSAVE_INTERVAL"] = "1"
    placed = _up(world, "t.json")
    holder = next(node for node in cluster.worker_nodes if node.node_id == placed["node"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until an autosave has put a running iteration in the cache
        header, _ = cached_arrays(world, built.uuid)
        if header.iteration > 0:
            break
        time.sleep(0.2)
    saved = header.iteration
    assert saved > 0

    killed = time.monotonic()
    cluster.remove_node(holder)
    row: dict[str, Any] = {}
    while time.monotonic() - killed < 60:
        row = _listed(world).get(built.uuid, {})
        if row.get("node") not in (None, placed["node"]) and row.get("iteration") is not None:
            break
        time.sleep(0.5)
    moved_after = time.monotonic() - killed
    assert row.get("node") not in (None, placed["node"]), row  # on another node now
    assert row["moved"] is True and row["iteration"] >= saved, row
    print(f"failover: running again on another node {moved_after:.1f} s after its node was killed")
    import psutil

    gone = time.monotonic() + 10
    while psutil.pid_exists(placed["pid"]) and time.monotonic() < gone:  # the first agent died with its host
        time.sleep(0.1)
    assert not psutil.pid_exists(placed["pid"]), "the lost node's agent outlived its actor: two agents, one file"
    world("down", "t.json", check=True)
