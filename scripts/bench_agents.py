#!/usr/bin/env python3
"""How fast ``hera agents`` lists: a cache of many installed agents, or many agents up and running.

Every figure is taken beside ``hera --version`` (the floor: starting Python
and hera at all), the commands interleaved, median of several runs, in one
run of this script, in a throwaway HOME and runtime directory.

* ``--installed N``: the cache holds N installed ``abraxas/example`` agents,
  each with its own UUID and callsign, all down: the cost of reading headers.
* ``--running 1,8,32``: that many ``tick/example`` agents (the test family in
  ``tests/families/tick``) are up as daemons, running, started with ``hera up
  --daemon`` (``--pace RATE`` is passed on to ``up`` where it exists: idle
  agents need not spin a core each). At each count, the listing's cost above
  the floor, and that cost divided by the agents up. With ``--ask``, also
  the time to ask each up agent its status in turn over its control socket,
  which is what a listing that asks (rather than reads what each published)
  pays: every request waits for the agent's current batch.

    python scripts/bench_agents.py --installed 1000 --repeat 7
    python scripts/bench_agents.py --running 1,8,32 --repeat 9 --ask
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
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

TICK = Path(__file__).resolve().parent.parent / "tests" / "families" / "tick"


def fill(cache: Path, count: int) -> None:
    from abraxas import Abraxas
    from hera.instance import FamilyRef, Header, Installation, now, save

    family: Any = Abraxas()
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


class Sandbox:
    """A throwaway HOME, working directory and runtime directory; hera run there as a user runs it."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.workdir = root / "work"
        self.runtime = Path(tempfile.mkdtemp(prefix="hera-bench-"))  # short: socket paths are limited
        self.workdir.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HERA_", "XDG_"))}
        self.env |= {"HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.runtime)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hera", *args], cwd=self.workdir, env=self.env, capture_output=True, text=True, check=check
        )

    def close(self) -> None:
        shutil.rmtree(self.runtime, ignore_errors=True)


def interleaved(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Medians of each callable, run in turn ``repeat`` times (one untimed round first): wall seconds as ``NAME``,
    and as ``NAME_cpu`` the CPU seconds (user + system) of the processes it ran, which other work on the machine
    barely changes: waiting for an agent costs wall time and no CPU, so the two together say which it was.
    """
    import resource

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeat + 1):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), children_cpu()
            run()
            if round_:
                times[name].append(time.perf_counter() - start)
                cpu[name].append(children_cpu() - start_cpu)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians | {f"{name}_cpu": statistics.median(values) for name, values in cpu.items()}


def installed(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        box = Sandbox(Path(tmp))
        try:
            start = time.perf_counter()
            fill(box.home / ".local/share/hera/agents", args.installed)
            filled = time.perf_counter() - start
            medians = interleaved(
                {"version": lambda: box("--version"), "agents": lambda: box("agents"), "json": lambda: box("agents", "--json")},
                args.repeat,
            )
            listed = len(json.loads(box("agents", "--json").stdout))
            assert listed == args.installed, (listed, args.installed)
        finally:
            box.close()
    return {
        "agents": args.installed,
        "hera_version_s": round(medians["version"], 3),
        "agents_s": round(medians["agents"], 3),
        "agents_json_s": round(medians["json"], 3),
        "per_agent_ms": round((medians["agents"] - medians["version"]) / args.installed * 1000, 3),
        "fill_s": round(filled, 1),
    }


def ask_each(box: Sandbox) -> None:
    """Ask every up agent its status in turn, one connection each: the round trips a listing avoids."""
    from hera.manager.client import AgentClient

    for socket in sorted(box.runtime.glob("hera/*.sock")):
        with AgentClient.unix(socket, timeout=30) as client:
            client.request("status")


def running(args: argparse.Namespace) -> dict[str, Any]:
    counts = sorted({int(n) for n in args.running.split(",")})
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        box = Sandbox(Path(tmp))
        shutil.copytree(TICK, box.workdir / "tick", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        pace = ["--pace", args.pace] if args.pace and "--pace" in box("up", "--help").stdout else []
        box("--family", "tick", "--layout", "example", "build", "-o", "t.json")
        try:
            up = 0
            for count in counts:
                while up < count:
                    batch = min(args.parallel, count - up)
                    started = [
                        subprocess.Popen(
                            [sys.executable, "-m", "hera", "up", "t.json", "--as-new", "--daemon", *pace],
                            cwd=box.workdir, env=box.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                        )
                        for _ in range(batch)
                    ]
                    for process in started:
                        _, err = process.communicate(timeout=300)
                        assert process.returncode == 0, err
                    up += batch
                listed = json.loads(box("agents", "--json").stdout)
                states = sorted({row["state"] for row in listed})
                assert sum(row["pid"] is not None for row in listed) == count, listed
                runs: dict[str, Callable[[], object]] = {"version": lambda: box("--version"), "agents": lambda: box("agents")}
                if args.ask:
                    runs["ask"] = lambda: ask_each(box)
                medians = interleaved(runs, args.repeat)
                above = medians["agents"] - medians["version"]
                rows.append(
                    {
                        "running": count,
                        "states": states,
                        "hera_version_s": round(medians["version"], 3),
                        "agents_s": round(medians["agents"], 3),
                        "above_floor_ms": round(above * 1000, 1),
                        "per_agent_ms": round(above / count * 1000, 2),
                        "hera_version_cpu_s": round(medians["version_cpu"], 3),
                        "agents_cpu_s": round(medians["agents_cpu"], 3),
                        "cpu_above_floor_ms": round((medians["agents_cpu"] - medians["version_cpu"]) * 1000, 1),
                        **({"ask_each_s": round(medians["ask"], 3)} if args.ask else {}),
                        "load_avg": round(os.getloadavg()[0], 1),
                    }
                )
        finally:
            _down_all(box)
            box.close()
    first = rows[0]
    for row in rows[1:]:  # what each agent up beyond the first level adds to the listing
        more = row["running"] - first["running"]
        row["marginal_ms_per_agent"] = round((row["above_floor_ms"] - first["above_floor_ms"]) / more, 2)
        row["marginal_cpu_ms_per_agent"] = round((row["cpu_above_floor_ms"] - first["cpu_above_floor_ms"]) / more, 2)
    return {"pace": pace[1] if pace else None, "repeat": args.repeat, "levels": rows}


def _down_all(box: Sandbox) -> None:
    """Down every agent of the sandbox (in parallel), then kill whatever is left."""
    import signal

    listed = json.loads(box("agents", "--json", check=False).stdout or "[]")
    downs = [
        subprocess.Popen([sys.executable, "-m", "hera", "--uuid", row["uuid"], "down"], cwd=box.workdir, env=box.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for row in listed if row["pid"] is not None
    ]
    for process in downs:
        process.wait(timeout=300)
    for row in json.loads(box("agents", "--json", check=False).stdout or "[]"):
        if row["pid"] is not None:
            os.kill(row["pid"], signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--installed", "--agents", type=int, metavar="N", help="N installed agents, all down (default: 1000)")
    what.add_argument("--running", metavar="COUNTS", help="agents up and running at each count, e.g. 1,8,32")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--pace", metavar="RATE", help="with --running: the pace each agent is upped with, where up has --pace")
    parser.add_argument("--parallel", type=int, default=4, help="with --running: agents started at once")
    parser.add_argument("--ask", action="store_true", help="with --running: also time asking each agent its status in turn")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.running:
        result = running(args)
        if args.json:
            print(json.dumps(result))
            return 0
        print(f"median of {args.repeat} interleaved runs; pace {result['pace'] or 'none (as fast as they can)'}")
        for row in result["levels"]:
            ask = f"   asking each in turn {row['ask_each_s']:.3f} s" if "ask_each_s" in row else ""
            if "marginal_ms_per_agent" in row:
                ask += (
                    f"   per agent beyond {result['levels'][0]['running']}: {row['marginal_ms_per_agent']} ms wall, "
                    f"{row['marginal_cpu_ms_per_agent']} ms CPU"
                )
            print(
                f"  {row['running']:3d} up ({', '.join(row['states'])}): hera --version {row['hera_version_s']:.3f} s   "
                f"hera agents {row['agents_s']:.3f} s   above the floor {row['above_floor_ms']} ms "
                f"({row['per_agent_ms']} ms per agent up); CPU {row['agents_cpu_s']:.3f} s, "
                f"{row['cpu_above_floor_ms']} ms above the floor's{ask}   load {row['load_avg']}"
            )
        return 0
    args.installed = args.installed or 1000
    result = installed(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.installed} agents installed (filled in {result['fill_s']} s); median of {args.repeat} runs:")
        print(f"  hera --version      {result['hera_version_s']:.3f} s   (floor: Python + hera start)")
        print(f"  hera agents         {result['agents_s']:.3f} s   ({result['per_agent_ms']} ms per agent above the floor)")
        print(f"  hera agents --json  {result['agents_json_s']:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
