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

Host helpers (numpy): :func:`fixed_probability` draws Bernoulli(p) connectivity
for every (pre, post) pair fast enough for 32M synapses, :func:`csr_from_pairs`
sorts (pre, post, weight, delay) into rows, and :func:`incoming` builds the
transposed index a postsynaptic plasticity rule needs.

Kernel API (``@ti.func``):

* ``to_fixed(w, scale) -> i32``;
* ``take(ring, channel, t, i, scale) -> f32``: neuron ``i``'s input arriving at iteration ``t``, cleared;
* ``push_row(ring, channel, t, i, ptr, post, weight, delay, scale)``: add neuron ``i``'s row into the ring;
  ``weight`` is a field or a Python float (one weight for all), ``delay`` a field or a Python int (one
  delay for all), both decided at compile time.
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

from dataclasses import dataclass

import numpy as np
import taichi as ti

#: The largest delay a ``uint8`` delay array holds.
MAX_DELAY = 255


# -- host: building connectivity ----------------------------------------------------------------


@dataclass
class Csr:
    """Synapses grouped by presynaptic neuron: row ``i`` is ``ptr[i]:ptr[i+1]``."""

    ptr: np.ndarray  # int64, n_pre + 1
    post: np.ndarray  # int32, one per synapse
    weight: np.ndarray | None = None  # float32, one per synapse
    delay: np.ndarray | None = None  # uint8 iterations (>= 1), one per synapse

    @property
    def n_pre(self) -> int:
        return len(self.ptr) - 1

    @property
    def synapses(self) -> int:
        return int(self.ptr[-1])

    def pre(self) -> np.ndarray:
        """The presynaptic neuron of each synapse (int32)."""
        return np.repeat(np.arange(self.n_pre, dtype=np.int32), np.diff(self.ptr))


def ptr_from_counts(counts: np.ndarray) -> np.ndarray:
    ptr = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def csr_from_pairs(
    n_pre: int,
    pre: np.ndarray,
    post: np.ndarray,
    weight: np.ndarray | None = None,
    delay: np.ndarray | None = None,
) -> Csr:
    """Rows by presynaptic neuron from parallel arrays (a stable sort, so each row keeps the given order)."""
    pre = np.asarray(pre, np.int64)
    if len(pre) and (pre.min() < 0 or pre.max() >= n_pre):
        raise ValueError("a presynaptic index is out of range")
    if delay is not None:
        delay = np.asarray(delay)
        if len(delay) and (delay.min() < 1 or delay.max() > MAX_DELAY):
            raise ValueError(f"delays must be whole iterations from 1 to {MAX_DELAY}")
    order = np.argsort(pre, kind="stable")
    return Csr(
        ptr=ptr_from_counts(np.bincount(pre, minlength=n_pre)),
        post=np.asarray(post, np.int32)[order],
        weight=None if weight is None else np.asarray(weight, np.float32)[order],
        delay=None if delay is None else np.asarray(delay, np.uint8)[order],
    )


def fixed_probability(
    n_pre: int, n_post: int, p: float, rng: np.random.Generator, *, chunk: int = 1 << 24
) -> tuple[np.ndarray, np.ndarray]:
    """Every (pre, post) pair connected independently with probability ``p`` (as Brian2's ``connect(p=p)``).

    Returns ``(ptr, post)`` in CSR form, rows sorted by post. Instead of
    drawing n_pre × n_post coins it draws the gaps between connected pairs
    (geometric), so 32M synapses take seconds, not minutes. Self-connections
    are allowed, as in Brian2's CUBA example; remove them afterwards if unwanted.
    """
    total = n_pre * n_post
    if p <= 0 or total == 0:
        return np.zeros(n_pre + 1, np.int64), np.zeros(0, np.int32)
    if p >= 1:
        return ptr_from_counts(np.full(n_pre, n_post)), np.tile(np.arange(n_post, dtype=np.int32), n_pre)
    pieces: list[np.ndarray] = []
    position = -1
    while True:
        gaps = rng.geometric(p, size=chunk)
        flat = np.cumsum(gaps, dtype=np.int64)
        flat += position
        if flat[-1] >= total:
            pieces.append(flat[: np.searchsorted(flat, total)])
            break
        pieces.append(flat)
        position = int(flat[-1])
    flat = np.concatenate(pieces)
    rows = flat // n_post
    post = (flat - rows * n_post).astype(np.int32)
    return ptr_from_counts(np.bincount(rows, minlength=n_pre)), post


def incoming(
    ptr: np.ndarray, post: np.ndarray, n_post: int, first_pre: int = 0, last_pre: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transposed index of the rows ``first_pre:last_pre``: for each post neuron, its incoming synapses.

    Returns ``(in_ptr, in_syn, in_pre)``: post neuron ``j``'s incoming synapses are
    ``in_syn[in_ptr[j]:in_ptr[j+1]]`` (indices into the CSR arrays), from
    presynaptic neurons ``in_pre[...]``. A postsynaptic plasticity rule walks
    these when ``j`` spikes.
    """
    last_pre = len(ptr) - 1 if last_pre is None else last_pre
    lo, hi = int(ptr[first_pre]), int(ptr[last_pre])
    targets = post[lo:hi]
    order = np.argsort(targets, kind="stable")
    in_syn = (order + lo).astype(np.int32 if hi < 2**31 else np.int64)
    counts = np.diff(ptr[first_pre : last_pre + 1])
    pre = np.repeat(np.arange(first_pre, last_pre, dtype=np.int32), counts)
    return ptr_from_counts(np.bincount(targets, minlength=n_post)), in_syn, pre[order]


# -- kernels ---------------------------------------------------------------------------------------


@ti.func
def to_fixed(w: ti.f32, scale: ti.f32) -> ti.i32:
    """A weight in the ring's fixed point (rounded to nearest, ties to even as the host's np.rint)."""
    return ti.cast(ti.round(w * scale), ti.i32)


@ti.func
def take(ring: ti.template(), channel: ti.i32, t: ti.i64, i: ti.i32, scale: ti.f32) -> ti.f32:
    """Neuron ``i``'s input on ``channel`` arriving at iteration ``t``; the slot is cleared for reuse."""
    slot = ti.cast(t % ring.shape[1], ti.i32)
    q = ring[channel, slot, i]
    ring[channel, slot, i] = 0
    return ti.cast(q, ti.f32) * (1.0 / scale)


@ti.func
def push_row(
    ring: ti.template(),
    channel: ti.i32,
    t: ti.i64,
    i: ti.i32,
    ptr: ti.template(),
    post: ti.template(),
    weight: ti.template(),
    delay: ti.template(),
    scale: ti.f32,
):
    """Neuron ``i`` spiked at iteration ``t``: each of its synapses adds its weight at ``t + delay``.

    ``ti.atomic_add`` keeps it correct when several threads push at once (GPU);
    in a serial loop Taichi demotes it to a plain add.
    """
    slots = ring.shape[1]
    for k in range(ptr[i], ptr[i + 1]):
        q = 0
        if ti.static(isinstance(weight, (int, float))):
            q = ti.static(int(np.rint(weight * scale)))
        else:
            q = to_fixed(weight[k], scale)
        if ti.static(isinstance(delay, int)):
            ti.atomic_add(ring[channel, ti.cast((t + delay) % slots, ti.i32), post[k]], q)
        else:
            ti.atomic_add(ring[channel, ti.cast((t + ti.cast(delay[k], ti.i64)) % slots, ti.i32), post[k]], q)


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
        q = np.rint(csr.weight[k] * np.float32(scale)).astype(np.int32)
        d = np.full(k.stop - k.start, delay) if delay is not None else csr.delay[k].astype(np.int64)  # type: ignore[index]
        np.add.at(ring[channel], ((t + d) % slots, csr.post[k]), q)
