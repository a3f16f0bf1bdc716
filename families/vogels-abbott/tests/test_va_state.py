"""What an instance must hold for the runtime to take it: the whole agent, or a refusal naming what is wrong.

hera saves exactly what ``export_state`` returns and loads exactly that on
the next ``up``, so the export must be the whole agent (the connectivity
included), and a header that says ``dynamic: true`` must come with every
array of the state: a missing or renamed one is refused in one line that
names it, never zero-filled or rebuilt from the seed, which would bring the
agent back with a different brain at the same iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from hera.errors import HeraError
from va_helpers import SMALL, header_for, params_for
from vogels_abbott import VogelsAbbott

STDP = SMALL | {"stdp": {}}


@dataclass(frozen=True)
class Saved:
    """A small STDP network (every kind of state array) after 60 iterations, as an agent would save it."""

    header: Any
    built: dict[str, np.ndarray]
    state: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def saved(taichi: None) -> Saved:
    """Built and run once per module: the refusals below happen before anything is allocated, so they are cheap."""
    from vogels_abbott.runtime import CubaRuntime

    params = params_for("example", STDP)
    built = VogelsAbbott().build(params, 3).arrays
    runtime = CubaRuntime(params, 3, dict(built), "cpu")
    runtime.step(60)
    header = header_for(params, 3).model_copy(update={"dynamic": True, "iteration": 60})
    return Saved(header, dict(built), runtime.export_state())


def refusal(header: Any, arrays: dict[str, np.ndarray]) -> str:
    """The one line the family's runtime refuses ``arrays`` with."""
    with pytest.raises(HeraError) as refused:
        VogelsAbbott().runtime(header, arrays, "cpu")
    line = str(refused.value)
    assert "\n" not in line
    return line


def test_the_export_holds_the_connectivity_bit_for_bit(saved: Saved) -> None:
    built, state = saved.built, saved.state
    assert set(built) <= set(state)
    for name in ("syn.ptr", "syn.post"):
        assert state[name].dtype == built[name].dtype and np.array_equal(state[name], built[name]), name


def test_the_export_alone_comes_back_at_its_iteration(saved: Saved) -> None:
    header, state = saved.header, saved.state
    again = VogelsAbbott().runtime(header, dict(state), "cpu")
    assert again.iteration == 60
    for name, array in again.export_state().items():
        assert array.tobytes() == state[name].tobytes(), name


def test_a_dynamic_instance_missing_any_array_is_refused_naming_it(saved: Saved) -> None:
    header, state = saved.header, saved.state
    for name in sorted(state):
        arrays = {key: value for key, value in state.items() if key != name}
        line = refusal(header, arrays)
        assert repr(name) in line and header.callsign in line, line


def test_a_renamed_array_is_refused_not_started_fresh(saved: Saved) -> None:
    """``state.v`` renamed by one letter: the old runtime took the instance for a fresh one (new potentials)."""
    header, state = saved.header, saved.state
    arrays = dict(state)
    arrays["state.w"] = arrays.pop("state.v")
    line = refusal(header, arrays)
    assert "'state.v'" in line or "'state.w'" in line, line


def test_a_fresh_instance_carrying_state_or_unknown_arrays_is_refused(saved: Saved) -> None:
    header, built, state = saved.header, saved.built, saved.state
    fresh = header.model_copy(update={"dynamic": False, "iteration": 0})
    assert "'state.v'" in refusal(fresh, built | {"state.v": state["state.v"]})
    assert "'syn.extra'" in refusal(fresh, built | {"syn.extra": np.zeros(3, np.float32)})
    assert "'syn.extra'" in refusal(header, state | {"syn.extra": np.zeros(3, np.float32)})


def test_state_that_disagrees_with_its_header_is_refused(saved: Saved) -> None:
    header, state = saved.header, saved.state
    assert "iteration" in refusal(header.model_copy(update={"iteration": 61}), state)
    negative = state | {"state.iteration": np.array([-5], np.int64)}
    assert "iteration" in refusal(header.model_copy(update={"iteration": 0}), negative)


def _post_beyond(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    post = a["syn.post"].copy()
    post[7] = 10**6
    return a | {"syn.post": post}


#: id -> (what the damage does to a saved state, what the refusal must name)
DAMAGE: dict[str, tuple[Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], str]] = {
    "post-beyond-the-network": (_post_beyond, "syn.post"),
    "post-negative": (lambda a: a | {"syn.post": np.full_like(a["syn.post"], -1)}, "syn.post"),
    "ptr-decreasing": (lambda a: a | {"syn.ptr": a["syn.ptr"][::-1].copy()}, "syn.ptr"),
    "ptr-float": (lambda a: a | {"syn.ptr": a["syn.ptr"].astype(np.float64)}, "syn.ptr"),
    "weight-short": (lambda a: a | {"syn.weight": a["syn.weight"][:-1].copy()}, "syn"),
    "v-float64": (lambda a: a | {"state.v": a["state.v"].astype(np.float64)}, "state.v"),
    "ring-shape": (lambda a: a | {"state.ring": a["state.ring"][:, :, :-1].copy()}, "state.ring"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_connectivity_or_state_that_cannot_fit_the_network_is_refused(saved: Saved, damage: str) -> None:
    """Indices that would make the kernels read or write outside their fields never reach them."""
    change, named = DAMAGE[damage]
    line = refusal(saved.header, change(dict(saved.state)))
    assert named in line, line


def test_a_layout_round_trip_through_the_family_keeps_the_built_structure(taichi: None) -> None:
    """A fresh runtime from ``build`` exports the built connectivity unchanged (same objects' bytes, same dtypes)."""
    params = params_for("example", SMALL)
    built = VogelsAbbott().build(params, 5).arrays
    header = header_for(params, 5)
    runtime = VogelsAbbott().runtime(header, dict(built), "cpu")
    state = runtime.export_state()
    for name in built:
        assert state[name].dtype == built[name].dtype and state[name].tobytes() == built[name].tobytes(), name


def test_header_params_the_family_rejects_are_one_line_naming_the_parameter(saved: Saved) -> None:
    """A hand-edited header (here a negative size) never reaches numpy or Taichi as a traceback."""
    params = dict(saved.header.params) | {"neurons": -5}
    line = refusal(saved.header.model_copy(update={"params": params}), dict(saved.state))
    assert "'neurons'" in line and "header" in line, line
