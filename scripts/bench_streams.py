#!/usr/bin/env python3
"""How fast bytes stream into an agent and their records out, and whether the I/O path or the brain sets the pace.

For the ``tick`` test family (one byte presented per iteration, at most 4,096
per kernel call, echoed as its output) it streams a file of random bytes
(default 10 MB) two ways, each in a fresh agent:

* ``hera signal SIGTTIN < FILE`` with ``hera signal SIGTTOU --jsonl --follow``
  writing the records to a file beside it;
* the daemon's data port, through the plain-Python example client
  (docs/examples/data_client.py), which writes the records it gets back.

and checks that every byte was presented exactly once, in order (the JSONL
records' units are the file), with nothing dropped. It measures the time to
the last record, the controller's peak memory (``wait4``), how often the
agent's input queue ran dry while the stream ran (if never, the brain, not
the I/O path, set the pace), and the control latency (``status`` round
trips) while the stream runs. The reference is the brain's own rate: 1 MiB
put straight into its queue while paused, then run, timed to its last unit.

For ``abraxas`` (example layout) the file would take hours (one byte every
``ticks_per_byte`` iterations), so it streams for ``--abraxas-seconds``
through SIGTTIN and compares the units presented per second with the
brain's iterations per second divided by ``ticks_per_byte``.

    python scripts/bench_streams.py                        # 10 MB on tick both ways, 60 s of abraxas
    python scripts/bench_streams.py --mb 2 --abraxas-seconds 0 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_lifecycle import World  # the same throwaway user (HOME, XDG, tick cloned in)

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "docs" / "examples" / "data_client.py"
UP = re.compile(r"^up \S+ (?P<uuid>[0-9a-f-]{36}) .* connection (?P<connection>\S+)$", re.M)


class Watch:
    """``status`` every 50 ms on a connection of its own: round trips, and the input queue's depth."""

    def __init__(self, world: World, uuid: str) -> None:
        self.world, self.uuid = world, uuid
        self.latency: list[float] = []
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        with self.world.client(self.uuid) as agent:
            while not self.stop.is_set():
                started = time.perf_counter()
                status = agent.request("status")
                self.latency.append(time.perf_counter() - started)
                self.samples.append(status["io"] | {"rate": status["rate"], "at": time.monotonic()})
                time.sleep(0.05)

    def done(self) -> None:
        self.stop.set()
        self.thread.join()

    def dry(self, fed: int) -> float:
        """The share of samples, while units were still to come, with nothing queued for the brain."""
        running = [s for s in self.samples if 0 < s["fed"] and s["presented"] < fed]
        return sum(s["pending"] == 0 for s in running) / max(1, len(running))


def up(world: World, file: str) -> tuple[str, str]:
    found = UP.search(world.hera("up", file, "--daemon"))
    assert found, "no up line"
    return found["uuid"], found["connection"]


def io(world: World, uuid: str) -> dict[str, Any]:
    with world.client(uuid) as agent:
        return dict(agent.request("status")["io"])


def wait_presented(world: World, uuid: str, units: int) -> float:
    while io(world, uuid)["presented"] < units:
        time.sleep(0.02)
    return time.monotonic()


def own_rate(world: World, uuid: str, units: int = 1 << 20) -> float:
    """The brain's own units a second: ``units`` put straight into its queue while paused, then run."""
    from hera.agent import protocol

    data = random.randbytes(units)
    with world.client(uuid) as agent:
        agent.request("pause")
        start = agent.request("status")["io"]["presented"]
        for offset in range(0, units, protocol.FEED_LIMIT):
            agent.request("feed", data=protocol.encode_data(data[offset : offset + protocol.FEED_LIMIT]))
        began = time.monotonic()
        agent.request("run")
    took = wait_presented(world, uuid, start + units) - began
    with world.client(uuid) as agent:
        agent.request("read", limit=None)  # these records are not the stream's
    return units / took


def check(records: Path, data: bytes) -> int:
    """Every unit of ``data`` presented once, in order, echoed; the number of records."""
    units = bytearray()
    with records.open("rb") as lines:
        for line in lines:
            record = json.loads(line)
            if "end" in record:
                continue
            units.append(record["unit"])
            assert record["output"] == record["unit"], record
    assert bytes(units) == data, f"{len(units)} records for {len(data)} bytes, or out of order"
    return len(units)


def peak_kib(process: subprocess.Popen[bytes]) -> int:
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return int(usage.ru_maxrss)


def stream(world: World, way: str, source: Path, data: bytes) -> dict[str, Any]:
    """One fresh tick agent, ``data`` streamed ``way`` (sigttin or dataport); the figures."""
    uuid, connection = up(world, "t.json")
    reference = own_rate(world, uuid)
    records = world.work / f"{way}.jsonl"
    start = io(world, uuid)["presented"]
    watch = Watch(world, uuid)
    began = time.monotonic()
    with source.open("rb") as stdin, records.open("wb") as out:
        if way == "sigttin":
            reader = subprocess.Popen(world_command(uuid, "SIGTTOU", "--jsonl", "--follow"), env=world.env, cwd=world.work, stdout=out)
            feeder = subprocess.Popen(world_command(uuid, "SIGTTIN"), env=world.env, cwd=world.work, stdin=stdin, stderr=subprocess.PIPE)
        else:
            reader = None
            feeder = subprocess.Popen([sys.executable, str(CLIENT), connection], cwd=world.work, stdin=stdin, stdout=out)
        peak = peak_kib(feeder)
        assert feeder.returncode == 0, f"the {way} feeder failed ({feeder.returncode})"
        ended = wait_presented(world, uuid, start + len(data))
        watch.done()
        if reader is not None:
            reader.send_signal(signal.SIGINT)
            reader.wait()
            out.flush()
            subprocess.run(world_command(uuid, "SIGTTOU", "--jsonl"), env=world.env, cwd=world.work, stdout=out, check=True)
    count = check(records, data)
    world.hera("--uuid", uuid, "down")
    took = ended - began
    return {
        "way": way,
        "bytes": len(data),
        "records": count,
        "seconds": round(took, 2),
        "units_per_s": round(len(data) / took),
        "own_units_per_s": round(reference),
        "share_of_own": round(len(data) / took / reference, 3),
        "queue_dry_share": round(watch.dry(start + len(data)), 3),
        "controller_peak_mib": round(peak / 1024, 1),
        "latency_median_ms": round(1000 * statistics.median(watch.latency), 1),
        "latency_p95_ms": round(1000 * sorted(watch.latency)[int(0.95 * (len(watch.latency) - 1))], 1),
        "latency_samples": len(watch.latency),
    }


def world_command(uuid: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "hera", "--uuid", uuid, "signal", *args]


def abraxas(world: World, seconds: float) -> dict[str, Any]:
    """abraxas/example fed through SIGTTIN for ``seconds``: units presented a second against iterations / ticks_per_byte."""
    world.hera("--family", "abraxas", "--layout", "example", "--seed", "1", "build", "-o", "a.json")
    uuid, _ = up(world, "a.json")
    from hera.instance import read_header

    ticks = int(read_header(world.work / "a.json").params.get("ticks_per_byte", 4))
    time.sleep(3)
    with world.client(uuid) as agent:
        idle_rate = agent.request("status")["rate"]
    source = world.work / "text.bin"
    source.write_bytes(random.Random(3).randbytes(max(1 << 16, int(idle_rate / ticks * seconds * 3))))
    watch = Watch(world, uuid)
    with source.open("rb") as stdin:
        feeder = subprocess.Popen(world_command(uuid, "SIGTTIN"), env=world.env, cwd=world.work, stdin=stdin, stderr=subprocess.PIPE)
        time.sleep(seconds)
        feeder.send_signal(signal.SIGINT)
        feeder.wait()
    watch.done()
    steady = [s for s in watch.samples if s["at"] >= watch.samples[0]["at"] + 2]
    first, last = steady[0], steady[-1]
    units = (last["presented"] - first["presented"]) / (last["at"] - first["at"])
    rate = statistics.median(s["rate"] for s in steady)
    world.hera("--uuid", uuid, "down")
    return {
        "idle_iterations_per_s": idle_rate,
        "fed_iterations_per_s": rate,
        "ticks_per_byte": ticks,
        "units_per_s": round(units, 1),
        "expected_units_per_s": round(rate / ticks, 1),
        "queue_dry_share": round(sum(s["pending"] == 0 for s in steady) / max(1, len(steady)), 3),
        "latency_median_ms": round(1000 * statistics.median(watch.latency), 1),
        "latency_p95_ms": round(1000 * sorted(watch.latency)[int(0.95 * (len(watch.latency) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=10.0, help="size of the file streamed into tick, in MB (10^6 bytes)")
    parser.add_argument("--abraxas-seconds", type=float, default=60.0, help="how long to stream into abraxas (0: skip)")
    parser.add_argument("--ways", default="sigttin,dataport", help="sigttin, dataport or both")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    results: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="hera-bench-streams-") as scratch:
        world = World(Path(scratch))
        try:
            world.hera("--family", "tick", "--layout", "example", "--seed", "7", "build", "-o", "t.json")
            data = random.Random(10).randbytes(int(args.mb * 1e6))
            source = world.work / "input.bin"
            source.write_bytes(data)
            for way in args.ways.split(","):
                results[way] = stream(world, way, source, data)
                print(json.dumps(results[way]), flush=True)
            if args.abraxas_seconds > 0:
                results["abraxas"] = abraxas(world, args.abraxas_seconds)
                print(json.dumps(results["abraxas"]), flush=True)
        finally:
            world.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
