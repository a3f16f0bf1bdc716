"""Breakpoints stop at exactly the iteration where the watched neuron or area fired."""

from __future__ import annotations

import numpy as np
import pytest

from hera.errors import HeraError


def first_spike(runtime, neuron: int, limit: int = 2000) -> int:
    """The first iteration at which ``neuron`` spikes, found one step at a time."""
    runtime.record(True)
    for _ in range(limit):
        runtime.step(1)
        its, ids = runtime.take_spikes()
        if (ids == neuron).any():
            return int(its[0])
    raise AssertionError(f"neuron {neuron} never spiked")


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "stepwise"])
def test_stop_on_neuron_stops_at_exactly_its_spike(network, fused: bool) -> None:
    slow, _, arrays = network(fused=fused)
    fast, _, _ = network(fused=fused, arrays=arrays)
    neuron = 123
    at = first_spike(slow, neuron)
    result = fast.step(5000, stop_on=[f"neuron:{neuron}"])
    assert result.stopped_on == f"neuron:{neuron}"
    assert result.iteration == fast.iteration == at + 1 == slow.iteration
    a, b = slow.export_state(), fast.export_state()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # and it goes on from there: the next stop is the neuron's next spike, not the same one again
    again = fast.step(5000, stop_on=[f"neuron:{neuron}"])
    assert again.stopped_on == f"neuron:{neuron}" and again.iteration > result.iteration


def test_stop_on_area_and_probe_names(network) -> None:
    runtime, params, _ = network()
    names = {p.name for p in runtime.probes()}
    assert names == {"area:excitatory", "area:inhibitory"}
    runtime.record(True)
    result = runtime.step(5000, stop_on=["area:inhibitory"])
    its, ids = runtime.take_spikes()
    assert result.stopped_on == "area:inhibitory"
    excitatory = params.excitatory
    assert (ids[its < result.iteration - 1] < excitatory).all()  # no inhibitory spike before the stop
    assert (ids[its == result.iteration - 1] >= excitatory).any()
    with pytest.raises(HeraError):
        runtime.step(1, stop_on=["output"])


def test_no_breakpoint_runs_all_iterations(network) -> None:
    runtime, _, _ = network()
    result = runtime.step(257)
    assert result.iterations == 257 and result.stopped_on is None
    assert sum(runtime.stats()["spikes"].values()) > 0


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "stepwise"])
def test_a_step_of_no_iterations_counts_no_spikes(network, fused: bool) -> None:
    """``stats`` tells the last ``step`` call's spikes: after ``step(0)`` none (the fused path told the call before)."""
    runtime, _, _ = network(fused=fused)
    runtime.step(300)
    assert sum(runtime.stats()["spikes"].values()) > 0
    assert runtime.step(0).iterations == 0
    assert runtime.stats()["spikes"] == {"excitatory": 0, "inhibitory": 0}
