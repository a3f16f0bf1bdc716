#!/usr/bin/env python3
"""hera against Brian2 cpp_standalone (and optionally cython, NEST) on the CUBA network, compared fairly.

The same network in every simulator: Brian2's ``examples/CUBA.py`` (4,000 LIF
neurons, p = 0.02, dt = 0.1 ms), fan-in held at 80 as N grows (4k, 40k, 400k),
with and without pair STDP on the excitatory synapses. hera runs it through
the ``vogels-abbott`` family's runtime, as an agent would: ``step(n)`` in
batches of ``--batch`` iterations, spikes recorded. Every run is a fresh
process; all run on one thread (hera: ``cpu_max_num_threads=1``, Brian2:
``openmp_threads = 0``, NEST alone uses 2).

What makes the comparison fair (issue 10):

* **float32 on both sides.** hera computes in float32; Brian2 runs with
  ``prefs.core.default_float_dtype = float32`` (peers ``cpp_standalone`` and
  ``cython``). Brian2's default float64 is a second, labelled row
  (``cpp_standalone-float64``, ``cython-float64``). Each result states its float type.
  ``cpp_standalone-weights`` stores a weight per synapse as hera does, where
  Brian2's example adds a constant (``on_pre="ge += we"``): the same work as hera's.
* **STDP in hera's per-neuron trace form.** hera keeps one presynaptic trace
  per neuron (``apre``) and one postsynaptic trace per neuron (``apost``),
  decayed by ``exp(-dt/tau)`` every step before the spikes are handled, and
  jumped at spikes. Brian2 runs the same: the traces are NeuronGroup
  variables (``dapre/dt = -apre/taupre``, exact), not per-synapse event-driven
  ones. One step's order, the same on both sides: (1) every spiking excitatory
  neuron's synapses deliver ``w`` and are then depressed,
  ``w = clip(w + apost_post, 0, wmax)`` (apost not yet jumped this step);
  (2) the traces of the spiking neurons jump (``apre += A_pre``, ``apost +=
  A_post``; Brian2 in the neurons' reset, moved to order 0 of the "synapses"
  slot, between its pre and post pathways, whose orders are -1 and 1: nothing
  between the two slots reads ``v``); (3) every spiking neuron's incoming excitatory
  synapses are potentiated, ``w = clip(w + apre_pre, 0, wmax)`` (apre
  including this step's jumps). Brian2 jumps ``apre`` of inhibitory neurons
  too; nothing reads it.
* **The connectivity build counted** in ``first_iteration_s`` on both sides:
  hera: ``family.build`` (connectivity in numpy), Taichi init, upload (and the
  transposed index for STDP), kernel compilation with a cold Taichi cache
  (one per run), the first step. Brian2 cpp_standalone: defining the network,
  code generation, C++ compilation in a fresh directory, and the binary's run
  less its main loop (initial values, ``connect``, writing the monitors'
  results). Brian2 cython: from defining the network (``connect`` runs then)
  through compiling every code object and its first step. Importing the
  simulator is not counted on either side.
* **Events from the real fan-out**: events = Σ over spikes of the spiking
  neuron's actual number of outgoing synapses (hera: ``syn.ptr`` differences;
  Brian2: counted from its Synapses' ``i`` arrays; NEST: from its connections).
* **Interleaved repeats**: for every network the simulators run in turn,
  ``--repeat`` times (hera, Brian2, hera, Brian2, ...), so that load from
  other work on a shared machine hits both alike; the best (least) of the
  repeats is reported, per measure, beside every repeat's figures. Peers in
  ``--once`` (by default float64 and per-synapse weights) run in the first repeat only.

``--check-stdp STEPS`` times nothing: it runs hera's own 4k STDP network in hera
and in Brian2 (same connectivity, potentials, weights) and replays the rule in
numpy on each one's spikes (:func:`replay_stdp`), to show Brian2's formulation is hera's.
``--device cuda`` runs hera on a GPU (the GPU rows; ``--peers`` with nothing: hera alone).

Reported per simulator and network:

* ``wall_per_sim_s``: wall time of the simulation loop per simulated second;
* ``events_per_s``: synaptic events per wall second of that loop;
* ``first_iteration_s``: as above, with its parts (``parts``);
* ``rate_hz``, ``cv_isi``: mean rate and mean ISI coefficient of variation;
  with STDP the excitatory weights' mean and the fractions at 0 and at
  ``wmax``: the simulators run the same dynamics (the networks are different
  samples: each draws its connectivity from its own generator);
* ratios hera / peer of ``wall_per_sim_s`` and of ``first_iteration_s``
  (below 1: hera is faster).

Brian2 2.9.0 is the newest release for Python 3.11 and needs ``numpy<2.4``, so
it gets a virtual environment of its own, made on first use under
``~/.cache/hera-bench/brian2-venv`` (``--peer-venv`` to move it), and runs as
a subprocess. NEST is tried in the same environment (``pip install
nest-simulator``) and skipped when it does not install.

    python scripts/bench_vs_brian2.py --json                         # the fair table: 10-25 min
    python scripts/bench_vs_brian2.py --sizes 4k --repeat 1 --peers cpp_standalone
    python scripts/bench_vs_brian2.py --check-stdp 3000
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
from typing import Any

SIZES = {"4k": 4_000, "40k": 40_000, "400k": 400_000}
#: Simulated seconds per run by size: the whole default run stays under ~25 min on 2 shared cores.
DURATIONS = {"4k": 10.0, "40k": 2.0, "400k": 1.0}
DEFAULT_VENV = Path.home() / ".cache" / "hera-bench" / "brian2-venv"
#: peer name -> (target, float bits, weights): "constant" is Brian2's example (``on_pre="ge += we"``, no
#: weight array); "per-synapse" stores a weight per synapse as hera does (``w : volt``, ``on_pre="ge += w"``).
#: With STDP the excitatory weights are per synapse in every variant. NEST is separate (float64).
BRIAN2_PEERS = {
    "cpp_standalone": ("cpp_standalone", 32, "constant"),
    "cpp_standalone-float64": ("cpp_standalone", 64, "constant"),
    "cpp_standalone-weights": ("cpp_standalone", 32, "per-synapse"),
    "cython": ("cython", 32, "constant"),
    "cython-float64": ("cython", 64, "constant"),
}
PEERS = [*BRIAN2_PEERS, "nest"]
STDP_FORM = "pair rule, one trace per neuron (apre per presynaptic, apost per postsynaptic neuron)"

# -- hera ------------------------------------------------------------------------------------------

HERA_CHILD = r"""
import json, sys, time, uuid
import numpy as np
layout, duration, batch, seed, cache = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
arch = sys.argv[6]  # "cpu" or "cuda" (--device)
dump = sys.argv[7] if len(sys.argv) > 7 else None  # --check-stdp: the network and the run into this .npz
from hera.family import get
from hera.instance import FamilyRef, Header, now
from hera.kernels import init
import taichi  # imported before the clock starts, as Brian2 is
family = get("vogels-abbott")
params = family.resolve(layout)
t0 = time.perf_counter()
built = family.build(params, seed)
t_build = time.perf_counter()
header = Header(uuid=str(uuid.uuid4()), callsign="bench", family=FamilyRef(name=family.name, version=family.version),
                layout=layout, params=params.model_dump(mode="json"), seed=seed, created=now())
init(arch, cache_dir=cache, threads=1)
runtime = family.runtime(header, built.arrays, arch)
runtime.record(True)
v0 = runtime.export_array("state.v") if dump else None
t_runtime = time.perf_counter()
runtime.step(1)
t_first = time.perf_counter()
steps = int(round(duration / (params.dt_ms * 1e-3)))
done = 1
while done < steps:
    done += runtime.step(min(batch, steps - done)).iterations
wall = time.perf_counter() - t_first
its, ids = runtime.take_spikes()
ptr = built.arrays["syn.ptr"]
out = {"iterations": steps, "loop_s": wall * steps / (steps - 1), "first_iteration_s": t_first - t0,
       "parts": {"build_s": t_build - t0, "init_upload_s": t_runtime - t_build, "compile_first_step_s": t_first - t_runtime},
       "spikes": int(len(ids)), "events": int((np.diff(ptr)[ids]).sum()), "neurons": params.neurons,
       "dt_s": params.dt_ms * 1e-3, "spike_i": ids.tolist(), "spike_t": its.tolist()}
if params.stdp is not None:
    w = runtime.export_array("syn.weight")[: int(ptr[params.excitatory])]
    out["weights"] = {"mean_mv": float(w.mean()), "at_zero": float((w <= 0).mean()),
                      "at_max": float((w >= np.float32(params.stdp.w_max_mv)).mean())}
if dump:
    np.savez(dump, ptr=ptr, post=built.arrays["syn.post"], w0=built.arrays["syn.weight"], v0=v0, w=w, its=its,
             ids=ids, apre=runtime.export_array("state.a_pre"), apost=runtime.export_array("state.a_post"))
    out.pop("spike_i"), out.pop("spike_t")
print(json.dumps(out))
"""

# -- Brian2 -----------------------------------------------------------------------------------------

BRIAN2_CHILD = r"""
import atexit, json, shutil, sys, time, tempfile
import numpy as np
target, n, stdp, duration, seed_value, bits = (sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", float(sys.argv[4]),
                                               int(sys.argv[5]), int(sys.argv[6]))
# --check-stdp: hera's network (connectivity, initial v and w) from one .npz, Brian2's run into another
weights = sys.argv[7]  # "constant" (Brian2's example) or "per-synapse" (as hera stores them)
given, dump = (np.load(sys.argv[8]), sys.argv[9]) if len(sys.argv) > 9 else (None, None)
from brian2 import *
if target == "cpp_standalone":
    directory = tempfile.mkdtemp(prefix="brian2-cuba-")
    set_device("cpp_standalone", directory=directory, build_on_run=False)
    prefs.devices.cpp_standalone.openmp_threads = 0
else:
    prefs.codegen.target = "cython"
    directory = tempfile.mkdtemp(prefix="brian2-cython-")
    prefs.codegen.runtime.cython.cache_dir = directory  # compiled cold, as hera
atexit.register(shutil.rmtree, directory, True)  # 10-300 MB each; standalone reads its results from it lazily
prefs.core.default_float_dtype = float32 if bits == 32 else float64
t0 = time.perf_counter()
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
we = (60 * 0.27 / 10) * mV
wi = (-20 * 4.5 / 10) * mV
if stdp:  # hera's form: one trace per neuron, decayed every step (exactly), jumped at spikes
    taupre = taupost = 20 * ms
    wmax = 2 * we
    dApre = 0.01 * we
    dApost = -1.05 * dApre
    eqs += '''
    dapre/dt = -apre/taupre : volt
    dapost/dt = -apost/taupost : volt
    '''
reset = "v = Vr" + ("\napre += dApre\napost += dApost" if stdp else "")
P = NeuronGroup(n, eqs, threshold="v>Vt", reset=reset, refractory=5 * ms, method="exact")
P.v = given["v0"] * mV if given is not None else "Vr + rand() * (Vt - Vr)"
P.ge = 0 * mV
P.gi = 0 * mV
if stdp:
    # pre pathway (order -1): deliver, then depress by the postsynaptic neuron's trace (not yet jumped);
    # the reset with the traces' jumps (moved from "resets" to order 0 of "synapses": nothing in between
    # reads v); post pathway (order 1): potentiate by the presynaptic neuron's trace (jumped this step)
    Ce = Synapses(P, P, "w : volt",
                  on_pre='''ge_post += w
                            w = clip(w + apost_post, 0*mV, wmax)''',
                  on_post="w = clip(w + apre_pre, 0*mV, wmax)")
    P.resetter["spike"].when = "synapses"
    P.resetter["spike"].order = 0
else:
    Ce = Synapses(P, P, on_pre="ge += we") if weights == "constant" else Synapses(P, P, "w : volt", on_pre="ge += w")
Ci = Synapses(P, P, on_pre="gi += wi") if weights == "constant" else Synapses(P, P, "w : volt", on_pre="gi += w")
if given is None:
    Ce.connect("i<ne", p=p)
    Ci.connect("i>=ne", p=p)
else:  # hera's CSR rows, in their order (so Ce's synapses line up with hera's excitatory weights)
    pre = np.repeat(np.arange(n), np.diff(given["ptr"])); post = given["post"]; exc = pre < ne
    Ce.connect(i=pre[exc], j=post[exc])
    Ci.connect(i=pre[~exc], j=post[~exc])
if stdp:
    Ce.w = given["w0"][: int(exc.sum())] * mV if given is not None else "we"
elif weights != "constant":
    Ce.w = "we"
if weights != "constant":
    Ci.w = "wi"
M = SpikeMonitor(P)
parts = {}
if target == "cpp_standalone":
    run(duration * second)
    t = time.perf_counter()
    device.build(directory=directory, compile=True, run=True, debug=False)
    end = time.perf_counter()
    loop = float(device._last_run_time)
    first = end - t0 - loop
    compile_s = sum(v or 0.0 for v in device.timers["compile"].values())
    run_binary = device.timers["run_binary"] or 0.0
    parts = {"define_codegen_s": (t - t0) + (end - t) - compile_s - run_binary, "compile_s": compile_s,
             "binary_less_loop_s": run_binary - loop}
else:
    run(defaultclock.dt)  # compiles every code object and runs one step
    t = time.perf_counter()
    first = t - t0
    run(duration * second - defaultclock.dt)
    loop = (time.perf_counter() - t) * duration / (duration - float(defaultclock.dt))
i = np.asarray(M.i[:]); ts = np.asarray(M.t[:] / second)
fan_out = np.bincount(np.concatenate([np.asarray(Ce.i[:]), np.asarray(Ci.i[:])]), minlength=n)
out = {"iterations": int(round(duration / 1e-4)), "loop_s": loop, "first_iteration_s": first, "parts": parts,
       "spikes": int(len(i)), "events": int(fan_out[i].sum()), "neurons": n, "dt_s": 1e-4,
       "float": np.dtype(prefs.core.default_float_dtype).name, "spike_i": i.tolist(),
       "spike_t": np.round(ts / 1e-4).astype(int).tolist()}
if stdp:
    w = np.asarray(Ce.w[:] / mV)
    out["weights"] = {"mean_mv": float(w.mean()), "at_zero": float((w <= 0).mean()),
                      "at_max": float((w >= float(wmax / mV) * (1 - 1e-6)).mean())}
if dump is not None:
    np.savez(dump, w=np.asarray(Ce.w[:] / mV, np.float32), its=np.round(ts / 1e-4).astype(np.int64), ids=i,
             apre=np.asarray(P.apre[:] / mV), apost=np.asarray(P.apost[:] / mV))
    out.pop("spike_i"), out.pop("spike_t")
print(json.dumps(out))
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
sources = np.asarray(nest.GetConnections(pop, pop).get("source")) - 1
fan_out = np.bincount(sources, minlength=n)
print(json.dumps({"iterations": int(round(duration / 1e-4)), "loop_s": loop, "first_iteration_s": first,
                  "parts": {}, "spikes": int(len(i)), "events": int(fan_out[i].sum()), "neurons": n, "dt_s": 1e-4,
                  "float": "float64", "spike_i": i.tolist(), "spike_t": np.round(ts / 0.1).astype(int).tolist()}))
"""


def replay_stdp(net: Any, its: Any, ids: Any, steps: int, params: Any) -> tuple[Any, Any, Any]:
    """hera's STDP, one step at a time in numpy, on a given spike train: (excitatory weights, apre, apost).

    The order of operations stated in this module's docstring, in float32: decay
    both traces; depress the rows of the spiking excitatory neurons by apost;
    jump the spiking neurons' traces; potentiate their incoming excitatory
    synapses by apre. Independent of both simulators, so it can judge both.
    """
    import numpy as np

    f32 = np.float32
    ptr, post, n, ne = net["ptr"], net["post"], params.neurons, params.excitatory
    pre = np.repeat(np.arange(n), np.diff(ptr))[: int(ptr[ne])]
    post = post[: int(ptr[ne])]
    w = net["w0"][: int(ptr[ne])].astype(f32)
    stdp, dt = params.stdp, params.dt_ms
    decay_pre, decay_post = f32(np.exp(-dt / stdp.tau_pre_ms)), f32(np.exp(-dt / stdp.tau_post_ms))
    a_pre, a_post, w_max = f32(stdp.a_pre_mv), f32(stdp.a_post_mv), f32(stdp.w_max_mv)
    apre, apost = np.zeros(n, f32), np.zeros(n, f32)
    order = np.argsort(its, kind="stable")
    its, ids = np.asarray(its)[order], np.asarray(ids)[order]
    bounds = np.searchsorted(its, np.arange(steps + 1))
    for t in range(steps):
        apre *= decay_pre
        apost *= decay_post
        spiking = ids[bounds[t] : bounds[t + 1]]
        if len(spiking) == 0:
            continue
        fired = np.zeros(n, bool)
        fired[spiking] = True
        rows = fired[pre]
        w[rows] = np.clip(w[rows] + apost[post[rows]], f32(0), w_max)
        apre[spiking[spiking < ne]] += a_pre
        apost[spiking] += a_post
        cols = fired[post]
        w[cols] = np.clip(w[cols] + apre[pre[cols]], f32(0), w_max)
    return w, apre, apost


def check_stdp(python: Path, steps: int, seed: int, scratch: Path) -> dict:
    """Whether Brian2's per-neuron-trace STDP is hera's: both run hera's 4k network, the rule replays both.

    Brian2 (cpp_standalone, float32) gets hera's connectivity, initial potentials
    and weights. The spike trains agree until float rounding tips a neuron over
    threshold on one side only; from there they are two samples of the same
    dynamics. What must agree to rounding is each simulator's weights and
    traces against :func:`replay_stdp` applied to its own spike train.
    """
    import numpy as np

    from hera.family import get

    params = get("vogels-abbott").resolve("cuba-4k-stdp")
    duration = steps * params.dt_ms * 1e-3
    hera_npz, brian_npz = scratch / "hera.npz", scratch / "brian2.npz"
    raws = {
        "hera": run_child([sys.executable, str(scratch / "hera_child.py"), "cuba-4k-stdp", str(duration), "1000",
                           str(seed), str(scratch / "ticache-check"), "cpu", str(hera_npz)], 900),
    }
    raws["brian2 cpp_standalone"] = run_child(
        [str(python), str(scratch / "brian2_child.py"), "cpp_standalone", str(params.neurons), "1", str(duration),
         str(seed), "32", "constant", str(hera_npz), str(brian_npz)], 900)
    for name, raw in raws.items():
        if not isinstance(raw, dict):
            return {"error": f"{name}: {raw}"}
    net = np.load(hera_npz)
    out: dict = {"network": f"cuba-4k-stdp (hera's, seed {seed}) on both sides", "steps": steps}
    trains = {}
    for name, path in (("hera", hera_npz), ("brian2 cpp_standalone", brian_npz)):
        run = np.load(path)
        w, apre, apost = replay_stdp(net, run["its"], run["ids"], steps, params)
        ne = params.excitatory
        out[name] = {
            "spikes": int(len(run["ids"])),
            "synapses_changed": int((run["w"] != net["w0"][: len(run["w"])]).sum()),
            "weight_mean_change_mv": float((run["w"] - net["w0"][: len(run["w"])]).mean()),
            "max_abs_w_minus_rule_mv": float(np.abs(run["w"] - w).max()),
            "max_abs_apre_minus_rule_mv": float(np.abs(run["apre"][:ne] - apre[:ne]).max()),
            "max_abs_apost_minus_rule_mv": float(np.abs(run["apost"][: params.neurons] - apost).max()),
        }
        trains[name] = {(int(t), int(i)) for t, i in zip(run["its"], run["ids"], strict=True)}
    differ = trains["hera"] ^ trains["brian2 cpp_standalone"]
    out["first_step_spike_trains_differ"] = min(t for t, _ in differ) if differ else None
    return out


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


def summarise(raw: dict) -> dict:
    """One run's measures, from what its child printed (the spike lists are reduced to rate and CV)."""
    sim = raw["iterations"] * raw["dt_s"]
    loop = raw["loop_s"]
    out = {
        "wall_per_sim_s": loop / sim,
        "events_per_s": raw["events"] / loop if loop > 0 else None,
        "events": raw["events"],
        "first_iteration_s": raw["first_iteration_s"],
        "parts": raw.get("parts", {}),
        "rate_hz": raw["spikes"] / raw["neurons"] / sim,
        "cv_isi": cv_isi(raw.get("spike_i"), raw.get("spike_t")),
    }
    if "weights" in raw:
        out["weights"] = raw["weights"]
    return out


def best(runs: list[dict], peer: str) -> dict:
    """The best (least) of the repeats, per timing measure; the dynamics measures of the fastest run."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[-1]["error"], "repeats": runs}
    fastest = min(ok, key=lambda r: r["wall_per_sim_s"])
    first = min(ok, key=lambda r: r["first_iteration_s"])
    out = dict(fastest)
    out["first_iteration_s"] = first["first_iteration_s"]
    out["parts"] = first["parts"]
    out["float"] = float_of(peer)
    out["repeats"] = [{k: r.get(k) for k in ("wall_per_sim_s", "first_iteration_s", "error") if k in r} for r in runs]
    return out


def float_of(peer: str) -> str:
    if peer == "hera":
        return "float32"
    if peer == "nest":
        return "float64"
    return f"float{BRIAN2_PEERS[peer][1]}"


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


def hera_from() -> str:
    """Where the measured hera was imported from (``PYTHONPATH`` can point the runs at a snapshot of a commit)."""
    import hera

    return str(Path(hera.__file__).resolve().parent.parent)


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages (what ``uptime`` prints): how busy the shared machine was."""
    return [round(x, 2) for x in os.getloadavg()]


def table(report: dict) -> str:
    """The Markdown table docs/benchmarks.md shows."""
    lines = [
        f"# {report['machine']}, {report['date']}, best of {report['repeat']} interleaved repeats, "
        f"load {report['load_before']} before, {report['load_after']} after",
        "| network | simulator | float | sim s | wall s / sim s | events / s | first iteration s | rate Hz | CV ISI "
        "| hera / peer (loop) | hera / peer (first it.) |",
        "|" + " --- |" * 11,
    ]
    for row in report["rows"]:
        label = f"{row['size']}" + (" + STDP" if row["stdp"] else "")
        for name, r in row["results"].items():
            shown = "**hera**" if name == "hera" else ("NEST (2 threads)" if name == "nest" else f"Brian2 {name}")
            if "error" in r:
                lines.append(f"| {label} | {shown} | | | failed: {r['error']} | | | | | | |")
                continue
            ratio = row["ratios"].get(name)
            first = row["first_ratios"].get(name)
            cv = f"{r['cv_isi']:.2f}" if r["cv_isi"] is not None else "–"
            lines.append(
                f"| {label} | {shown} | {r['float']} | {row['duration_s']:g} | {r['wall_per_sim_s']:.3g} "
                f"| {r['events_per_s'] / 1e6:.1f} M | {r['first_iteration_s']:.2f} | {r['rate_hz']:.2f} | {cv} "
                f"| {f'{ratio:.2f}' if ratio else ''} | {f'{first:.2f}' if first else ''} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--stdp", choices=["both", "off", "on"], default="both")
    parser.add_argument("--peers", nargs="*", choices=PEERS, default=["cpp_standalone", "cpp_standalone-float64", "cpp_standalone-weights"],
                        help="which peers run beside hera (none: hera alone)")
    parser.add_argument("--once", nargs="*", choices=PEERS, default=["cpp_standalone-float64", "cpp_standalone-weights"],
                        help="peers that run in the first repeat only (to keep the run short)")
    parser.add_argument("--duration", type=float, default=None,
                        help="simulated seconds per run (default by size: " +
                        ", ".join(f"{k} {v:g} s" for k, v in DURATIONS.items()) + ")")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repeats per network (best one reported)")
    parser.add_argument("--batch", type=int, default=1000, help="iterations per hera step() call")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where hera runs (cuda: the GPU rows; --peers with nothing for hera alone)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed to one run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--check-stdp", type=int, metavar="STEPS", default=None,
                        help="instead of timing: run hera's 4k STDP network in both simulators for STEPS steps and "
                        "replay hera's STDP rule on each one's spikes (prints JSON)")
    args = parser.parse_args(argv)

    python, have_nest = (None, False)
    if args.peers or args.check_stdp:
        python, have_nest = peer_python(args.peer_venv, args.json or bool(args.check_stdp))
    stdps = {"both": [False, True], "off": [False], "on": [True]}[args.stdp]
    rows = []
    load_before = load()
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        scripts = {}
        for name, text in (("hera", HERA_CHILD), ("brian2", BRIAN2_CHILD), ("nest", NEST_CHILD)):
            scripts[name] = Path(scratch) / f"{name}_child.py"
            scripts[name].write_text(text)
        if args.check_stdp:
            if python is None:
                print("bench_vs_brian2: Brian2 did not install; see the pip output above", file=sys.stderr)
                return 1
            print(json.dumps(check_stdp(python, args.check_stdp, args.seed, Path(scratch)), indent=2))
            return 0
        cold = 0
        for size in args.sizes:
            n = SIZES[size]
            duration = args.duration if args.duration is not None else DURATIONS[size]
            for stdp in stdps:
                layout = f"cuba-{size}" + ("-stdp" if stdp else "")
                runs: dict[str, list[dict]] = {"hera": []}
                for repeat in range(args.repeat):
                    cmds: dict[str, list[str]] = {}
                    for peer in ["hera", *(args.peers if python is not None else [])]:
                        if repeat > 0 and peer in args.once:
                            continue
                        if peer == "hera":
                            cold += 1  # a fresh Taichi cache per run: compiled cold, as Brian2 is
                            cmds[peer] = [sys.executable, str(scripts["hera"]), layout, str(duration),
                                          str(args.batch), str(args.seed), str(Path(scratch) / f"ticache-{cold}"),
                                          args.device]
                        elif peer == "nest":
                            if have_nest and not stdp:
                                cmds[peer] = [str(python), str(scripts["nest"]), str(n), str(duration), str(args.seed)]
                        else:
                            target, bits, weights = BRIAN2_PEERS[peer]
                            cmds[peer] = [str(python), str(scripts["brian2"]), target, str(n), "1" if stdp else "0",
                                          str(duration), str(args.seed), str(bits), weights]
                    for peer, cmd in cmds.items():
                        if not args.json:
                            print(f"{layout} ({repeat + 1}/{args.repeat}): {peer} ...", file=sys.stderr, flush=True)
                        raw = run_child(cmd, args.timeout)
                        runs.setdefault(peer, []).append(summarise(raw) if isinstance(raw, dict) else {"error": raw})
                row: dict = {"size": size, "neurons": n, "stdp": stdp, "duration_s": duration,
                             "results": {peer: best(r, peer) for peer, r in runs.items()}}
                hera = row["results"]["hera"]
                row["ratios"] = {
                    peer: hera["wall_per_sim_s"] / r["wall_per_sim_s"]
                    for peer, r in row["results"].items()
                    if peer != "hera" and "error" not in hera and r.get("wall_per_sim_s")
                }
                row["first_ratios"] = {
                    peer: hera["first_iteration_s"] / r["first_iteration_s"]
                    for peer, r in row["results"].items()
                    if peer != "hera" and "error" not in hera and r.get("first_iteration_s")
                }
                rows.append(row)
    report = {
        "machine": machine(),
        "hera_from": hera_from(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python scripts/bench_vs_brian2.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "repeat": args.repeat,
        "once": args.once,
        "batch": args.batch,
        "threads": 1,
        "hera_device": args.device,
        "floats": {"hera": "float32", **{peer: float_of(peer) for peer in args.peers}},
        "weights": {"hera": "per-synapse", **{peer: BRIAN2_PEERS[peer][2] for peer in args.peers if peer != "nest"}},
        "stdp_form": {"hera": STDP_FORM, **{peer: STDP_FORM for peer in args.peers if peer != "nest"}},
        "first_iteration": {
            "hera": "family.build (connectivity) + Taichi init + upload (+ transposed index) + cold kernel "
            "compile + first step",
            "cpp_standalone": "network definition + code generation + C++ compile (fresh directory) + the binary's "
            "run less its main loop (initial values, connect, writing results)",
            "cython": "network definition incl. connect + cold Cython compile of every code object + first step",
            "nest": "create + connect + first step (0.1 ms)",
        },
        "nest": have_nest,
        "load_before": load_before,
        "load_after": load(),
        "wall_s": round(time.time() - started, 1),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
