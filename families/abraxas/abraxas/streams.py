"""Byte streams to learn from, and the baselines a learner is judged against.

Shared by the tests and ``scripts/learning_curve.py`` so both measure the same
thing. Pure Python (numpy only inside functions that return arrays), so
importing it costs nothing.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SENTENCE = b"the quick brown fox jumps over the lazy dog. "

#: Sequences whose last element depends on the first, three bytes back: the middle
#: pairs are shared, so after "QR" the next byte is "b" or "d" by what came before.
HIGH_ORDER_SEQUENCES = (b"aQRb", b"cQRd", b"eXYf", b"gXYh", b"iQYj", b"kXRl")

#: A second source for the continual-learning switch: same kind, other symbols.
SWITCHED_SEQUENCES = (b"mPSn", b"oPSp", b"qTUr", b"sTUt", b"uPUv", b"wTSx")


def repeated(text: bytes, length: int) -> bytes:
    """``text`` over and over, cut to ``length`` bytes."""
    return (text * (length // len(text) + 1))[:length]


def high_order(length: int, seed: int = 1, sequences: tuple[bytes, ...] = HIGH_ORDER_SEQUENCES) -> bytes:
    """Sequences drawn at random and concatenated (Cui, Ahmad & Hawkins 2016, in bytes).

    Within a sequence the next byte is fixed by the bytes before it, but only
    an order-3 context tells the last one; where a new sequence starts nothing
    predicts it, so the best possible accuracy is about 0.79.
    """
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < length:
        out += rng.choice(sequences)
    return bytes(out[:length])


#: The Latin square of :func:`latin_order2`, ``(a, b, c)`` for ``next = (a·i + b·j + c) mod symbols``.
LATIN = (1, 3, 0)
#: Another on the same letters, for a switch of source: every pair of bytes is followed by another byte.
LATIN_SWITCHED = (3, 1, 5)


def latin_order2(
    length: int, seed: int = 3, symbols: int = 8, p: float = 0.85, table: tuple[int, int, int] = LATIN
) -> bytes:
    """A noisy order-2 source whose next byte only the pair of the two before it tells.

    Over ``symbols`` letters from ``a``, the next is ``(a·i + b·j + c) mod
    symbols`` for the two before it ``i, j`` and ``table = (a, b, c)`` (with
    ``a`` and ``b`` odd and ``symbols`` a power of two, a Latin square: each of
    them alone says nothing) with probability ``p``, else uniform. Its order-2
    count model approaches ``p + (1 - p) / symbols`` (0.87 for the defaults); a linear
    read-out of separate lags cannot beat chance by much, a conjunction can.
    """
    rng = random.Random(seed)
    out = bytearray(rng.randrange(symbols) for _ in range(2))
    a, b, c = table
    while len(out) < length:
        out.append((a * out[-2] + b * out[-1] + c) % symbols if rng.random() < p else rng.randrange(symbols))
    return bytes(b + ord("a") for b in out)


def decisive(length: int, gap: int, seed: int = 5) -> tuple[bytes, list[int]]:
    """Sequences ``x m… t y`` whose last byte is fixed by the pair of ``x`` (``gap`` back) and ``t`` (1 back).

    ``x`` is one of ``abcd``, ``t`` one of ``xy``, the ``gap - 2`` middle bytes
    are the same in every sequence, and ``y = "ABCD"[(x + t) mod 4]``: neither
    ``x`` nor ``t`` alone tells ``y`` (a Latin square again), and a count model
    needs order ``gap`` to. Returns the stream and the positions of its
    decisive bytes (each ``y``), where accuracy is measured.
    """
    if gap < 2:
        raise ValueError("the decisive byte must be at least 2 back")
    rng = random.Random(seed)
    middle = bytes(rng.choice(b"QRSTUVW") for _ in range(gap - 2))
    out, ends = bytearray(), []
    while len(out) < length:
        x, tail = rng.randrange(4), rng.randrange(2)
        out += b"abcd"[x : x + 1] + middle + b"xy"[tail : tail + 1]
        ends.append(len(out))
        out.append(b"ABCD"[(x + tail) % 4])
    return bytes(out[:length]), [end for end in ends if end < length]


def ngram_hits(stream: bytes, order: int) -> np.ndarray:
    """Per position, whether an online order-``order`` count model predicted the byte right.

    The model predicts the most frequent successor of the last ``order`` bytes
    seen so far (ties: the byte seen first), then learns the true byte, so it
    is judged on exactly what the agent is judged on. Order 0 is the unigram.
    """
    import numpy as np

    counts: defaultdict[bytes, Counter[int]] = defaultdict(Counter)
    hits = np.zeros(len(stream), bool)
    for m, byte in enumerate(stream):
        if m < order:
            continue
        context = stream[m - order : m]
        seen = counts[context]
        if seen:
            hits[m] = seen.most_common(1)[0][0] == byte
        seen[byte] += 1
    return hits


def rolling(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` positions (fewer at the start)."""
    import numpy as np

    cumulative = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    index = np.arange(1, len(values) + 1)
    start = np.maximum(0, index - window)
    return (cumulative[index] - cumulative[start]) / (index - start)
