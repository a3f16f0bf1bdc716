"""Growing a downed abraxas brain: bigger sheets, more depth, longer dendrites and axons.

Every existing weight and state value is kept; offsets are recalculated.

* A neuron keeps its sheet and its (x, y) cell; new cells are added to the
  right and below, new hidden sheets on top of the stack (each new sheet is
  also read by the output, so no existing projection is re-routed).
* A synapse keeps its post cell and its tap. In a whole-sheet field (input
  to hidden0, hidden to output, input to output) it keeps its pre cell,
  which keeps its (x, y): a bigger pre sheet adds cells after the old ones.
  In a hidden-to-hidden window it keeps its offset from the centre of the
  post cell's window: a longer dendrite widens the window around the old
  one; where a sheet's size changes, the cell that an offset lands on moves
  with the new scale and wrap, as it must. A longer axon adds input-to-output
  taps after the old ones.
* A hidden cell keeps its winner-take-all group (its rows' group), so its
  lag pair; a wider sheet has wider groups, a taller one more groups.
* The spike and current rings are re-slotted by iteration, so spikes still
  in flight arrive when they would have; ``state.clocked`` keeps its stages.

Shrinking anything, or changing ``delay_step`` or ``ticks_per_byte`` (which
would change what every tap means) or ``hidden.group_rows`` or
``hidden.lags`` (which would change every group's lag pair), is refused with
a :class:`HeraError`.
Imports numpy only: grow runs in the controller, never with Taichi.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from abraxas.structure import PENDING, AbraxasParams, Area, Structure
from hera.errors import HeraError
from hera.family import array_specs, row_blocks


def refuse_shrinking(old: AbraxasParams, new: AbraxasParams) -> None:
    """One clear error listing every change grow cannot make."""
    problems = []
    sizes = [
        ("input.width", old.input.width, new.input.width),
        ("input.height", old.input.height, new.input.height),
        ("hidden.width", old.hidden.width, new.hidden.width),
        ("hidden.height", old.hidden.height, new.hidden.height),
        ("hidden.depth", old.hidden.depth, new.hidden.depth),
        ("output.width", old.output.width, new.output.width),
        ("output.height", old.output.height, new.output.height),
        ("dendrite_length", old.dendrite_length, new.dendrite_length),
        ("axon_length", old.axon_length, new.axon_length),
    ]
    problems += [f"{name} {was} -> {now}" for name, was, now in sizes if now < was]
    if problems:
        raise HeraError(
            "abraxas cannot shrink a brain: " + ", ".join(problems),
            hint="a grown brain keeps every weight; to make a smaller one, build a new instance and let it learn",
        )
    for name, was, now, means in (
        ("delay_step", old.delay_step, new.delay_step, "what every delay tap means"),
        ("ticks_per_byte", old.ticks_per_byte, new.ticks_per_byte, "what every delay tap means"),
        ("hidden.group_rows", old.hidden.group_rows, new.hidden.group_rows, "every hidden cell's group"),
        ("hidden.lags", list(old.hidden.lags), list(new.hidden.lags), "every hidden group's lag pair"),
    ):
        if was != now:
            raise HeraError(
                f"abraxas cannot change {name} ({was} -> {now}) by growing",
                hint=f"it sets {means}; build a new instance for another value",
            )


def cell_map(old: Area, new: Area) -> np.ndarray:
    """For each neuron of ``old`` (in order), its index within ``new``: the same (x, y) cell."""
    y, x = np.divmod(np.arange(old.size), old.width)
    return y * new.width + x


def neuron_map(before: Structure, after: Structure) -> tuple[np.ndarray, np.ndarray]:
    """(old global indices, their new global indices), area by area."""
    olds, news = [], []
    for area in before.areas:
        grown = after.area(area.name)
        olds.append(np.arange(area.offset, area.offset + area.size))
        news.append(grown.offset + cell_map(area, grown))
    return np.concatenate(olds), np.concatenate(news)


def grow(
    old: AbraxasParams, new: AbraxasParams, arrays: Mapping[str, np.ndarray], *, dynamic: bool
) -> tuple[dict[str, Any], Iterator[tuple[str, np.ndarray]]]:
    """The summary of a brain built with ``old`` grown to ``new``, and its grown arrays one at a time.

    ``dynamic`` (the header's) says whether the state is grown too; the arrays
    must be exactly the old brain's, or a missing state array would be grown
    into a brain at rest. Both are checked here, before anything is made;
    ``arrays`` may be read lazily (see :meth:`hera.family.Family.grow`): each
    old array is read once, weights a block of rows at a time, so growing
    holds one grown array and a few MiB of the old brain.
    """
    refuse_shrinking(old, new)
    before, after = Structure(old), Structure(new)
    before.check_arrays(array_specs(arrays), dynamic)
    return after.summary(), _grown(before, after, arrays, dynamic)


def _grown(
    before: Structure, after: Structure, arrays: Mapping[str, np.ndarray], dynamic: bool
) -> Iterator[tuple[str, np.ndarray]]:
    """The grown weights, projection by projection, then (``dynamic``) the state."""
    previous = {p.name: p for p in before.projections}
    for proj in after.projections:
        weights = np.zeros(proj.shape, np.float32)  # untouched pages of zeros cost no memory
        was = previous.get(proj.name)
        if was is not None:
            posts = cell_map(was.post, proj.post)
            # A whole-sheet field is indexed by pre cell (kept); a window by offset from its centre (kept).
            fy0 = 0 if proj.full else proj.field_height // 2 - was.field_height // 2
            fx0 = 0 if proj.full else proj.field_width // 2 - was.field_width // 2
            for first, block in row_blocks(arrays, f"weights.{proj.name}"):
                rows = posts[first : first + len(block)]
                weights[rows, fy0 : fy0 + was.field_height, fx0 : fx0 + was.field_width, : was.taps] = block
        yield f"weights.{proj.name}", weights
        del weights  # before the next is made: one grown array at a time
    if dynamic:
        yield from grow_state(before, after, arrays).items()


def grow_state(before: Structure, after: Structure, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Neuron state moved to the new indices; rings re-slotted by the iteration each slot stands for.

    A few bytes per neuron, all small beside the weights: read whole.
    """
    olds, news = neuron_map(before, after)
    state: dict[str, np.ndarray] = {}
    for name, (dtype, shape) in after.state_arrays().items():
        if len(shape) == 1 and shape[0] == after.neurons:
            moved = np.zeros(shape, dtype)
            moved[news] = arrays[name][olds]
            state[name] = moved
    iteration = int(arrays["state.iteration"][0])
    was, now = before.ring_slots, after.ring_slots
    # The spike ring holds the past (iterations before now), the current ring the future (now onwards).
    for name, ring_dtype, offsets in (
        ("state.spikes", np.uint8, range(-(was - 1), 0)),
        ("state.current", np.int32, range(0, was)),
    ):
        ring = np.zeros((after.neurons, now), ring_dtype)
        source = arrays[name]
        for offset in offsets:
            ring[news, (iteration + offset) % now] = source[olds, (iteration + offset) % was]
        del source
        state[name] = ring
    clocked = np.zeros(after.state_arrays()["state.clocked"][1], np.int32)
    old_clocked = arrays["state.clocked"]
    clocked[: len(old_clocked)] = old_clocked
    state["state.clocked"] = clocked
    state["state.iteration"] = arrays["state.iteration"].copy()
    state["state.rng_key"] = arrays["state.rng_key"].copy()
    state["state.surprise"] = arrays["state.surprise"].copy()
    state[PENDING] = arrays[PENDING].copy()
    return state
