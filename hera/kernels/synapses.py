"""Sparse synapses stored by presynaptic neuron (CSR), with per-synapse integer delays through a ring buffer.

Why this shape: a spiking brain is quiet most of the time, so a step should
cost in proportion to spikes × fan-out, not to the number of synapses (let
alone N²). Synapses are therefore grouped by their presynaptic neuron (a CSR
row per neuron: ``ptr[i]:ptr[i+1]`` index ``post``, ``weight``, ``delay``),
and only the rows of neurons that spiked are walked. Each synapse adds its
weight into a ring buffer of pending input, one slot per future iteration:
the slot for ``t + delay`` is ``(t + delay) % slots``. At iteration ``t`` a
neuron takes (and clears) slot ``t % slots``. Delays are whole iterations,
1 ≤ delay ≤ slots, so ``slots = max delay`` suffices: a slot is cleared when
read, before any push of that iteration can land in it again.

The ring holds fixed-point integers (``round(w * scale)``), not floats:
integer addition is associative, so input summed by many GPU threads in any
order is the same bit for bit, and an agent resumes exactly on every arch.
Pick ``scale`` (a power of two) so that a neuron's input in one step stays
well below 2**31 / scale.

The CSR arrays themselves are built on the host by :mod:`hera.kernels.connectivity`
(numpy only, so a family's ``build`` does not import Taichi).

Kernel API (``@ti.func``):

* ``to_fixed(w, scale) -> i32``;
* ``slot_of(ring, t) -> i32``: the ring slot of iteration ``t`` (compute it once per step);
* ``take(ring, channel, slot, i, scale) -> f32``: neuron ``i``'s input arriving in ``slot``, cleared
  (a lane vector for a ``ti.Vector.field`` ring, whose element ``i`` is a group of neurons);
* ``add_at(target, p, x)``, ``value_at(source, p)``, ``ring_add(ring, channel, slot, p, q)``: neuron ``p``
  of a scalar or lane-vector field;
* ``push_row(ring, channel, t, i, ptr, post, weight, delay, scale)``: add neuron ``i``'s row into the ring;
  ``weight`` is a field or a Python float (one weight for all), ``delay`` a field or a Python int (one
  delay for all), both decided at compile time;
* ``add_row(target, i, ptr, post, weight)``: delay-one delivery straight into a float state variable
  (``target[post] += w``), skipping the ring. Only for serial loops (the fused CPU driver): float
  additions from parallel threads would sum in a varying order. It saves reading and clearing a ring
  slot for every neuron every step, which is most of a small brain's memory traffic.
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

import numpy as np
import taichi as ti
from numpy.typing import ArrayLike

from hera.kernels.connectivity import Csr
from hera.kernels.template import Template

# -- kernels ---------------------------------------------------------------------------------------


@ti.func
def to_fixed(w: ti.f32, scale: ti.f32) -> ti.i32:
    """A weight in the ring's fixed point (rounded to nearest, halves away from zero; see :func:`to_fixed_np`)."""
    return ti.cast(ti.round(w * scale), ti.i32)


@ti.func
def slot_of(ring: Template, t: ti.i64) -> ti.i32:
    """The slot holding input that arrives at iteration ``t``."""
    return ti.cast(t % ring.shape[1], ti.i32)


@ti.func
def take(ring: Template, channel: ti.i32, slot: ti.i32, i: ti.i32, scale: ti.f32):
    """Element ``i``'s input on ``channel`` arriving in ``slot`` (see :func:`slot_of`); the slot is cleared.

    With a lane-vector ring (``ti.Vector.field``) element ``i`` is a group of neurons and the result a vector.
    """
    q = ring[channel, slot, i]
    ring[channel, slot, i] = q * 0
    return ti.cast(q, ti.f32) * (1.0 / scale)


@ti.func
def add_at(target: Template, p: ti.i32, x):
    """``target[p] += x`` for neuron ``p`` of a scalar field or of a lane-vector field (group p // lanes)."""
    if ti.static(isinstance(target, ti.MatrixField)):
        g = p // target.n
        lanes = target[g]
        lanes[p % target.n] += x
        target[g] = lanes
    else:
        target[p] += x


@ti.func
def value_at(source: Template, p: ti.i32):
    """Neuron ``p``'s value in a scalar or lane-vector field."""
    if ti.static(isinstance(source, ti.MatrixField)):
        return source[p // source.n][p % source.n]
    else:
        return source[p]


@ti.func
def ring_add(ring: Template, channel: ti.i32, slot: ti.i32, p: ti.i32, q: ti.i32):
    """Add ``q`` to neuron ``p``'s pending input in ``slot`` (scalar or lane-vector ring)."""
    if ti.static(isinstance(ring, ti.MatrixField)):
        ring[channel, slot, p // ring.n][p % ring.n] += q
    else:
        ring[channel, slot, p] += q


@ti.func
def push_row(
    ring: Template,
    channel: ti.i32,
    t: ti.i64,
    i: ti.i32,
    ptr: Template,
    post: Template,
    weight: Template,
    delay: Template,
    scale: ti.f32,
):
    """Neuron ``i`` spiked at iteration ``t``: each of its synapses adds its weight at ``t + delay``.

    ``ti.atomic_add`` keeps it correct when several threads push at once (GPU);
    in a serial loop Taichi demotes it to a plain add.
    """
    slots = ring.shape[1]
    uniform_slot = 0
    if ti.static(isinstance(delay, int)):
        uniform_slot = ti.cast((t + delay) % slots, ti.i32)
    for k in range(ptr[i], ptr[i + 1]):
        q = 0
        if ti.static(isinstance(weight, (int, float))):
            q = to_fixed(weight, scale)  # ``scale`` may be a kernel argument: not a compile-time constant
        else:
            q = to_fixed(weight[k], scale)
        if ti.static(isinstance(delay, int)):
            ring_add(ring, channel, uniform_slot, post[k], q)
        else:
            ring_add(ring, channel, ti.cast((t + ti.cast(delay[k], ti.i64)) % slots, ti.i32), post[k], q)


@ti.func
def add_row(target: Template, i: ti.i32, ptr: Template, post: Template, weight: Template):
    """Neuron ``i`` spiked: add its row's weights to ``target`` now (felt in the next step's integration)."""
    for k in range(ptr[i], ptr[i + 1]):
        if ti.static(isinstance(weight, (int, float))):
            add_at(target, post[k], weight)
        else:
            add_at(target, post[k], weight[k])


def to_fixed_np(w: ArrayLike, scale: float) -> np.ndarray:
    """:func:`to_fixed` on the host: ``ti.round`` rounds halves away from zero (``np.rint`` would round to even)."""
    x = np.asarray(w, np.float32) * np.float32(scale)
    whole = np.trunc(x)
    return np.where(np.abs(x - whole) >= 0.5, whole + np.sign(x), whole).astype(np.int32)


def take_np(ring: np.ndarray, channel: int, t: int, scale: float) -> np.ndarray:
    """:func:`take` for every neuron on the host (clears the slot, as the kernel does)."""
    slot = t % ring.shape[1]
    q = ring[channel, slot].copy()
    ring[channel, slot] = 0
    return q.astype(np.float32) * np.float32(1.0 / scale)


def push_np(
    ring: np.ndarray, channel: int, t: int, rows: np.ndarray, csr: Csr, scale: float, delay: int | None = None
) -> None:
    """:func:`push_row` for the neurons ``rows`` on the host (weights from ``csr.weight``)."""
    slots = ring.shape[1]
    for i in rows:
        k = slice(int(csr.ptr[i]), int(csr.ptr[i + 1]))
        assert csr.weight is not None
        q = to_fixed_np(csr.weight[k], scale)
        d = np.full(k.stop - k.start, delay) if delay is not None else csr.delay[k].astype(np.int64)  # type: ignore[index]
        np.add.at(ring[channel], ((t + d) % slots, csr.post[k]), q)
