"""hera.kernels.driver: the fused (CPU) and batched (GPU) ways of running a family's iteration, on a toy brain.

A child process initialises Taichi on the CPU with **2 threads** (the test
process may already hold a Taichi set up otherwise) and runs the same plan of
``run`` calls twice, once on a fused and once on a batched driver: the batched
driver's phases are parallel tasks here, as they are on a GPU. The toy
iteration is integer arithmetic (so any thread order gives the same numbers)
with two phases, spikes delivered between neurons, an event, a spike ring and
a ``ready()`` that runs out of room. A numpy twin of it, here, says what each
call must do: where a breakpoint stops, which probe fired, how many
iterations a refusal lets through.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("taichi")

from hera.kernels.driver import BATCH  # noqa: E402

N = 64
#: (name, offset, size) of the toy's areas.
AREAS = (("in", 0, 16), ("a", 16, 24), ("b", 40, 24))
SLOTS = 8
THRESHOLD = 40
#: Each neuron's two synapses: (target offset multiplier, target offset, weight).
SYNAPSES = ((5, 1, 3), (11, 3, -2))
#: The event "rare" happens on iterations t with t % RARE == RARE - 1.
RARE = 300
BIG = 1 << 30

#: What the child printed for each path, the plan it ran, and what the numpy twin expects of each call.
Ran = tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], list[dict[str, Any]]]

CHILD = r"""
import json, sys
import numpy as np
import taichi as ti
from hera.kernels import init

spec = json.loads(sys.argv[1])
if spec["arch"] == "cpu":
    init("cpu", threads=2)
    assert ti.lang.impl.current_cfg().cpu_max_num_threads == 2
else:
    assert init("cuda") == "cuda"
from hera.errors import HeraError
from hera.kernels.driver import Area, ColumnReader, Driver

n, slots, threshold, rare = spec["n"], spec["slots"], spec["threshold"], spec["rare"]
(m1, o1, w1), (m2, o2, w2) = spec["synapses"]
edge_a, edge_b = spec["areas"][1][1], spec["areas"][2][1]


def toy(fused):
    d = Driver(fused=fused, neurons=n, areas=[Area(*a) for a in spec["areas"]], events=[("rare", "a rare event")])
    v, inbox = ti.field(ti.i64, n), ti.field(ti.i64, n)
    ring, room = ti.field(ti.u8, (n, slots)), ti.field(ti.i32, ())
    live, spiked, event = d.live, d.spiked, d.event

    @ti.func
    def area_of(i: ti.i32) -> ti.i32:
        return 0 if i < edge_a else (1 if i < edge_b else 2)

    @ti.func
    def iterate(t: ti.i64, arg: ti.i64):
        slot = ti.cast(t % slots, ti.i32)
        for i in range(n):
            if live():
                x = v[i] + inbox[i] + (i * 7 + t * 3 + arg) % 11
                inbox[i] = 0
                fired = x >= threshold
                ring[i, slot] = ti.cast(fired, ti.u8)
                if fired:
                    v[i] = 0
                    spiked(i, area_of(i))
                else:
                    v[i] = x
        for i in range(n):
            if live():
                if ring[i, slot] != 0:
                    ti.atomic_add(inbox[(i * m1 + o1) % n], w1)
                    ti.atomic_add(inbox[(i * m2 + o2) % n], w2)
        if live():
            room[None] -= 1
            if t % rare == rare - 1:
                event(0)

    @ti.func
    def ready() -> ti.i32:
        return ti.cast(room[None] > 0, ti.i32)

    d.compile(iterate, ready)
    return d, v, inbox, ring, room


out = {}
for path in ("fused", "batched"):
    d, v, inbox, ring, room = toy(path == "fused")
    reader = ColumnReader(ring)
    t, calls = 0, []
    for call in spec["plan"]:
        if "bad" in call:
            try:
                d.arm([call["bad"]])
                calls.append({"error": None})
            except HeraError as e:
                calls.append({"error": e.message, "hint": e.hint})
            continue
        room[None] = call["room"]
        d.arm(call["stop_on"])
        o = d.run(call["count"], t, call["arg"], fresh=call["fresh"])
        t += o.iterations
        calls.append({
            "outcome": [o.iterations, o.hit, o.blocked],
            "which": [d.which(order) for order in call["which"]],
            "counts": d.area_counts(),
            "v": v.to_numpy().tolist(), "inbox": inbox.to_numpy().tolist(),
            "column": reader.read((t - 1) % slots).tolist(), "ring": ring.to_numpy().tolist(),
        })
    out[path] = calls
print(json.dumps(out))
"""


class Toy:
    """The child's iteration in numpy, one iteration at a time, with the driver's bookkeeping."""

    def __init__(self) -> None:
        self.v = np.zeros(N, np.int64)
        self.inbox = np.zeros(N, np.int64)
        self.ring = np.zeros((N, SLOTS), np.uint8)
        self.t = 0
        self.area = np.concatenate([np.full(size, k) for k, (_, _, size) in enumerate(AREAS)])

    def iterate(self, arg: int) -> tuple[np.ndarray, bool]:
        """One iteration: the neurons that spiked, and whether the event happened."""
        t, i = self.t, np.arange(N)
        x = self.v + self.inbox + (i * 7 + t * 3 + arg) % 11
        fired = x >= THRESHOLD
        self.ring[:, t % SLOTS] = fired
        self.v = np.where(fired, 0, x)
        self.inbox = np.zeros(N, np.int64)
        for mult, offset, weight in SYNAPSES:
            np.add.at(self.inbox, (i[fired] * mult + offset) % N, weight)
        self.t += 1
        return i[fired], t % RARE == RARE - 1

    def probes_fired(self, spiked: np.ndarray, event: bool, stop_on: list[str]) -> list[str]:
        areas = {AREAS[a][0] for a in self.area[spiked]}
        fired = [p for p in stop_on if p.startswith("neuron:") and int(p[7:]) in spiked]
        fired += [p for p in stop_on if p.startswith("area:") and p[5:] in areas]
        return fired + (["rare"] if event and "rare" in stop_on else [])

    def run(self, count: int, arg: int, stop_on: list[str], room: int) -> tuple[list[Any], list[str], dict[str, int]]:
        """What one ``Driver.run`` must do: its outcome, the probes that fired last, spikes per area."""
        counts = dict.fromkeys((a[0] for a in AREAS), 0)
        for done in range(count):
            if room == 0:
                return [done, False, True], [], counts
            room -= 1
            spiked, event = self.iterate(arg)
            for a in self.area[spiked]:
                counts[AREAS[a][0]] += 1
            fired = self.probes_fired(spiked, event, stop_on)
            if fired:
                return [done + 1, True, False], fired, counts
        return [count, False, False], [], counts


def call(stop_on: tuple[str, ...] = (), count: int = 600, arg: int = 5, room: int = BIG, **kw: Any) -> dict[str, Any]:
    """One ``Driver.run`` of the plan: arm ``stop_on``, give ``ready()`` ``room``, run ``count`` with ``arg``."""
    return {"stop_on": list(stop_on), "count": count, "arg": arg, "room": room, "fresh": True, "which": [], **kw}


def first_spiker_of(area: str, toy: Toy, arg: int) -> str:
    """The probe of the neuron of ``area`` that spikes first from the toy's state (run on a copy)."""
    twin = Toy()
    twin.v, twin.inbox, twin.ring, twin.t = toy.v.copy(), toy.inbox.copy(), toy.ring.copy(), toy.t
    _, offset, size = next(a for a in AREAS if a[0] == area)
    while True:
        spiked, _ = twin.iterate(arg)
        mine = spiked[(spiked >= offset) & (spiked < offset + size)]
        if len(mine):
            return f"neuron:{int(mine[0])}"


def plan_and_expect() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The calls the child makes, and what the numpy twin says each must give."""
    toy = Toy()
    plan: list[dict[str, Any]] = []
    expected: list[dict[str, Any]] = []

    def add(c: dict[str, Any], which_orders: tuple[list[str], ...] = ()) -> None:
        c["which"] = list(which_orders)
        outcome, fired, counts = toy.run(c["count"], c["arg"], c["stop_on"], c["room"])
        if not c["fresh"]:  # spikes per area are counted from the last fresh run on
            counts = {area: counts[area] + expected[-1]["counts"][area] for area in counts}
        plan.append(c)
        which = [next((p for p in order if p in fired), None) for order in which_orders]
        expected.append({"outcome": outcome, "which": which, "counts": counts, "t": toy.t})

    add(call(count=700, arg=5))  # no probe: three batches of the batched driver
    add(call(count=290, arg=2, fresh=False))
    neuron = first_spiker_of("b", toy, 3)  # the first of area b to spike: the neuron and its area fire together
    add(call((neuron, "area:b"), arg=3), ([neuron, "area:b"], ["area:b", neuron]))
    add(call(count=RARE - toy.t % RARE + 1, arg=3))  # to just past an event: the next is 299 iterations away
    add(call(("rare",), count=600, arg=3), (["rare"],))  # so it stops a run after its first batch
    add(call(("area:in", "rare"), count=50, arg=4), (["rare", "area:in"],))
    add(call(count=500, arg=1, room=300))  # ready() refuses in the second batch
    add(call(count=500, arg=1, room=0))  # and at once
    add(call(count=40, arg=1, room=17))
    add(call(count=33, arg=6))  # and the run goes on from where the refusal left it
    plan.append({"bad": "area:nowhere"})
    expected.append({})
    plan.append({"bad": f"neuron:{N}"})
    expected.append({})
    plan.append({"bad": "neuron:\u00b2"})  # a digit to str.isdigit, not to int(): refused like any other
    expected.append({})
    return plan, expected


def run_toy(folder: Path, arch: str) -> Ran:
    """The child's results on both paths on ``arch``, the plan it ran and what the numpy twin expects of it."""
    plan, expected = plan_and_expect()
    child = folder / "toy.py"  # Taichi reads a function's source from its file
    child.write_text(CHILD)
    spec = {"arch": arch, "n": N, "slots": SLOTS, "threshold": THRESHOLD, "rare": RARE, "synapses": SYNAPSES,
            "areas": AREAS, "plan": plan}
    done = subprocess.run([sys.executable, str(child), json.dumps(spec)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), plan, expected


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return run_toy(tmp_path_factory.mktemp("driver"), "cpu")


def runs(ran: Ran) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(fused, batched, call, expected) for every run call of the plan."""
    out, plan, expected = ran
    both = zip(out["fused"], out["batched"], plan, expected, strict=True)
    return [(f, b, c, e) for f, b, c, e in both if "bad" not in c]


def test_fused_and_batched_paths_leave_the_same_state_bit_for_bit_with_two_threads(ran: Ran) -> None:
    toy = Toy()
    for fused, batched, c, expected in runs(ran):
        assert fused == batched, c  # outcome, probes, counts, every state array and the ring
        toy.run(c["count"], c["arg"], c["stop_on"], c["room"])
        assert fused["v"] == toy.v.tolist() and fused["inbox"] == toy.inbox.tolist(), c
        assert fused["ring"] == toy.ring.tolist(), c
        assert fused["counts"] == expected["counts"], c
    assert runs(ran)[0][0]["outcome"][0] > 2 * BATCH  # the batched driver ran (and read) three batches in one call


def test_breakpoints_stop_both_paths_at_the_same_iteration_and_which_names_the_first_listed_probe(ran: Ran) -> None:
    stops = [(f, b, c, e) for f, b, c, e in runs(ran) if c["stop_on"]]
    assert len(stops) == 3
    for fused, batched, c, expected in stops:
        assert fused["outcome"] == batched["outcome"] == expected["outcome"], c
        assert fused["outcome"][1] is True and fused["outcome"][0] < c["count"]
        assert fused["which"] == batched["which"] == expected["which"], c
    (_, _, neuron_call, _), (_, _, _, rare), _ = stops
    neuron = neuron_call["stop_on"][0]
    assert stops[0][0]["which"] == [neuron, "area:b"]  # both fired in that iteration: the one listed first is named
    assert rare["t"] % RARE == 0 and rare["outcome"][0] > 256  # the event stopped the run after its first batch


def test_a_refusing_ready_ends_the_run_blocked_after_exactly_the_iterations_it_allowed(ran: Ran) -> None:
    refused = [(f, b, c) for f, b, c, _ in runs(ran) if c["room"] < BIG]
    assert [f["outcome"] for f, _, _ in refused] == [[300, False, True], [0, False, True], [17, False, True]]
    assert [b["outcome"] for _, b, _ in refused] == [f["outcome"] for f, _, _ in refused]
    after = runs(ran)[-1]
    assert after[0]["outcome"] == after[1]["outcome"] == [33, False, False]  # room again: it runs on


def test_an_unknown_probe_is_refused_with_the_probes_the_brain_has(ran: Ran) -> None:
    out, plan, _ = ran
    bad = [(f, b, c["bad"]) for f, b, c in zip(out["fused"], out["batched"], plan, strict=True) if "bad" in c]
    for fused, batched, probe in bad:
        assert fused == batched
        assert fused["error"] == f"no probe {probe!r} in this brain"
        assert fused["hint"] == f"probes: rare, neuron:0..{N - 1}, area:in, area:a, area:b"


def test_column_reader_reads_the_ring_slot_of_the_last_iteration(ran: Ran) -> None:
    for fused, batched, _, expected in runs(ran):
        ring = np.array(fused["ring"], np.uint8)
        assert fused["column"] == batched["column"] == ring[:, (expected["t"] - 1) % SLOTS].tolist()
    assert any(sum(f["column"]) for f, _, _, _ in runs(ran))  # some slot read had spikes in it


@pytest.mark.gpu
def test_on_cuda_both_paths_give_what_they_give_on_the_cpu(ran: Ran, tmp_path: Path) -> None:
    """The same plan on a GPU: every outcome, probe, count, state array and ring slot as on the CPU."""
    on_cuda, _, _ = run_toy(tmp_path, "cuda")
    assert on_cuda == ran[0]
