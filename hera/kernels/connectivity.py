"""Building synapses on the host: rows by presynaptic neuron (CSR), random connectivity, the transposed index.

numpy only (no Taichi), so a family's ``build`` can use it in a management
command. The arrays it makes are what :mod:`hera.kernels.synapses` walks:
row ``i`` of a :class:`Csr` is ``ptr[i]:ptr[i+1]`` into ``post``, ``weight``
and ``delay`` (whole iterations, 1 to :data:`MAX_DELAY`).

* :func:`fixed_probability` draws Bernoulli(p) connectivity for every (pre, post)
  pair by drawing the gaps between connections, fast enough for 32M synapses;
* :func:`csr_from_pairs` sorts (pre, post, weight, delay) into rows;
* :func:`incoming` builds the transposed index a postsynaptic plasticity rule needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The largest delay a ``uint8`` delay array holds.
MAX_DELAY = 255


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
    # enough draws to finish in one go almost always (mean + 6 sigma), never more than ``chunk`` at a time
    size = min(chunk, int(total * p + 6 * (total * p) ** 0.5 + 16))
    while True:
        gaps = rng.geometric(p, size=size)
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
