"""step(n, stop_on) stops right after the exact iteration at which a watched probe fired."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from abraxas.streams import SENTENCE
from hera.errors import HeraError

HORIZON = 300


def fired_per_iteration(rt: Any, probes: list[str]) -> dict[str, list[int]]:
    """Reference: single steps; the iterations after which each probe had fired, from the spike ring."""
    slots = rt.structure.ring_slots
    fired: dict[str, list[int]] = {probe: [] for probe in probes}
    for _ in range(HORIZON):
        rt.step(1)
        spikes = rt.engine.spikes.to_numpy()[:, (rt.iteration - 1) % slots]
        produced = bool((rt.take_records()[:, 2] >= 0).any())
        for probe in probes:
            kind, _, arg = probe.partition(":")
            if probe == "output":
                hit = produced
            elif kind == "area":
                area = rt.structure.area(arg)
                hit = bool(spikes[area.offset : area.offset + area.size].any())
            else:
                hit = bool(spikes[int(arg)])
            if hit:
                fired[probe].append(rt.iteration)
    return fired


def test_step_stops_exactly_after_the_iteration_each_kind_of_probe_fired(brain: Callable[..., Any]) -> None:
    reference, runner = brain(), brain()
    third_byte = reference.structure.area("input").byte_cell(SENTENCE[2])  # fires once, at 2 * ticks_per_byte
    probes = ["area:hidden0", "area:output", "output", f"neuron:{third_byte}"]
    for rt in (reference, runner):
        rt.feed(SENTENCE)
    fired = fired_per_iteration(reference, probes)
    assert all(fired.values()), fired
    stops: dict[str, int] = {}
    turn = 0
    while runner.iteration < HORIZON:
        probe = probes[turn % len(probes)]
        turn += 1
        before = runner.iteration
        expected = next((i for i in fired[probe] if i > before), None)
        result = runner.step(HORIZON - before, [probe])
        if expected is None:
            assert result.stopped_on is None and result.iteration == HORIZON
        else:
            assert (result.stopped_on, result.iteration) == (probe, expected)
            assert result.iterations == expected - before
            stops[probe] = stops.get(probe, 0) + 1
    assert set(stops) == set(probes)  # every kind stopped the run at least once
    a, b = reference.export_state(), runner.export_state()
    assert all(a[name].tobytes() == b[name].tobytes() for name in a)  # stopping perturbs nothing


def test_an_unknown_probe_is_refused_with_the_valid_ones(brain: Callable[..., Any]) -> None:
    with pytest.raises(HeraError, match="area:hidden0"):
        brain().step(10, ["area:cortex"])


def test_a_step_of_no_iterations_counts_no_spikes(brain: Callable[..., Any]) -> None:
    from abraxas.streams import SENTENCE, repeated

    rt = brain()
    rt.feed(repeated(SENTENCE, 200))
    rt.step(500)
    assert sum(rt.stats()["spikes"].values()) > 0
    rt.step(0)
    assert sum(rt.stats()["spikes"].values()) == 0


def test_naming_the_probe_and_drawing_the_raster_read_one_ring_slot_not_the_ring(brain: Callable[..., Any]) -> None:
    """The spike ring of a large brain is hundreds of MB: neither "which probe fired" nor ``spikes()`` may copy it."""
    rt = brain(overrides={"axon_length": 64})  # a ring (≈ 100 kB here) far larger than everything else a step reads
    ring = rt.structure.neurons * rt.structure.ring_slots
    rt.feed(SENTENCE)
    rt.step(50, ["area:output"])
    rt.spikes()  # compiled now, so only what the calls below copy is measured
    tracemalloc.start()
    try:
        result = rt.step(HORIZON, ["area:output"])
        stepping = tracemalloc.get_traced_memory()[1]
        kept = tracemalloc.get_traced_memory()[0]  # the decisions and records the step left for the caller
        tracemalloc.reset_peak()
        raster = rt.spikes()
        drawing = tracemalloc.get_traced_memory()[1] - kept
    finally:
        tracemalloc.stop()
    assert result.stopped_on == "area:output" and raster
    assert stepping < ring // 2 and drawing < ring // 4, (stepping, drawing, ring)
