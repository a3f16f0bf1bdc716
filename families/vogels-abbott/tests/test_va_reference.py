"""The kernels against a numpy reference of the CUBA equations, step for step on a small network."""

from __future__ import annotations

import numpy as np
import pytest
import taichi as ti

from va_helpers import SMALL


def fast_math() -> bool:
    return bool(ti.lang.impl.current_cfg().fast_math)


def compare(runtime, reference, steps: int) -> None:
    runtime.record(True)
    for _ in range(steps):
        expected = reference.step()
        runtime.step(1)
        its, ids = runtime.take_spikes()
        assert (its == reference.iteration - 1).all()
        np.testing.assert_array_equal(ids, expected, err_msg=f"spikes differ at iteration {reference.iteration - 1}")
    state = runtime.export_state()
    for name, ours in (("state.v", reference.v), ("state.ge", reference.ge), ("state.gi", reference.gi)):
        if fast_math():
            np.testing.assert_allclose(state[name], ours, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(state[name], ours, err_msg=name)
    np.testing.assert_array_equal(state["state.refractory"], reference.refractory)
    np.testing.assert_array_equal(state["syn.weight"], reference.weight)


@pytest.mark.parametrize("stdp", [False, True], ids=["cuba", "cuba-stdp"])
def test_fused_driver_matches_numpy_reference_step_for_step(network, stdp: bool) -> None:
    from vogels_abbott.reference import Reference

    overrides = dict(SMALL) | ({"stdp": {"a_pre_mv": 0.2, "a_post_mv": -0.21}} if stdp else {})
    runtime, params, arrays = network(overrides, fused=True)
    reference = Reference(params, 3, arrays, direct=True)
    compare(runtime, reference, 250)
    assert runtime.iteration == 250


def test_stepwise_ring_driver_matches_numpy_reference_with_delays(network) -> None:
    """The GPU-shaped driver (parallel phases, fixed-point ring) with a 3-iteration delay, on the CPU."""
    from vogels_abbott.reference import Reference

    overrides = dict(SMALL) | {"delay_steps": 3, "stdp": {"a_pre_mv": 0.2, "a_post_mv": -0.21}}
    runtime, params, arrays = network(overrides, fused=False)
    reference = Reference(params, 3, arrays, direct=False)
    compare(runtime, reference, 120)


def test_one_long_step_equals_many_single_steps(network) -> None:
    one, _, arrays = network(fused=True)
    many, _, _ = network(fused=True, arrays=arrays)
    one.step(300)
    for _ in range(30):
        many.step(10)
    a, b = one.export_state(), many.export_state()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
