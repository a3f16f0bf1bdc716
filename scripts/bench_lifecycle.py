#!/usr/bin/env python3
"""How long ``hera up`` takes to the first iteration, and ``hera down`` to a saved, exited agent.

For each layout of the ``tick`` test family (``example``, a few KiB, and
``gib``, about 1 GiB of state: 16 Mi neurons with a 12-deep delay ring) it
builds an instance in a throwaway HOME, ups it once and runs it a while so
every array holds real (incompressible) state, downs it, and then, several
times over:

* ``hera --uuid X up --daemon --paused``, then one ``step``: the time until
  ``up`` returns (the agent serves requests) and until its first iteration is
  done (kernels compiled, from the warm offline cache after the first up);
* a few ``pause``/``run`` round trips while it runs (the control latency);
* ``hera down``: until the state is in the cache (atomically, fsynced) and the
  agent process has exited.

Beside them, in the same run and on the same disk, the raw cost of the same
bytes: every array written with ``numpy.save`` and fsynced, and read back
with ``numpy.load``, and hera's own codec on them in-process (the instance
file's ``save``/``load``), so the process, Taichi and protocol overheads can
be told from the cost of the bytes.

    python scripts/bench_lifecycle.py                  # example and gib, 3 repeats
    python scripts/bench_lifecycle.py --layouts example --repeat 5
    python scripts/bench_lifecycle.py --json out.json

It needs about 4 GiB of free disk and memory for the gib layout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICK = ROOT / "tests" / "families" / "tick"


class World:
    """A throwaway user: HOME with the XDG directories, a working directory with tick cloned in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.work = root / "work"
        self.runtime = Path(tempfile.mkdtemp(prefix="hera-bench-run-"))
        self.runtime.chmod(0o700)
        for sub in ("", ".config", ".local/share", ".local/state", ".cache"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True)
        shutil.copytree(TICK, self.work / "tick", ignore=shutil.ignore_patterns("__pycache__"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HERA_", "XDG_"))}
        self.env |= {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local/share"),
            "XDG_STATE_HOME": str(self.home / ".local/state"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "HERA_AUTOSAVE_INTERVAL": "0",  # only the downs write: nothing else competes for the disk
        }

    def hera(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "hera", *args], env=self.env, cwd=self.work, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"hera {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def last_log(self, uuid: str, pattern: str) -> tuple[float, ...]:
        """The numbers of the agent's last log line matching ``pattern`` (a regular expression)."""
        import re

        text = (self.home / ".local/state/hera/logs" / f"{uuid}.log").read_text()
        found = re.findall(pattern, text)
        return tuple(float(x) for x in found[-1]) if found else ()

    def cache_file(self, uuid: str) -> Path:
        return self.home / ".local/share/hera/agents" / f"{uuid}.json"

    def client(self, uuid: str) -> Any:
        from hera.manager.client import AgentClient

        return AgentClient.unix(self.runtime / "hera" / f"{uuid}.sock", timeout=600)

    def close(self) -> None:
        shutil.rmtree(self.runtime, ignore_errors=True)


def timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def up_to_first_iteration(world: World, uuid: str, file: str | None = None) -> dict[str, float]:
    started = time.perf_counter()
    world.hera(*(("up", file) if file else ("--uuid", uuid, "up")), "--daemon", "--paused")
    ready = time.perf_counter() - started
    with world.client(uuid) as agent:
        agent.request("step", n=1, timeout=None)
    return {"up_ready": ready, "up_first_iteration": time.perf_counter() - started}


def control_latency(world: World, uuid: str, rounds: int = 10) -> list[float]:
    """Round trips of ``pause`` and ``run`` while the agent runs (after its first iterations)."""
    waits = []
    with world.client(uuid) as agent:
        agent.request("run")
        time.sleep(0.3)
        for _ in range(rounds):
            for op in ("pause", "run"):
                started = time.perf_counter()
                agent.request(op)
                waits.append(time.perf_counter() - started)
            time.sleep(0.05)
        agent.request("pause")
    return waits


def raw_numpy(arrays: dict[str, Any], directory: Path) -> dict[str, float]:
    """numpy.save + fsync of every array, then numpy.load of them (page cache), beside the cache."""
    import numpy as np

    directory.mkdir(exist_ok=True)

    def write() -> None:
        for name, array in arrays.items():
            with open(directory / f"{name}.npy", "wb") as handle:
                np.save(handle, array)
                handle.flush()
                os.fsync(handle.fileno())
        fd = os.open(directory, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    def read() -> None:
        for name in arrays:
            np.load(directory / f"{name}.npy")

    seconds_write, _ = timed(write)
    seconds_read, _ = timed(read)
    shutil.rmtree(directory)
    return {"numpy_write_fsync": seconds_write, "numpy_read": seconds_read}


def hera_codec(header: Any, arrays: dict[str, Any], path: Path) -> dict[str, float]:
    """hera's instance file itself, in-process: save (atomic, fsynced) and load."""
    from hera.instance import load, save

    seconds_save, _ = timed(lambda: save(path, header, arrays, mode=0o600))
    seconds_load, _ = timed(lambda: load(path))
    path.unlink()
    return {"codec_save": seconds_save, "codec_load": seconds_load}


#: What the agent logs of an up and of a save (hera/agent/main.py).
LOADED = r"loaded the cache in ([\d.]+) s, Taichi \(\w+\) in ([\d.]+) s, the brain onto the device in ([\d.]+) s"
SAVED = r"exported from the device in ([\d.]+) s, written to the cache in ([\d.]+) s"


def bench_layout(world: World, layout: str, repeat: int, warm_seconds: float) -> dict[str, Any]:
    from hera.instance import load

    out = world.hera("--family", "tick", "--layout", layout, "--seed", "1", "build", "-o", f"{layout}.json")
    uuid = out.split()[2]
    # The first up: fresh instance, cold kernel cache. Run a while so the state is real.
    cold = up_to_first_iteration(world, uuid, f"{layout}.json")  # installs it
    with world.client(uuid) as agent:
        agent.request("run")
        time.sleep(warm_seconds)
        iteration = agent.request("pause")["iteration"]
    world.hera("--uuid", uuid, "down")

    instance = load(world.cache_file(uuid))
    state_bytes = sum(array.nbytes for array in instance.arrays.values())
    file_bytes = world.cache_file(uuid).stat().st_size

    runs: list[dict[str, float]] = []
    latencies: list[float] = []
    for _ in range(repeat):
        run = up_to_first_iteration(world, uuid)
        phases = world.last_log(uuid, LOADED)
        run |= dict(zip(("agent_load_cache", "agent_taichi_init", "agent_to_device"), phases, strict=False))
        latencies += control_latency(world, uuid)
        run["down"], _ = timed(lambda: world.hera("--uuid", uuid, "down"))
        run |= dict(zip(("agent_export", "agent_write"), world.last_log(uuid, SAVED), strict=False))
        run |= raw_numpy(instance.arrays, world.root / "npy")
        run |= hera_codec(instance.header, instance.arrays, world.root / "codec.json")
        runs.append(run)
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    return {
        "layout": layout,
        "state_bytes": state_bytes,
        "file_bytes": file_bytes,
        "iteration_before": iteration,
        "cold_up_first_iteration": cold["up_first_iteration"],
        "median": median,
        "runs": runs,
        "latency_median": statistics.median(latencies),
        "latency_max": max(latencies),
    }


def mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB" if n >= 1 << 20 else f"{n / 1024:,.1f} KiB"


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e6:,.0f} MB/s" if nbytes >= 1 << 20 else "-"


def report(results: list[dict[str, Any]], repeat: int) -> str:
    lines = [
        f"tick layouts, median of {repeat} (cold: the first up of a fresh instance, kernels compiled)",
        "",
        "| layout | state | file | up: serving | up: first iteration | cold first iteration | down | "
        "numpy save+fsync | numpy load | codec save | codec load | control latency median / max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        m, b = r["median"], r["state_bytes"]
        lines.append(
            f"| {r['layout']} | {mib(b)} | {mib(r['file_bytes'])} | {m['up_ready']:.2f} s | {m['up_first_iteration']:.2f} s | "
            f"{r['cold_up_first_iteration']:.2f} s | {m['down']:.2f} s | "
            f"{m['numpy_write_fsync']:.3f} s {rate(b, m['numpy_write_fsync'])} | {m['numpy_read']:.3f} s {rate(b, m['numpy_read'])} | "
            f"{m['codec_save']:.3f} s {rate(b, m['codec_save'])} | {m['codec_load']:.3f} s {rate(b, m['codec_load'])} | "
            f"{r['latency_median'] * 1e3:.1f} / {r['latency_max'] * 1e3:.0f} ms |"
        )
    lines += [
        "",
        "Inside the agent (its log), median: up = read and decode the cache + Taichi init + arrays onto the device;"
        " down = arrays off the device + the cache file written (encode, fsync, rename).",
        "",
        "| layout | load cache | Taichi init | onto device | off device | write cache |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        m = r["median"]
        cells = [f"{m[key]:.2f} s" if key in m else "-" for key in
                 ("agent_load_cache", "agent_taichi_init", "agent_to_device", "agent_export", "agent_write")]
        lines.append(f"| {r['layout']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", nargs="+", default=["example", "gib"], help="tick layouts (default: example gib)")
    parser.add_argument("--repeat", type=int, default=3, help="ups and downs per layout (default 3)")
    parser.add_argument("--warm", type=float, default=2.0, help="seconds the first up runs to fill the state (default 2)")
    parser.add_argument("--dir", type=Path, help="where the throwaway HOME goes (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="hera-bench-", dir=args.dir))
    world = World(root)
    results = []
    try:
        for layout in args.layouts:
            print(f"{layout} ...", file=sys.stderr, flush=True)
            results.append(bench_layout(world, layout, args.repeat, args.warm))
    finally:
        for pid_file in (world.runtime / "hera").glob("*.pid"):  # never leave an agent behind
            try:
                os.kill(int(pid_file.read_text()), 9)
            except (OSError, ValueError):
                pass
        world.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print(report(results, args.repeat))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
