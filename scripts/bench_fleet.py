#!/usr/bin/env python3
"""Control latency of a cluster agent beside a local one, in one run (needs ``hera[ray]``).

A local Ray cluster of two nodes on loopback (``ray.cluster_utils.Cluster``:
a head and a worker that hosts agents) in a throwaway HOME. Two ``tick/example``
agents built from the same seed, both paused: one up on this machine
(``hera up --daemon``), one up on the cluster (``hera up --cluster``). Then
``--requests`` ``status`` requests to each, interleaved one by one so both
see the same machine, and the median and 95th percentile of each:

* local, unix socket: an ``AgentClient`` on the agent's unix socket, kept open;
* local, signed TCP: the same agent's daemon port, every message signed
  (HMAC-SHA256), kept open;
* cluster, signed TCP: the cluster agent's control port on its node, found
  through its actor once, signed with the owner's key, kept open (what the
  hera shell and every command's requests use);
* local and cluster, a connection each: what a one-shot command pays to
  reach the agent (for the cluster: its actor's description through Ray,
  then the connection).

    python scripts/bench_fleet.py --requests 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TICK = Path(__file__).resolve().parent.parent / "tests" / "families" / "tick"


def _hera(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hera", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"hera {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def throwaway_user(prefix: str, *, tick: bool) -> tuple[Path, Path, Path, Path, dict[str, str]]:
    """A private root with a HOME, a working directory (with the tick test family if asked) and a runtime dir, and the
    environment a user there runs hera with: (root, home, work, run, env)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    home, work, run = root / "home", root / "work", root / "run"
    for path in (home, work, run):
        path.mkdir(mode=0o700)
    if tick:
        shutil.copytree(TICK, work / "tick", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERA_")}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(run))
    for key in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env.pop(key, None)
    return root, home, work, run, env


def local_cluster(*, workers: int, slots: int) -> Any:
    """A Ray cluster on loopback: a head that hosts no agent, and ``workers`` nodes that host ``slots`` each."""
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(workers):
        made.add_node(num_cpus=1, resources={"hera_agent": slots})
    made.wait_for_nodes()
    return made


def _summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"{name:<34} median {statistics.median(seconds) * 1e3:7.3f} ms   p95 {p95 * 1e3:7.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    import ray

    from hera.fleet import cluster as fleet
    from hera.manager.client import AgentClient
    from hera.manager.files import read_key

    root, home, work, run, env = throwaway_user("hera-bench-fleet-", tick=True)
    made = local_cluster(workers=1, slots=4)
    local_uuid = cluster_uuid = None
    try:
        for name in ("local.json", "remote.json"):
            _hera(env, work, "--family", "tick", "--seed", "7", "build", "-o", name)
        local = json.loads(_hera(env, work, "up", "local.json", "--daemon", "--paused", "--json"))
        local_uuid = local["uuid"]
        remote = json.loads(_hera(env, work, "up", "remote.json", "--paused", "--json", "--cluster", made.address))
        cluster_uuid = remote["uuid"]
        fleet.connect(made.address)
        key = read_key(home / ".local" / "share" / "hera" / "agents" / ".cluster" / "keys" / f"{cluster_uuid}.key")
        socket = run / "hera" / f"{local_uuid}.sock"
        connection = run / "hera" / f"{local_uuid}.connection.json"
        kept = {
            "local, unix socket": AgentClient.unix(socket),
            "local, signed TCP": AgentClient.tcp(connection),
            "cluster, signed TCP": fleet.client(made.address, cluster_uuid, key),
        }
        once = {
            "local, a connection each (unix)": lambda: AgentClient.unix(socket),
            "cluster, a connection each": lambda: fleet.client(made.address, cluster_uuid, key),
        }
        times: dict[str, list[float]] = {name: [] for name in [*kept, *once]}
        for _ in range(10):  # warm every path once
            for client in kept.values():
                client.request("status")
        for _ in range(args.requests):
            for name, client in kept.items():
                t = time.perf_counter()
                client.request("status")
                times[name].append(time.perf_counter() - t)
            for name, connect in once.items():
                t = time.perf_counter()
                with connect() as fresh:
                    fresh.request("status")
                times[name].append(time.perf_counter() - t)
        for client in kept.values():
            client.close()
        print(f"status requests, {args.requests} each, interleaved; {os.cpu_count()} cores")
        for name, seconds in times.items():
            print(_summary(name, seconds))
        medians = {name: statistics.median(seconds) for name, seconds in times.items()}
        print(f"cluster / local unix socket, medians: {medians['cluster, signed TCP'] / medians['local, unix socket']:.2f}x")
        print(f"cluster / local signed TCP, medians: {medians['cluster, signed TCP'] / medians['local, signed TCP']:.2f}x")
    finally:
        if cluster_uuid is not None:
            subprocess.run([sys.executable, "-m", "hera", "down", "remote.json", "--cluster", made.address], env=env, cwd=work,
                           capture_output=True, timeout=120)
        if local_uuid is not None:
            subprocess.run([sys.executable, "-m", "hera", "down", "local.json"], env=env, cwd=work, capture_output=True, timeout=120)
        ray.shutdown()
        made.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
