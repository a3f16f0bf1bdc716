#!/usr/bin/env python3
"""hera against Brian2 (cpp_standalone and cython) and NEST on the CUBA network of Vogels & Abbott (2005).

The same network in every simulator: Brian2's ``examples/CUBA.py`` (4,000 LIF
neurons, p = 0.02, dt = 0.1 ms), fan-in held at 80 as N grows (4k, 40k, 400k),
with and without pair STDP on the excitatory synapses. hera runs it through
the ``vogels-abbott`` family's runtime, as an agent would: ``step(n)`` in
batches of ``--batch`` iterations, spikes recorded. Every run is a fresh
process. Reported per run:

* ``wall_per_sim_s``: wall time of the simulation loop per simulated second;
* ``events_per_s``: synaptic events (spikes × their fan-out) per wall second;
* ``first_iteration_s``: from the network being defined to its first
  iteration done (hera: Taichi init, upload, kernel compile; Brian2: code
  generation and C++ compilation; the connectivity build is not counted);
* ``rate_hz``, ``cv_isi``: mean rate and mean ISI coefficient of variation, to
  show the simulators run the same dynamics;
* the ratio hera / peer of ``wall_per_sim_s`` (below 1: hera is faster).

Brian2 2.9.0 is the newest release for Python 3.11 and needs ``numpy<2.4``, so
it gets a virtual environment of its own, made on first use under
``~/.cache/hera-bench/brian2-venv`` (``--peer-venv`` to move it), and runs as
a subprocess. NEST is tried in the same environment (``pip install
nest-simulator``) and skipped when it does not install.

    python scripts/bench_vs_brian2.py                   # everything: several minutes
    python scripts/bench_vs_brian2.py --sizes 4k 40k --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

SIZES = {"4k": 4_000, "40k": 40_000, "400k": 400_000}
DEFAULT_VENV = Path.home() / ".cache" / "hera-bench" / "brian2-venv"

# -- hera ------------------------------------------------------------------------------------------

HERA_CHILD = r"""
import json, sys, time, uuid
import numpy as np
layout, duration, batch, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
from hera.family import get
from hera.instance import FamilyRef, Header, now
family = get("vogels-abbott")
params = family.resolve(layout)
t = time.perf_counter()
built = family.build(params, seed)
build_s = time.perf_counter() - t
header = Header(uuid=str(uuid.uuid4()), callsign="bench", family=FamilyRef(name=family.name, version=family.version),
                layout=layout, params=params.model_dump(mode="json"), seed=seed, created=now())
t0 = time.perf_counter()
from hera.kernels import init
init("cpu")
runtime = family.runtime(header, built.arrays, "cpu")
runtime.record(True)
runtime.step(1)
first = time.perf_counter() - t0
steps = int(round(duration / (params.dt_ms * 1e-3)))
t = time.perf_counter()
done = 1
while done < steps:
    done += runtime.step(min(batch, steps - done)).iterations
wall = time.perf_counter() - t
its, ids = runtime.take_spikes()
ptr = built.arrays["syn.ptr"]
print(json.dumps({"iterations": steps, "loop_s": wall * steps / (steps - 1), "first_iteration_s": first,
                  "build_s": build_s, "spike_i": ids.tolist() if len(ids) < 5_000_000 else None,
                  "spike_t": its.tolist() if len(ids) < 5_000_000 else None,
                  "spikes": int(len(ids)), "events": int((np.diff(ptr)[ids]).sum()), "neurons": params.neurons,
                  "dt_s": params.dt_ms * 1e-3}))
"""

# -- Brian2 -----------------------------------------------------------------------------------------

BRIAN2_CHILD = r"""
import json, sys, time, tempfile
import numpy as np
target, n, stdp, duration, seed_value = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", float(sys.argv[4]), int(sys.argv[5])
from brian2 import *
if target == "cpp_standalone":
    directory = tempfile.mkdtemp(prefix="brian2-cuba-")
    set_device("cpp_standalone", directory=directory, build_on_run=False)
    prefs.devices.cpp_standalone.openmp_threads = 0
else:
    prefs.codegen.target = "cython"
seed(seed_value)
defaultclock.dt = 0.1 * ms
taum, taue, taui = 20 * ms, 5 * ms, 10 * ms
Vt, Vr, El = -50 * mV, -60 * mV, -49 * mV
ne = int(round(0.8 * n))
p = min(1.0, 80.0 / n)
eqs = '''
dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
dge/dt = -ge/taue : volt
dgi/dt = -gi/taui : volt
'''
P = NeuronGroup(n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms, method="exact")
P.v = "Vr + rand() * (Vt - Vr)"
P.ge = 0 * mV
P.gi = 0 * mV
we = (60 * 0.27 / 10) * mV
wi = (-20 * 4.5 / 10) * mV
if stdp:
    taupre = taupost = 20 * ms
    wmax = 2 * we
    dApre = 0.01 * we
    dApost = -1.05 * dApre
    Ce = Synapses(P, P, '''w : volt
                 dApre/dt = -Apre/taupre : volt (event-driven)
                 dApost/dt = -Apost/taupost : volt (event-driven)''',
                  on_pre='''ge += w
                 Apre += dApre
                 w = clip(w + Apost, 0*mV, wmax)''',
                  on_post='''Apost += dApost
                 w = clip(w + Apre, 0*mV, wmax)''')
    Ce.connect("i<ne", p=p)
    Ce.w = "we"
else:
    Ce = Synapses(P, P, on_pre="ge += we")
    Ce.connect("i<ne", p=p)
Ci = Synapses(P, P, on_pre="gi += wi")
Ci.connect("i>=ne", p=p)
M = SpikeMonitor(P)
if target == "cpp_standalone":
    run(duration * second)
    t = time.perf_counter()
    device.build(directory=directory, compile=True, run=True, debug=False)
    total = time.perf_counter() - t
    loop = float(device._last_run_time)
    first = total - loop
else:
    t = time.perf_counter()
    run(defaultclock.dt)  # compiles every code object and runs one step
    first = time.perf_counter() - t
    t = time.perf_counter()
    run(duration * second - defaultclock.dt)
    loop = (time.perf_counter() - t) * duration / (duration - float(defaultclock.dt))
i = np.asarray(M.i[:]); ts = np.asarray(M.t[:] / second)
events = int(len(i) * 80.0)  # fan-out is Binomial(n, 80/n): its mean, 80
print(json.dumps({"iterations": int(round(duration / 1e-4)), "loop_s": loop, "first_iteration_s": first,
                  "spikes": int(len(i)), "events": events, "neurons": n, "dt_s": 1e-4,
                  "spike_i": i.tolist() if len(i) < 5_000_000 else None,
                  "spike_t": np.round(ts / 1e-4).astype(int).tolist() if len(i) < 5_000_000 else None}))
"""

NEST_CHILD = r"""
import json, sys, time
import numpy as np
n, duration, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
import nest
nest.set_verbosity("M_ERROR")
nest.ResetKernel()
nest.SetKernelStatus({"resolution": 0.1, "local_num_threads": 2, "rng_seed": seed + 1})
ne = int(round(0.8 * n)); p = min(1.0, 80.0 / n)
C, taum = 250.0, 20.0
t0 = time.perf_counter()
pop = nest.Create("iaf_psc_exp", n, params={"C_m": C, "tau_m": taum, "t_ref": 5.0, "E_L": -49.0, "V_th": -50.0,
                                           "V_reset": -60.0, "tau_syn_ex": 5.0, "tau_syn_in": 10.0})
pop.V_m = nest.random.uniform(-60.0, -50.0)
# Brian2's ge (mV) is NEST's current times tau_m / C: a jump of we mV is we * C / tau_m pA
we, wi = 1.62 * C / taum, -9.0 * C / taum
rule = {"rule": "pairwise_bernoulli", "p": p, "allow_autapses": True}
nest.Connect(pop[:ne], pop, rule, {"weight": we, "delay": 0.1})
nest.Connect(pop[ne:], pop, rule, {"weight": wi, "delay": 0.1})
rec = nest.Create("spike_recorder")
nest.Connect(pop, rec)
nest.Simulate(0.1)
first = time.perf_counter() - t0
t = time.perf_counter()
nest.Simulate(duration * 1000.0 - 0.1)
loop = (time.perf_counter() - t) * duration / (duration - 1e-4)
ev = rec.events
i = np.asarray(ev["senders"]) - 1; ts = np.asarray(ev["times"])
print(json.dumps({"iterations": int(round(duration / 1e-4)), "loop_s": loop, "first_iteration_s": first,
                  "spikes": int(len(i)), "events": int(len(i) * 80), "neurons": n, "dt_s": 1e-4,
                  "spike_i": i.tolist(), "spike_t": np.round(ts / 0.1).astype(int).tolist()}))
"""


def cv_isi(spike_i: list[int] | None, spike_t: list[int] | None) -> float | None:
    """Mean coefficient of variation of the inter-spike intervals, over neurons with at least 3 spikes."""
    if not spike_i:
        return None
    import numpy as np

    i = np.asarray(spike_i)
    t = np.asarray(spike_t)
    order = np.lexsort((t, i))
    i, t = i[order], t[order]
    same = i[1:] == i[:-1]
    isi = np.diff(t)[same].astype(float)
    owner = i[1:][same]
    if len(isi) == 0:
        return None
    counts = np.bincount(owner)
    sums = np.bincount(owner, isi)
    squares = np.bincount(owner, isi * isi)
    keep = counts >= 2
    mean = sums[keep] / counts[keep]
    std = np.sqrt(np.maximum(squares[keep] / counts[keep] - mean**2, 0))
    return float(np.mean(std / mean))


def summarise(raw: dict, duration: float) -> dict:
    sim = raw["iterations"] * raw["dt_s"]
    loop = raw["loop_s"]
    return {
        "wall_per_sim_s": loop / sim,
        "events_per_s": raw["events"] / loop if loop > 0 else None,
        "first_iteration_s": raw["first_iteration_s"],
        "rate_hz": raw["spikes"] / raw["neurons"] / sim,
        "cv_isi": cv_isi(raw.get("spike_i"), raw.get("spike_t")),
    }


def run_child(cmd: list[str], timeout: float, env: dict | None = None) -> dict | str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1][:300]
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_python(folder: Path, quiet: bool) -> tuple[Path | None, bool]:
    """The peers' interpreter (made on first use), and whether NEST imports in it."""
    python = folder / "bin" / "python"
    if not python.exists():
        if not quiet:
            print(f"making {folder} for Brian2 2.9.0 (first use only) ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(folder)
        pip = [str(python), "-m", "pip", "install", "-q"]
        if subprocess.run([*pip, "brian2==2.9.0", "numpy<2.4", "cython", "setuptools"]).returncode != 0:
            return None, False
        subprocess.run([*pip, "nest-simulator"], capture_output=True)  # optional
    nest = subprocess.run([str(python), "-c", "import nest"], capture_output=True).returncode == 0
    return python, nest


def machine() -> str:
    from hera.devices import cpu

    host = cpu()
    return f"{host.name}, {host.cores} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--stdp", choices=["both", "off", "on"], default="both")
    parser.add_argument("--peers", nargs="*", default=["cpp_standalone", "cython", "nest"],
                        help="which peers to run (cpp_standalone, cython, nest); none for hera alone")
    parser.add_argument("--duration", type=float, default=1.0, help="simulated seconds per run")
    parser.add_argument("--batch", type=int, default=1000, help="iterations per hera step() call")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed to one run")
    parser.add_argument("--skip-slow", action="store_true",
                        help="skip Brian2 cython at 400k and NEST above 4k (minutes each here)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    python, have_nest = (None, False)
    if args.peers:
        python, have_nest = peer_python(args.peer_venv, args.json)
    stdps = {"both": [False, True], "off": [False], "on": [True]}[args.stdp]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, HERA_TAICHI_CACHE=os.environ.get("HERA_TAICHI_CACHE", str(Path(scratch) / "ticache")))
        hera_script = Path(scratch) / "hera_child.py"
        hera_script.write_text(HERA_CHILD)
        brian_script = Path(scratch) / "brian2_child.py"
        brian_script.write_text(BRIAN2_CHILD)
        nest_script = Path(scratch) / "nest_child.py"
        nest_script.write_text(NEST_CHILD)
        for size in args.sizes:
            n = SIZES[size]
            for stdp in stdps:
                layout = f"cuba-{size}" + ("-stdp" if stdp else "")
                row: dict = {"size": size, "neurons": n, "stdp": stdp, "results": {}}
                runs = {"hera": [sys.executable, str(hera_script), layout, str(args.duration), str(args.batch),
                                 str(args.seed)]}
                if python is not None:
                    for target in ("cpp_standalone", "cython"):
                        if target in args.peers and not (args.skip_slow and target == "cython" and n >= 400_000):
                            runs[f"brian2 {target}"] = [str(python), str(brian_script), target, str(n),
                                                        "1" if stdp else "0", str(args.duration), str(args.seed)]
                    if "nest" in args.peers and have_nest and not stdp and not (args.skip_slow and n > 4_000):
                        runs["nest"] = [str(python), str(nest_script), str(n), str(args.duration), str(args.seed)]
                for name, cmd in runs.items():
                    if not args.json:
                        print(f"{layout}: {name} ...", file=sys.stderr, flush=True)
                    raw = run_child(cmd, args.timeout, env)
                    row["results"][name] = summarise(raw, args.duration) if isinstance(raw, dict) else {"error": raw}
                hera = row["results"]["hera"].get("wall_per_sim_s")
                row["ratios"] = {
                    peer: hera / r["wall_per_sim_s"]
                    for peer, r in row["results"].items()
                    if peer != "hera" and hera and r.get("wall_per_sim_s")
                }
                rows.append(row)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "duration_s": args.duration,
              "batch": args.batch, "nest": have_nest, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"# {report['machine']}, {report['date']}, {args.duration} s simulated per run")
    head = "| network | simulator | wall s / sim s | events / s | first iteration s | rate Hz | CV ISI | hera / peer |"
    print(head)
    print("|" + " --- |" * 8)
    for row in rows:
        label = f"{row['size']}" + (" + STDP" if row["stdp"] else "")
        for name, r in row["results"].items():
            if "error" in r:
                print(f"| {label} | {name} | failed: {r['error']} | | | | | |")
                continue
            ratio = row["ratios"].get(name)
            cv = f"{r['cv_isi']:.2f}" if r["cv_isi"] is not None else "–"
            print(
                f"| {label} | {name} | {r['wall_per_sim_s']:.3f} | {r['events_per_s'] / 1e6:.1f} M "
                f"| {r['first_iteration_s']:.2f} | {r['rate_hz']:.2f} | {cv} | {f'{ratio:.2f}' if ratio else ''} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
