#!/usr/bin/env python3
"""Many agents on a local two-node Ray cluster: up, fed, stepped, downed, upped again, stepped; each bit-exact.

Needs ``hera[ray]``. A throwaway HOME; a Ray cluster of a head (no agents)
and two worker nodes that host agents (``ray.cluster_utils.Cluster``, on
loopback). ``--agents`` agents of ``--family``/``--layout`` built from one
seed (the same brain under different uuids) and one more, the *straight*
twin. All go up paused on the cluster at once (``hera up`` run in parallel,
as a user's script would), each is fed the same bytes through its signed
control port, the twin runs N+M iterations straight, each other agent N,
goes down, comes up again (anywhere Ray places it) and runs M more. Then
every agent's cached file must equal the twin's, array for array, bit for
bit. Prints the wall time of each phase and where the agents ran.

    python scripts/bench_fleet_many.py --agents 16 --family abraxas --layout example
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/ is not a package

from bench_fleet import local_cluster, throwaway_user  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--family", default="abraxas")
    parser.add_argument("--layout", default="example")
    parser.add_argument("-n", type=int, default=400, help="iterations before the down")
    parser.add_argument("-m", type=int, default=400, help="iterations after the up again")
    args = parser.parse_args()

    from hera.fleet import cluster as fleet
    from hera.instance import load
    from hera.manager.files import read_key

    root, home, work, _, env = throwaway_user("hera-bench-fleet-many-", tick=args.family == "tick")
    cache = home / ".local" / "share" / "hera" / "agents"
    made = local_cluster(workers=2, slots=64)
    env["HERA_CLUSTER"] = made.address
    fleet.connect(made.address)
    phases: dict[str, float] = {}

    def hera(*argv: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "hera", *argv]
        return subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def together(label: str, commands: list[tuple[str, ...]]) -> list[str]:
        started = time.perf_counter()
        running = [hera(*argv) for argv in commands]
        outputs = [process.communicate(timeout=1800) for process in running]
        phases[label] = time.perf_counter() - started
        for process, (_, err) in zip(running, outputs, strict=True):
            if process.returncode != 0:
                raise SystemExit(f"{label}: {err.strip()}")
        return [out for out, _ in outputs]

    def request(uuid: str, op: str, **argv: object) -> dict:
        key = read_key(cache / ".cluster" / "keys" / f"{uuid}.key")
        with fleet.client(made.address, uuid, key, timeout=None) as client:
            return dict(client.request(op, **argv))

    names = ["straight.json", *(f"a{i}.json" for i in range(args.agents))]
    try:
        built = together("build", [("--family", args.family, "--layout", args.layout, "--seed", "7", "build", "-o", n) for n in names])
        uuids = [line.split()[2] for line in built]
        placed = [json.loads(out) for out in together("up (all, in parallel)", [("up", n, "--paused", "--json") for n in names])]
        nodes = sorted({row["node"][:12] for row in placed})
        fed = base64.b64encode(b"the quick brown fox jumps over the lazy dog. " * 4).decode()
        started = time.perf_counter()
        for uuid in uuids:
            request(uuid, "feed", data=fed)
        request(uuids[0], "step", n=args.n + args.m)
        for uuid in uuids[1:]:
            request(uuid, "step", n=args.n)
        phases["feed and step"] = time.perf_counter() - started
        together("down (all but the twin)", [("--uuid", uuid, "down") for uuid in uuids[1:]])
        together("up again", [("up", n, "--paused", "--json") for n in names[1:]])
        started = time.perf_counter()
        for uuid in uuids[1:]:
            request(uuid, "step", n=args.m)
        phases["step again"] = time.perf_counter() - started
        together("down (all)", [("--uuid", uuid, "down") for uuid in uuids])
        twin = load(cache / f"{uuids[0]}.json")
        same = 0
        for uuid in uuids[1:]:
            resumed = load(cache / f"{uuid}.json")
            assert resumed.header.iteration == twin.header.iteration == args.n + args.m
            assert sorted(resumed.arrays) == sorted(twin.arrays)
            assert all(resumed.arrays[k].tobytes() == twin.arrays[k].tobytes() for k in twin.arrays), uuid
            same += 1
        print(f"{args.agents} {args.family}/{args.layout} agents (+1 straight twin) on 2 worker nodes {nodes}; {os.cpu_count()} cores")
        for label, seconds in phases.items():
            print(f"  {label:<26} {seconds:7.1f} s")
        print(f"  bit-exact after down/up: {same}/{args.agents} equal to the twin that never stopped ({args.n}+{args.m} iterations)")
    finally:
        import ray

        ray.shutdown()
        made.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
