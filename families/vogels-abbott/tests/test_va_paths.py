"""The two ways the driver runs an iteration compute the same network, with two CPU threads.

The fused path (one launch per ``step``, a serial loop over lane vectors of 8
neurons) and the per-iteration path (one launch per iteration, each phase a
parallel loop over single neurons: what a GPU runs) must agree bit for bit:
every exported array, every spike, every breakpoint's iteration. Two threads,
so that the parallel phases really race (the tests' own process runs Taichi
on one): the ring's fixed-point sums and the phase order (all rows pushed and
depressed before any potentiation reads a trace) make the result independent
of which thread adds first.

With a delay of 3 both paths deliver through the ring. With the shipped delay
of one, the fused path adds input straight into ``ge``/``gi`` in float32 (in
spike order, which it keeps) and so differs from the ring's rounding to 2**-20 mV
in the last bits: that pair is compared by the numpy reference instead
(test_va_reference), each path against its own delivery.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from va_helpers import SMALL, STDP, assert_same, params_for, run_child

#: breakpoints on one neuron, then on an area, between plain runs
STEPS = [(120, []), (3000, ["neuron:73"]), (3000, ["area:inhibitory"]), (50, ["neuron:5", "area:excitatory"]), (150, [])]


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both paths, with and without STDP, in one fresh process on two threads."""
    runs = []
    for label, extra in (("cuba", {}), ("stdp", STDP)):
        params = params_for("example", SMALL | {"delay_steps": 3} | extra).model_dump(mode="json")
        for path, fused in (("fused", True), ("parallel", False)):
            runs.append({"name": f"{label}-{path}", "params": params, "seed": 4, "fused": fused, "steps": STEPS})
    return run_child(tmp_path_factory.mktemp("paths"), "cpu", runs, threads=2)


@pytest.mark.parametrize("label", ["cuba", "stdp"])
def test_fused_and_parallel_paths_agree_bit_for_bit_on_two_threads(played: dict[str, Any], label: str) -> None:
    assert played["report"]["threads"] == 2
    fused, parallel = played[f"{label}-fused"], played[f"{label}-parallel"]
    assert fused.fused and not parallel.fused
    # the runs did what the comparison needs: spikes, both breakpoints hit mid-run, plasticity at work
    assert [r[2] for r in fused.results] == [None, "neuron:73", "area:inhibitory", "area:excitatory", None]
    assert 1 < fused.results[1][0] < 3000 and len(fused.neurons) > 100
    if label == "stdp":
        built = params_for("example", SMALL | {"delay_steps": 3} | STDP)
        assert built.stdp is not None and fused.state["state.a_pre"].any()
        assert len(np.unique(fused.state["syn.weight"])) > 2  # no longer just the two built weights
    assert_same(fused, parallel)
