"""N+M iterations in one go equal N, export, import in a fresh process, M: every array bit for bit.

The fresh process gets the export and nothing else (no built arrays merged
back in): an agent's cached file holds exactly what ``export_state`` returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from va_helpers import SMALL, run_child


@pytest.mark.parametrize(
    "overrides,fused",
    [
        (SMALL | {"stdp": {"a_pre_mv": 0.2, "a_post_mv": -0.21}}, True),
        (SMALL | {"delay_steps": 4}, False),
    ],
    ids=["fused-stdp", "stepwise-delays"],
)
def test_resume_in_a_fresh_process_is_bit_exact(network, tmp_path: Path, overrides: dict, fused: bool) -> None:
    n, m = 173, 211  # the export falls mid-flight: spikes pending, neurons refractory
    whole, params, arrays = network(overrides, fused=fused)
    whole.step(n + m)
    expected = whole.export_state()

    half, _, _ = network(overrides, fused=fused, arrays=arrays)
    half.step(n)
    # the export alone, nothing merged back: the cached file an agent writes is exactly this
    state = half.export_state()
    assert state["state.refractory"].any(), "choose N so that some neuron is refractory at the export"
    np.savez(tmp_path / "state.npz", **state)
    run = {"name": "after", "params": params.model_dump(mode="json"), "seed": 3, "fused": fused, "state": "state.npz"}
    resumed = run_child(tmp_path, "cpu", [run | {"steps": [(m, [])]}], threads=1)["after"].state

    assert set(resumed) == set(expected)
    for name in expected:
        assert resumed[name].dtype == expected[name].dtype
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)
    assert int(expected["state.iteration"][0]) == n + m
