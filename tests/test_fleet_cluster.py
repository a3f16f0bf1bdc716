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

from agent_helpers import build, cache_path, cached_arrays, same_arrays, tick_world, wait_for
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


def test_every_command_reaches_a_cluster_agent_as_on_one_machine(world: World, cluster: Any) -> None:
    """inspect, signal (stop, feed, continue, read), checkpoint, copy, pace, logs; destroy refused while it runs."""
    built = build(world, "t.json")
    placed = _up(world, "t.json", "--paused")
    who = ("--uuid", built.uuid[:8])

    inspected = world(*who, "inspect", check=True)
    assert f"up (pid {placed['pid']})" in inspected.out, str(inspected)
    fed = world(*who, "signal", "SIGTTIN", input="hello")
    assert fed.rc == 0 and "fed 5 byte(s)" in fed.err, str(fed)
    assert world(*who, "signal", "SIGCONT", check=True).out.startswith(f"sent SIGCONT to {built.callsign}")
    assert wait_for(lambda: _listed(world)[built.uuid]["state"] == "running", 20, "running")
    read = world(*who, "signal", "SIGTTOU", "--raw", check=True)
    assert read.out == "hello", str(read)  # tick echoes what it is fed, byte for byte
    assert world(*who, "signal", "SIGTSTP", check=True).rc == 0
    assert wait_for(lambda: _listed(world)[built.uuid]["state"] == "paused", 20, "paused")

    point = json.loads(world(*who, "checkpoint", "--json", check=True).out)
    header, _ = cached_arrays(world, built.uuid)
    assert header.iteration == point["iteration"] > 0  # written to the shared cache by the agent on its node
    world(*who, "copy", "-o", "c.json", check=True)
    from hera.instance import read_header

    assert read_header(world.workdir / "c.json").iteration == point["iteration"]  # paused: nothing ran since
    assert world(*who, "pace", check=True).out.startswith(f"pace {built.callsign}")
    logs = world(*who, "logs", check=True)
    assert "checkpoint: iteration" in logs.out, str(logs)

    refused = world(*who, "destroy", "--yes")
    assert refused.rc == 4 and refused.err.count("\n") == 1 and "cannot destroy it" in refused.err, str(refused)

    world(*who, "signal", "SIGKILL", check=True)  # dies on its node at once; the cache keeps the checkpoint
    assert wait_for(lambda: _listed(world)[built.uuid]["state"].startswith("exited -9"), 20, "exited")
    again = _up(world, "t.json", "--paused")  # its actor is replaced; the agent resumes from its last save
    assert again["iteration"] == point["iteration"]
    world(*who, "down", check=True)
    assert set(_listed(world)) == set()


def test_only_the_owner_controls_a_cluster_agent(world: World, cluster: Any) -> None:
    """Without the owner's key nothing reaches the agent: not a request, not a signal, not a replayed proof."""
    import secrets

    from hera.errors import HeraError
    from hera.fleet import cluster as fleet
    from hera.fleet.host import signal_proof

    built = build(world, "t.json")
    _up(world, "t.json", "--paused")
    actor = fleet.handle(cluster.address, built.uuid)
    key = _key(world, built.uuid)

    with pytest.raises(HeraError, match="did not prove it holds the agent's key"):
        fleet.client(cluster.address, built.uuid, secrets.token_bytes(32))  # a stranger's key: nothing is sent
    forged = signal_proof(secrets.token_bytes(32), built.uuid, 15, time.time())
    with pytest.raises(ray.exceptions.RayTaskError, match="proof is not the owner's"):
        ray.get(actor.signal.remote(15, time.time(), forged))
    stamp = time.time()
    honest = signal_proof(key, built.uuid, 20, stamp)  # SIGTSTP: harmless to a paused agent
    ray.get(actor.signal.remote(20, stamp, honest))
    with pytest.raises(ray.exceptions.RayTaskError, match="used before"):
        ray.get(actor.signal.remote(20, stamp, honest))  # a proof seen on the wire is good once
    old = time.time() - 3600
    with pytest.raises(ray.exceptions.RayTaskError, match="stale"):
        ray.get(actor.signal.remote(15, old, signal_proof(key, built.uuid, 15, old)))

    held = cache_path(world, built.uuid).parent / ".cluster" / "keys" / f"{built.uuid}.key"
    kept = held.read_bytes()
    held.unlink()  # a controller that never had the key: another user's, or another cache
    for args in (("down",), ("signal", "SIGKILL"), ("checkpoint",)):
        result = world("--uuid", built.uuid[:8], *args)
        assert result.rc == 4 and result.err.count("\n") == 1 and "only its owner can control it" in result.err, str(result)
    assert _listed(world)[built.uuid]["state"] == "paused"  # untouched through all of it
    held.write_bytes(kept)
    held.chmod(0o600)
    world("--uuid", built.uuid[:8], "down", check=True)


@pytest.mark.load
def test_sixteen_agents_up_fed_downed_and_resumed_bit_exactly(world: World, cluster: Any) -> None:
    """16 agents over two nodes: each fed, stepped, downed, upped again, stepped; each equals one that never stopped."""
    cluster.add_node(num_cpus=1, resources={"hera_agent": 16})
    cluster.wait_for_nodes()
    count, n, m = 16, 300, 500
    straight = build(world, "straight.json")
    agents = [build(world, f"a{i}.json") for i in range(count)]  # one seed: the same brain under 16 uuids

    def all_up(names: list[str]) -> list[dict[str, Any]]:
        started = [world.popen("up", name, "--paused", "--json") for name in names]
        outputs = [process.communicate(timeout=300) for process in started]
        assert all(process.returncode == 0 for process in started), outputs
        assert all(out.strip() for out, _ in outputs), outputs
        return [json.loads(out) for out, _ in outputs]

    placed = all_up(["straight.json", *(f"a{i}.json" for i in range(count))])
    assert len({row["node"] for row in placed}) == 2  # Ray spread them over both nodes that host agents
    for agent in [straight, *agents]:
        _request(world, cluster, agent.uuid, "feed", data="ZmVkIGJ5dGVz")  # b"fed bytes"
    assert _step(world, cluster, straight.uuid, n + m) == n + m
    for agent in agents:
        assert _step(world, cluster, agent.uuid, n) == n
    downs = [world.popen("--uuid", agent.uuid, "down") for agent in agents]
    assert all(process.wait(timeout=300) == 0 for process in downs)
    assert set(_listed(world)) == {straight.uuid}
    all_up([f"a{i}.json" for i in range(count)])
    for agent in agents:
        assert _step(world, cluster, agent.uuid, m) == n + m
    downs = [world.popen("--uuid", agent.uuid, "down") for agent in [straight, *agents]]
    assert all(process.wait(timeout=300) == 0 for process in downs)
    _, expected = cached_arrays(world, straight.uuid)
    for agent in agents:
        header, arrays = cached_arrays(world, agent.uuid)
        assert header.iteration == n + m
        same_arrays(expected, arrays)


def test_a_controller_that_lost_the_cluster_says_so_in_one_line(hera: World) -> None:
    """A cluster of its own that goes away under an up agent: every command after is one line, no wait for Ray's retries."""
    from ray.cluster_utils import Cluster

    world = tick_world(hera)
    lost = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False, "resources": {"hera_agent": 1}}
    )
    address = lost.address  # None once it is shut down
    try:
        world.env["HERA_CLUSTER"] = address
        built = build(world, "t.json")
        _up(world, "t.json", "--paused")
    finally:
        lost.shutdown()
    for args in (("agents",), ("--uuid", built.uuid[:8], "down"), ("up", "t.json")):
        started = time.monotonic()
        result = world(*args, timeout=60)
        assert result.rc == 1 and result.err.count("\n") == 1, str(result)
        assert result.err.startswith(f"hera: cannot reach the Ray cluster at {address}"), str(result)
        assert time.monotonic() - started < 30


def test_the_hera_shell_attaches_a_cluster_agent_and_downs_it(world: World, cluster: Any) -> None:
    """The shell finds the agent on the cluster, shows it in its prompt, asks it, and downs it there."""
    from terminalkit import Terminal

    built = build(world, "t.json")
    _up(world, "t.json")
    terminal = Terminal(world)
    try:
        terminal.wait_prompt()
        assert "attached" in terminal.run("attach")
        assert terminal.prompt is not None and terminal.prompt["callsign"] == built.callsign
        assert "'running'" in terminal.run("agent.status()['state']")
        assert f"down {built.callsign} at iteration" in terminal.run("down")
    finally:
        terminal.close()
    assert set(_listed(world)) == set()
    assert cached_arrays(world, built.uuid)[0].iteration > 0
