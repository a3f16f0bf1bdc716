#!/usr/bin/env python3
"""How fast ``hera agents`` lists a cache of many installed agents.

Fills a throwaway cache (in a temporary HOME) with N installed copies of an
``abraxas/example`` instance, each with its own UUID and callsign, then times
``hera agents`` and ``hera agents --json`` beside ``hera --version`` (the floor:
starting Python and hera at all), median of several runs, in one run.

    python scripts/bench_agents.py --agents 1000 --repeat 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path


def fill(cache: Path, count: int) -> None:
    from abraxas import Abraxas

    from hera.instance import FamilyRef, Header, Installation, now, save

    family = Abraxas()
    params = family.resolve("example")
    built = family.build(params, seed=1)
    cache.mkdir(parents=True, mode=0o700)
    for index in range(count):
        uuid = str(uuidlib.uuid4())
        header = Header(
            uuid=uuid,
            callsign=f"agent-{index}",
            family=FamilyRef(name=family.name, version=family.version),
            layout="example",
            params=params.model_dump(mode="json"),
            seed=index,
            created=now(),
            summary=built.summary,
            installed=Installation(owner="bench", scope="user", installed_at=now()),
        )
        save(cache / f"{uuid}.json", header, built.arrays, mode=0o600)


def timed(args: list[str], env: dict[str, str], repeat: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "hera", *args], env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        out = result.stdout
    return statistics.median(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HERA_", "XDG_"))}
        env["HOME"] = str(home)
        start = time.perf_counter()
        fill(home / ".local/share/hera/agents", args.agents)
        filled = time.perf_counter() - start
        floor, _ = timed(["--version"], env, args.repeat)
        table, out = timed(["agents"], env, args.repeat)
        as_json, out_json = timed(["agents", "--json"], env, args.repeat)
        listed = len(json.loads(out_json))
        assert listed == args.agents, (listed, args.agents)
    result = {
        "agents": args.agents,
        "hera_version_s": round(floor, 3),
        "agents_s": round(table, 3),
        "agents_json_s": round(as_json, 3),
        "per_agent_ms": round((table - floor) / args.agents * 1000, 3),
        "fill_s": round(filled, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.agents} agents installed (filled in {filled:.1f} s); median of {args.repeat} runs:")
        print(f"  hera --version      {floor:.3f} s   (floor: Python + hera start)")
        print(f"  hera agents         {table:.3f} s   ({result['per_agent_ms']} ms per agent above the floor)")
        print(f"  hera agents --json  {as_json:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
