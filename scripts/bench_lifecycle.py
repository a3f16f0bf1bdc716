#!/usr/bin/env python3
"""A brain's whole life, timed and weighed: build, install, up, down, copy, inspect, grow, uninstall.

For each layout (``FAMILY/LAYOUT``; a bare name is a ``tick`` layout) it
builds an instance in a throwaway HOME, installs it, ups it once and runs it
a while (fed text, where the family takes input) so its arrays hold real
state, downs it, and then, ``--repeat`` times:

* ``hera --uuid X up --daemon --paused``, then one ``step``: the time until
  ``up`` returns (the agent serves requests) and until its first iteration is
  done (kernels from the warm offline cache after the first up);
* a few ``pause``/``run`` round trips while it runs (the control latency);
* ``hera down``: until the state is in the cache (atomically, fsynced) and the
  agent process has exited;
* beside them, in the same run and on the same disk, the raw cost of the same
  bytes: every array written with ``numpy.save`` and fsynced, then read with
  ``numpy.load`` (one array at a time, as hera's file holds them). The ratios
  ``up / numpy.load`` and ``down / numpy.save+fsync`` are the issue's targets
  (each within 2×).

Then the one-shot commands on the same brain, each a child process whose
peak resident memory GNU time reports (``/usr/bin/time -f %M``; without it,
``VmHWM`` polled from ``/proc``): ``copy`` (of the downed agent),
``install --as-new`` of that copy (a learned brain; the built one is
installed too, but it is all zeros), ``inspect``, ``grow`` (of the copy,
one delay tap longer: abraxas only) and ``uninstall`` (of the clone). The agent's
peak is its ``VmHWM``, polled from ``/proc`` while it lives. Beside them:
the brain's state (bytes of its arrays) and its largest array, and the file
sizes (built, cached after the run, raw bytes, ``.npy``).

It never takes the machine down: a layout is skipped, saying why, when
``MemAvailable`` is below what hera's own estimate says the agent needs
(``hera layouts``: device + host memory) or the disk lacks room for its
files; and while anything runs, a watchdog kills it should ``MemAvailable``
fall below ``GUARD`` (the result then says so).

    python scripts/bench_lifecycle.py                          # tick example and gib, 3 repeats
    python scripts/bench_lifecycle.py --layouts tick/gib abraxas/medium abraxas/medium-8g --repeat 2 --json out.json
    python scripts/bench_lifecycle.py --layouts example --repeat 5

``--json`` writes every figure (``-`` for standard output, the tables then go to stderr).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICK = ROOT / "tests" / "families" / "tick"
#: Below this much MemAvailable, whatever the benchmark runs is killed: the machine stays usable.
GUARD = 1 << 30
#: GNU time, which reports a command's peak resident memory exactly (``%M``).
GNU_TIME = Path("/usr/bin/time").is_file()
#: The text fed to a family that takes input while the first up runs, so it learns something.
TEXT = b"the quick brown fox jumps over the lazy dog. " * 40


def mem_available() -> int:
    """``MemAvailable`` of /proc/meminfo, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("this benchmark needs Linux (/proc/meminfo)")


def peak_of(pid: int) -> int | None:
    """The process's peak resident memory so far (``VmHWM``), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class MemoryExhausted(RuntimeError):
    """The watchdog killed something: MemAvailable fell below GUARD."""


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
        shutil.copytree(TICK, self.work / "tick", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
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
        return self.measured(*args)[2]

    def measured(self, *args: str) -> tuple[float, int, str]:
        """``hera ARGS``: seconds, peak resident bytes, stdout; a failure ends the run.

        The peak is GNU time's (``%M``) where there is one, else the last
        ``VmHWM`` polled. Never ``wait4``'s ``ru_maxrss``: Linux counts in it
        what the parent held when it forked the child, so after the benchmark
        itself held a brain every command would seem to. The watchdog kills
        the command should MemAvailable fall below GUARD.
        """
        started = time.perf_counter()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as peak_file:
            timer = ["/usr/bin/time", "-f", "%M", "-o", peak_file.name] if GNU_TIME else []
            process = subprocess.Popen(
                [*timer, sys.executable, "-m", "hera", *args], env=self.env, cwd=self.work, stdout=out, stderr=err
            )
            killed = False
            polled = 0
            while process.poll() is None:
                polled = max(polled, peak_of(process.pid) or 0)  # GNU time's own, with it: its figure is the one
                if not killed and mem_available() < GUARD:
                    process.kill()
                    killed = True
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
            reported = peak_file.read().split()
            peak = int(reported[-1]) * 1024 if GNU_TIME and reported and reported[-1].isdigit() else polled
        if killed:
            raise MemoryExhausted(f"hera {' '.join(args)} was killed: MemAvailable fell below {GUARD >> 20} MiB")
        if process.returncode != 0:
            raise SystemExit(f"hera {' '.join(args)} failed ({process.returncode}):\n{stdout}{stderr}")
        return seconds, peak, stdout

    def last_log(self, uuid: str, pattern: str) -> tuple[float, ...]:
        """The numbers of the agent's last log line matching ``pattern`` (a regular expression)."""
        text = (self.home / ".local/state/hera/logs" / f"{uuid}.log").read_text()
        found = re.findall(pattern, text)
        return tuple(float(x) for x in found[-1]) if found else ()

    def cache_file(self, uuid: str) -> Path:
        return self.home / ".local/share/hera/agents" / f"{uuid}.json"

    def pid_file(self, uuid: str) -> Path:
        return self.runtime / "hera" / f"{uuid}.pid"

    def client(self, uuid: str) -> Any:
        from hera.manager.client import AgentClient

        return AgentClient.unix(self.runtime / "hera" / f"{uuid}.sock", timeout=3600)

    def kill_agents(self) -> None:
        """Never leave an agent behind."""
        for pid_file in (self.runtime / "hera").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)

    def close(self) -> None:
        self.kill_agents()
        shutil.rmtree(self.runtime, ignore_errors=True)


class AgentWatch:
    """The agent of ``uuid`` from its pid-file on: its peak resident memory, and the watchdog.

    Polls ``VmHWM`` (monotonic, so the last reading before the process exits
    is its peak, but for the final poll interval) and kills the agent should
    MemAvailable fall below GUARD.
    """

    def __init__(self, world: World, uuid: str) -> None:
        self.world, self.uuid = world, uuid
        self.peak = 0
        self.killed = False
        self._done = threading.Event()  # stop once the agent is gone
        self._abort = threading.Event()  # stop now
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> AgentWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        (self._done if kind is None else self._abort).set()
        self._thread.join()
        if self.killed and kind is None:
            raise MemoryExhausted(f"the agent was killed: MemAvailable fell below {GUARD >> 20} MiB")

    def _pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(self.world.pid_file(self.uuid).read_text().split()[0])
        return None

    def _watch(self) -> None:
        pid: int | None = None
        while not self._abort.is_set():
            pid = pid or self._pid()
            peak = peak_of(pid) if pid is not None else None
            if peak is None:  # not started yet, or gone (a pid-file left from the last up names a dead one)
                if self._done.is_set():
                    return
                pid = None
            else:
                self.peak = max(self.peak, peak)
                if mem_available() < GUARD and not self.killed:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
                    self.killed = True
            time.sleep(0.02)

    def until_gone(self, timeout: float = 600) -> None:
        """Keep polling until the agent process has exited (after ``down``)."""
        self._done.set()
        self._thread.join(timeout)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
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


def down(world: World, uuid: str, watch: AgentWatch) -> float:
    seconds, _ = timed(lambda: world.hera("--uuid", uuid, "down"))
    watch.until_gone()
    return seconds


def arrays_of(path: Path) -> Iterator[tuple[str, Any]]:
    """The arrays of an instance file, one at a time (the benchmark holds one array, not the brain)."""
    from hera.instance import InstanceFile

    with InstanceFile(path) as instance:
        for name in list(instance.entries):
            yield name, instance.array(name)


def raw_numpy(source: Path, directory: Path) -> dict[str, float]:
    """numpy.save + fsync of every array of ``source``, then numpy.load of each, timed apart from hera's decoding."""
    import numpy as np

    directory.mkdir(exist_ok=True)
    seconds_write = 0.0
    names = []
    npy_bytes = nonzero = size = 0
    for name, array in arrays_of(source):
        nonzero += int(np.count_nonzero(array))
        size += int(array.size)

        def write(name: str = name, array: Any = array) -> None:
            with open(directory / f"{name}.npy", "wb") as handle:
                np.save(handle, array)
                handle.flush()
                os.fsync(handle.fileno())

        seconds, _ = timed(write)
        seconds_write += seconds
        names.append(name)
        del array
    fd = os.open(directory, os.O_RDONLY)
    seconds, _ = timed(lambda: os.fsync(fd))
    os.close(fd)
    seconds_write += seconds
    seconds_read = 0.0
    for name in names:
        npy_bytes += (directory / f"{name}.npy").stat().st_size
        started = time.perf_counter()
        np.load(directory / f"{name}.npy")
        seconds_read += time.perf_counter() - started
    shutil.rmtree(directory)
    return {"numpy_write_fsync": seconds_write, "numpy_read": seconds_read, "npy_bytes": npy_bytes, "nonzero": nonzero / max(1, size)}


def hera_codec(source: Path, path: Path) -> dict[str, float]:
    """hera's instance file itself, in-process: save (atomic, fsynced) and load of the whole brain."""
    from hera.instance import load, save

    def save_it() -> None:
        instance = load(source)
        started = time.perf_counter()
        save(path, instance.header, instance.arrays, mode=0o600)
        times["codec_save"] = time.perf_counter() - started

    times: dict[str, float] = {}
    save_it()
    times["codec_load"], _ = timed(lambda: load(path))
    path.unlink()
    return times


#: What the agent logs of an up and of a save (hera/agent/main.py; an agent that decodes as it uploads
#: counts the decoding in "onto the device", one that exports as it writes counts the export in "write").
LOADED = r"(?:loaded the cache|read the cached file) in ([\d.]+) s, Taichi \(\w+\) in ([\d.]+) s, the brain onto the device in ([\d.]+) s"
SAVED = r"exported from the device in ([\d.]+) s, written to the cache in ([\d.]+) s"


def estimate(world: World, family: str, layout: str) -> dict[str, Any]:
    """hera's own estimate of the layout (``hera layouts --json``)."""
    rows = json.loads(world.hera("--family", family, "layouts", "--json", "--device", "cpu"))
    return next(row for row in rows if row["layout"] == layout)


def fits(world: World, family: str, layout: str) -> str | None:
    """Why the layout cannot be run here now, or None: memory by hera's estimate, disk for its files."""
    guess = estimate(world, family, layout)
    need = guess["device_bytes"] + guess["host_bytes"] + GUARD
    available = mem_available()
    if need > available:
        return f"needs {need / 2**30:.1f} GiB (hera's estimate, device + host, + {GUARD >> 20} MiB spare), MemAvailable is {available / 2**30:.1f} GiB"
    disk = shutil.disk_usage(world.root).free
    files = 6 * guess["file_bytes"]  # built, cached, its previous, npy, copy, grown copy
    if files > disk:
        return f"needs {files / 2**30:.1f} GiB of disk for its files, {disk / 2**30:.1f} GiB free"
    return None


def warm_up(world: World, uuid: str, seconds: float) -> int:
    """Run the agent ``seconds`` (fed text where it takes input) so its arrays hold real state; its iteration."""
    from hera.errors import AgentFailed

    with world.client(uuid) as agent:
        with contextlib.suppress(AgentFailed):  # a family without an input area
            agent.request("feed", data=base64.b64encode(TEXT).decode())
        agent.request("run")
        time.sleep(seconds)
        return int(agent.request("pause")["iteration"])


def bench_layout(world: World, spec: str, repeat: int, warm_seconds: float, codec: bool) -> dict[str, Any]:
    family, _, layout = spec.rpartition("/")
    family = family or "tick"
    result: dict[str, Any] = {"layout": f"{family}/{layout}"}
    why = fits(world, family, layout)
    if why:
        result["skipped"] = why
        return result
    result["estimate"] = estimate(world, family, layout)
    peaks: dict[str, int] = {}
    times: dict[str, float] = {}
    built = f"{layout}.json"
    times["build"], peaks["build"], out = world.measured("--family", family, "--layout", layout, "--seed", "1", "build", "-o", built)
    uuid = out.split()[2]
    result["built_file_bytes"] = (world.work / built).stat().st_size
    times["install_built"], peaks["install_built"], _ = world.measured("install", built)
    (world.work / built).unlink()

    # The first up: fresh instance, cold kernel cache; run a while so the state is real.
    with AgentWatch(world, uuid) as watch:
        cold = up_to_first_iteration(world, uuid)
        result["iteration_before"] = warm_up(world, uuid, warm_seconds)
        times["cold_down"] = down(world, uuid, watch)
    result["cold_up_first_iteration"] = cold["up_first_iteration"]
    cached = world.cache_file(uuid)
    result["file_bytes"] = cached.stat().st_size
    sizes = [(name, array.nbytes) for name, array in arrays_of(cached)]
    result["state_bytes"] = sum(n for _, n in sizes)
    result["largest_array"] = max(sizes, key=lambda pair: pair[1])

    runs: list[dict[str, float]] = []
    latencies: list[float] = []
    agent_peaks: list[int] = []
    for _ in range(repeat):
        with AgentWatch(world, uuid) as watch:
            run = up_to_first_iteration(world, uuid)
            phases = world.last_log(uuid, LOADED)
            run |= dict(zip(("agent_load_cache", "agent_taichi_init", "agent_to_device"), phases, strict=False))
            latencies += control_latency(world, uuid)
            run["down"] = down(world, uuid, watch)
        agent_peaks.append(watch.peak)
        run |= dict(zip(("agent_export", "agent_write"), world.last_log(uuid, SAVED), strict=False))
        numpy = raw_numpy(cached, world.root / "npy")
        result["npy_bytes"], result["nonzero"] = numpy.pop("npy_bytes"), numpy.pop("nonzero")
        run |= numpy
        if codec:
            run |= hera_codec(cached, world.root / "codec.json")
        run["up_vs_numpy_load"] = run["up_first_iteration"] / run["numpy_read"]
        run["down_vs_numpy_save"] = run["down"] / run["numpy_write_fsync"]
        runs.append(run)
    peaks["agent"] = max(agent_peaks)

    # The one-shot commands on the downed brain; one the watchdog kills is reported, the rest still run.
    killed: dict[str, str] = {}

    def one_shot(name: str, *args: str) -> str:
        try:
            times[name], peaks[name], out = world.measured(*args)
        except MemoryExhausted as exc:
            killed[name] = str(exc)
            return ""
        return out

    one_shot("copy", "--uuid", uuid, "copy", "-o", "copy.json")
    clone = one_shot("install", "install", "copy.json", "--as-new").split()[2:3]  # a learned brain
    one_shot("inspect", "--uuid", uuid, "inspect")
    if family == "abraxas":
        from hera.instance import read_header

        params = read_header(cached).params
        axon = int(params.get("axon_length", 32)) + int(params.get("delay_step", 4))
        one_shot("grow", "grow", "copy.json", "--set", f"axon_length={axon}")
    (world.work / "copy.json").unlink(missing_ok=True)
    if clone:
        one_shot("uninstall", "--uuid", clone[0], "uninstall")
    world.hera("--uuid", uuid, "uninstall")
    result["killed"] = killed

    result |= {
        "median": {key: statistics.median(run[key] for run in runs) for key in runs[0]},
        "range": {key: (min(run[key] for run in runs), max(run[key] for run in runs)) for key in runs[0]},
        "runs": runs,
        "agent_peaks": agent_peaks,
        "peak_rss": peaks,
        "seconds": times,
        "latency_median": statistics.median(latencies),
        "latency_max": max(latencies),
    }
    return result


def size(n: float) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):,.2f} GiB"
    return f"{n / (1 << 20):,.1f} MiB" if n >= 1 << 20 else f"{n / 1024:,.1f} KiB"


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:,.2f} GB/s" if nbytes >= 1 << 20 else "-"


def report(results: list[dict[str, Any]], repeat: int) -> str:
    done = [r for r in results if "skipped" not in r]
    lines = [f"median of {repeat} (cold: the first up of a fresh instance, kernels compiled); range in brackets", ""]
    lines += [
        "| layout | state | up to first iteration | numpy.load | up ÷ load | down | numpy.save + fsync | down ÷ save | cold first iteration |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in done:
        m, lo_hi, b = r["median"], r["range"], r["state_bytes"]

        def cell(key: str, m: dict[str, float] = m, lo_hi: dict[str, Any] = lo_hi) -> str:
            low, high = lo_hi[key]
            return f"{m[key]:.2f} s ({low:.2f}–{high:.2f})"

        lines.append(
            f"| {r['layout']} | {size(b)} | {cell('up_first_iteration')} | {cell('numpy_read')} | {m['up_vs_numpy_load']:.1f}× | "
            f"{cell('down')} | {cell('numpy_write_fsync')} | {m['down_vs_numpy_save']:.1f}× | {r['cold_up_first_iteration']:.2f} s |"
        )
    lines += [
        "",
        "Peak resident memory (the agent: VmHWM over up, first iteration, control round trips and down; the commands: GNU time's %M)",
        "",
        "| layout | state | largest array | agent | agent ÷ state | estimate (device + host) | install | copy | inspect | grow | uninstall | build |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in done:
        p, e = r["peak_rss"], r["estimate"]
        cells = [size(p[key]) if key in p else "-" for key in ("install", "copy", "inspect", "grow", "uninstall", "build")]
        lines.append(
            f"| {r['layout']} | {size(r['state_bytes'])} | {r['largest_array'][0]} {size(r['largest_array'][1])} | "
            f"{size(p['agent'])} | {p['agent'] / r['state_bytes']:.2f}× | {size(e['device_bytes'] + e['host_bytes'])} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Files: the built (fresh) instance, the cached one after the run, the state's raw bytes, the same as .npy",
        "",
        "| layout | iterations run | non-zero | built file | cached file | cached ÷ raw | raw state | .npy | estimate (file) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in done:
        lines.append(
            f"| {r['layout']} | {r['iteration_before']:,} | {r['nonzero']:.1%} | {size(r['built_file_bytes'])} | {size(r['file_bytes'])} | "
            f"{r['file_bytes'] / r['state_bytes']:.2f} | {size(r['state_bytes'])} | {size(r['npy_bytes'])} | {size(r['estimate']['file_bytes'])} |"
        )
    lines += [
        "",
        "Inside the agent (its log), median: up = read and decode the cache + Taichi init + arrays onto the device;"
        " down = arrays off the device + the cache file written (encode, fsync, rename). Then the commands' times.",
        "",
        "| layout | load cache | Taichi init | onto device | off device | write cache | build | install | copy | inspect | grow | uninstall | control latency median / max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in done:
        m, s = r["median"], r["seconds"]
        cells = [f"{m[key]:.2f} s" if key in m else "-" for key in
                 ("agent_load_cache", "agent_taichi_init", "agent_to_device", "agent_export", "agent_write")]
        cells += [f"{s[key]:.2f} s" if key in s else "-" for key in ("build", "install", "copy", "inspect", "grow", "uninstall")]
        cells.append(f"{r['latency_median'] * 1e3:.1f} / {r['latency_max'] * 1e3:.0f} ms")
        lines.append(f"| {r['layout']} | " + " | ".join(cells) + " |")
    if any("codec_save" in r["median"] for r in done):
        lines += ["", "hera's codec in-process (the whole brain at once), median:", ""]
        for r in done:
            if "codec_save" in r["median"]:
                m, b = r["median"], r["state_bytes"]
                lines.append(f"- {r['layout']}: save {m['codec_save']:.2f} s ({rate(b, m['codec_save'])}), load {m['codec_load']:.2f} s ({rate(b, m['codec_load'])})")
    for r in results:
        if "skipped" in r:
            lines += ["", f"{r['layout']}: skipped: {r['skipped']}"]
        for name, why in (r.get("killed") or {}).items():
            lines += ["", f"{r['layout']}: {name}: {why}"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", nargs="+", default=["example", "gib"], help="FAMILY/LAYOUT (bare: tick's); default: example gib")
    parser.add_argument("--repeat", type=int, default=3, help="ups and downs per layout (default 3)")
    parser.add_argument("--warm", type=float, default=2.0, help="seconds the first up runs to fill the state (default 2)")
    parser.add_argument("--codec", action="store_true", help="also time hera's codec in-process on the whole brain (holds it twice)")
    parser.add_argument("--dir", type=Path, help="where the throwaway HOME goes (default: a temporary directory)")
    parser.add_argument("--json", help="also write every figure here ('-': standard output, the tables to stderr)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="hera-bench-", dir=args.dir))
    world = World(root)
    results = []
    try:
        for spec in args.layouts:
            print(f"{spec} ...", file=sys.stderr, flush=True)
            try:
                results.append(bench_layout(world, spec, args.repeat, args.warm, args.codec))
            except MemoryExhausted as exc:
                world.kill_agents()
                results.append({"layout": spec, "skipped": str(exc)})
            if "skipped" in results[-1]:
                print(f"{spec}: skipped: {results[-1]['skipped']}", file=sys.stderr, flush=True)
    finally:
        world.close()
        shutil.rmtree(root, ignore_errors=True)
    tables = sys.stderr if args.json == "-" else sys.stdout
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}", file=tables)
    print(report(results, args.repeat), file=tables)
    if args.json:
        text = json.dumps(results, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
