"""The family's description: layouts, build, estimate, and the network's statistics."""

from __future__ import annotations

import numpy as np
import pytest

from va_helpers import SMALL, STDP, params_for
from vogels_abbott import VogelsAbbott


def test_layouts_hold_fan_in_at_80() -> None:
    family = VogelsAbbott()
    for size, n in (("4k", 4000), ("40k", 40000), ("400k", 400000)):
        for suffix in ("", "-stdp"):
            p = params_for(f"cuba-{size}{suffix}")
            assert p.neurons == n and p.probability * n == 80 and (p.stdp is not None) == bool(suffix)
    assert params_for("example").probability == 0.02
    assert family.estimate(params_for("cuba-400k")).synapses == 32_000_000


def test_build_is_brian2_connectivity() -> None:
    p = params_for("example")
    arrays = VogelsAbbott().build(p, 11).arrays
    ptr, post, w = arrays["syn.ptr"], arrays["syn.post"], arrays["syn.weight"]
    counts = np.diff(ptr)
    assert abs(counts.mean() - 80) < 1.5  # Binomial(4000, 0.02) per row
    assert post.min() >= 0 and post.max() < 4000
    rows = np.repeat(np.arange(4000), counts)
    assert len(np.unique(rows.astype(np.int64) * 4000 + post)) == len(post)  # no pair twice
    assert np.all(w[rows < 3200] == np.float32(1.62)) and np.all(w[rows >= 3200] == np.float32(-9.0))
    again = VogelsAbbott().build(p, 11).arrays
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)


def test_example_fires_near_brian2s_rate(network) -> None:
    """Brian2's CUBA example fires at about 5.7 Hz; the rate over 0.5 s here must be of that order."""
    runtime, params, _ = network({}, seed=5)
    runtime.record(True)
    runtime.step(5000)
    its, ids = runtime.take_spikes()
    rate = len(ids) / params.neurons / 0.5
    assert 3.5 < rate < 8.5, rate


@pytest.mark.parametrize(
    "overrides,fused", [(SMALL, True), (SMALL | STDP | {"delay_steps": 5}, False)], ids=["fused", "per-iteration-stdp"]
)
def test_the_device_estimate_covers_every_field_the_runtime_allocates(network, overrides: dict, fused: bool) -> None:
    """hera sizes a GPU's memory pool from ``estimate().device_bytes``: it must hold every field (the spike log too)."""
    import taichi as ti

    runtime, params, _ = network(overrides, fused=fused)
    owners = (runtime.engine, runtime.driver)
    fields = [value for owner in owners for value in vars(owner).values() if isinstance(value, ti.Field)]
    assert runtime.engine.log_iteration in fields and runtime.driver.watch_neuron in fields
    allocated = sum(field.to_numpy().nbytes for field in fields)
    assert allocated <= VogelsAbbott().estimate(params).device_bytes
