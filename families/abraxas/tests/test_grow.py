"""Grow keeps every weight and state value, recalculates offsets, and refuses to shrink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from abraxas import Abraxas
from abraxas.grow import cell_map, neuron_map
from abraxas.streams import SENTENCE, repeated
from abraxas.structure import Structure
from conftest import header_for, params_for
from hera.errors import HeraError
from hera.runtime import dynamic_header

BIGGER = {
    "input": {"width": 20},
    "output": {"height": 18},
    "hidden": {"width": 40, "height": 54, "depth": 2},
    "dendrite_length": 3,
    "axon_length": 40,
}
FROZEN = {"plasticity": {"rate": 0.0, "hidden_rate": 0.0}}


@pytest.fixture
def learned(brain: Callable[..., Any]) -> dict[str, np.ndarray]:
    """An example brain that has learned for a while and has spikes in flight."""
    rt = brain()
    rt.feed(repeated(SENTENCE, 600))
    rt.step(1203)
    arrays = rt.export_state()
    assert arrays["weights.input-output"].any() and arrays["weights.input-hidden0"].any()
    assert arrays["state.current"].any()
    return arrays


def test_grow_keeps_every_weight_and_state_value(learned: dict[str, np.ndarray]) -> None:
    old, new = params_for(), params_for(overrides=BIGGER)
    summary, pairs = Abraxas().grow(dynamic_header(header_for(old), _Iter(1203)), learned, new)
    grown = dict(pairs)
    before, after = Structure(old), Structure(new)
    assert summary == after.summary()
    for proj in after.projections:
        assert grown[f"weights.{proj.name}"].shape == proj.shape
    for proj in before.projections:
        was, now = learned[f"weights.{proj.name}"], grown[f"weights.{proj.name}"]
        kept = now[cell_map(proj.post, after.area(proj.post.name))]
        assert kept.sum(dtype=np.float64) == was.sum(dtype=np.float64)  # nothing lost, nothing added
        assert np.count_nonzero(now) == np.count_nonzero(was)
        assert sorted(now[now != 0].tolist()) == sorted(was[was != 0].tolist())
    olds, news = neuron_map(before, after)
    for name in ("state.potential", "state.threshold"):
        assert np.array_equal(grown[name][news], learned[name][olds])
        assert not np.delete(grown[name], news).any()  # new neurons start at rest
    # Spikes of the last ring_slots - 1 iterations (the oldest slot is stale: no delay reaches it), and
    # every current still in flight, are all kept.
    stale = 1203 % before.ring_slots
    assert grown["state.spikes"].sum(dtype=np.int64) == np.delete(learned["state.spikes"], stale, axis=1).sum()
    assert grown["state.current"].sum(dtype=np.int64) == learned["state.current"].sum(dtype=np.int64)
    assert grown["state.clocked"].tolist() == [*learned["state.clocked"].tolist(), 0]  # one more sheet
    assert grown["state.iteration"][0] == 1203
    assert grown["state.surprise"].tobytes() == learned["state.surprise"].tobytes()  # what it has been told, kept
    assert grown["io.pending"].tobytes() == learned["io.pending"].tobytes()


def test_a_grown_brain_runs_on_exactly_as_before_where_nothing_new_acts(learned: dict[str, np.ndarray]) -> None:
    """Longer axons add zero-weight taps and re-slot the rings: with learning frozen, nothing may change."""
    family = Abraxas()
    old, new = params_for(overrides=FROZEN), params_for(overrides={**FROZEN, "axon_length": 36})
    grown = dict(family.grow(dynamic_header(header_for(old), _Iter(1203)), learned, new)[1])
    plain = family.runtime(dynamic_header(header_for(old), _Iter(1203)), learned, "cpu")
    longer = family.runtime(dynamic_header(header_for(new), _Iter(1203)), grown, "cpu")
    plain.step(400)
    longer.step(400)
    a, b = plain.take_decisions(), longer.take_decisions()
    assert len(a) > 50 and np.array_equal(a, b)
    assert np.array_equal(plain.export_state()["state.potential"], longer.export_state()["state.potential"])


def test_a_grown_brain_keeps_learning(learned: dict[str, np.ndarray]) -> None:
    family = Abraxas()
    old, new = params_for(), params_for(overrides=BIGGER)
    grown = dict(family.grow(dynamic_header(header_for(old), _Iter(1203)), learned, new)[1])
    rt = family.runtime(dynamic_header(header_for(new), _Iter(1203)), grown, "cpu")
    rt.feed(repeated(SENTENCE, 20 * len(SENTENCE)))
    rt.step(20 * len(SENTENCE) * rt.params.ticks_per_byte)
    log = rt.take_decisions()
    log = log[log[:, 2] >= 0]
    assert (log[-3 * len(SENTENCE) :, 1] == log[-3 * len(SENTENCE) :, 2]).mean() >= 0.8


def test_a_dead_instance_grows_to_a_dead_instance() -> None:
    family = Abraxas()
    old, new = params_for(), params_for(overrides=BIGGER)
    built = family.build(old, 7)
    grown = dict(family.grow(header_for(old), built.arrays, new)[1])
    assert sorted(grown) == sorted(family.build(new, 7).arrays)
    assert not any(a.any() for a in grown.values())


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"hidden": {"width": 16}}, "hidden.width 32 -> 16"),
        ({"hidden": {"depth": 0}}, "hidden.depth 1 -> 0"),
        ({"dendrite_length": 1, "axon_length": 24, "hidden": {"lags": [2, 3]}}, "dendrite_length 2 -> 1, axon_length 32 -> 24"),
        ({"output": {"width": 16}, "input": {"height": 15}}, "input must be at least 16"),
    ],
)
def test_shrinking_is_refused_with_a_clear_message(change: dict[str, Any], named: str) -> None:
    family = Abraxas()
    old = params_for()
    with pytest.raises(HeraError, match="cannot shrink|at least 16") as caught:
        family.grow(header_for(old), family.build(old, 7).arrays, params_for(overrides=change))
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"delay_step": 2}, "delay_step"),
        ({"hidden": {"lags": [2, 5]}}, "hidden.lags"),
        ({"hidden": {"group_rows": 4}}, "hidden.group_rows"),
    ],
)
def test_changing_what_a_tap_or_a_group_means_is_refused(change: dict[str, Any], named: str) -> None:
    family = Abraxas()
    old = params_for()
    with pytest.raises(HeraError, match=f"cannot change {named}"):
        family.grow(header_for(old), family.build(old, 7).arrays, params_for(overrides=change))


class _Iter:
    """The little of a runtime that dynamic_header reads."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration
