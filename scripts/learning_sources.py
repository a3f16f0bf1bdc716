"""The learning benchmark's streams, and the online count models every learner on them is judged against.

Used by ``scripts/learning_curve.py`` and its test. Each stream is designed so
that one kind of learner can and another cannot reach its ceiling:

* ``latin2`` (:func:`abraxas.streams.latin_order2`, shared with the family's
  tests): a noisy order-2 Markov source over 8 symbols built on a Latin
  square (``next = (a + 3 b) mod 8`` with probability 0.85, else a uniform
  draw): either byte alone says nothing about the next one, so only a
  conjunction of the byte one back and the byte two back predicts it
  (ceiling 0.85 + 0.15 / 8 ≈ 0.87; the order-2 count model reaches ≈ 0.85).
* ``lag_pair``: sequences ``key, fillers…, cue, decisive`` in which the
  decisive byte is the exclusive-or of the key, 6, 7 or 8 bytes back (one
  family of sequences per distance), and the cue, one byte back. Neither
  byte alone predicts it (each leaves it at 0.5), and the fillers are fixed,
  so only context that reaches back to the key and combines it with the cue
  does: the order-6/7/8 count models reach 0.67/0.83/1.0 on the decisive byte.
  A decisive byte that depended on a far byte alone would prove nothing: a
  linear read-out of delay taps long enough learns that without any hidden
  sheet.
* ``prose``: a paragraph of public-domain English prose repeated: natural
  text, whose next byte often needs many bytes of context.

The count models are the same for every stream: for each order ``k`` a table
of counts per context of the last ``k`` bytes, predicting the most frequent
successor seen so far (ties: the byte seen first) and then learning the true
byte, so they are scored on exactly what the agent is scored on. Their
log-loss is that of additive smoothing: ``p(b) = (count(b) + α) / (n + 256 α)``
with ``α = ALPHA``; a context never seen gives 8 bits.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

#: Additive smoothing of the count models' distribution, per byte value.
ALPHA = 0.02
#: Orders of the count models the benchmark scores (the context lengths, in bytes).
ORDERS = tuple(range(1, 9))

#: The lag-pair stream: per distance, its fixed fillers (distance - 2 bytes between key and cue).
LAG_FILLERS = {6: b"KLMN", 7: b"OPQRS", 8: b"TUVWXY"}
LAG_KEYS = b"ab"
LAG_CUES = b"xy"
LAG_DECISIVE = b"pq"

#: Charles Dickens, A Tale of Two Cities (1859), its opening: public domain.
PROSE = (
    b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    b"foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    b"it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
    b"everything before us, we had nothing before us, we were all going direct to Heaven, we were all going "
    b"direct the other way. "
)


@dataclass(frozen=True)
class LagPairStream:
    """The lag-pair stream's bytes, and where its decisive bytes lie (with the distance each depends on)."""

    data: bytes
    decisive: np.ndarray  # bool, per byte
    distance: np.ndarray  # int, per byte: the key's distance for a decisive byte, else 0


def lag_pair(length: int, seed: int = 5) -> LagPairStream:
    """Sequences ``key + fillers + cue + (key xor cue)``, one family per distance in :data:`LAG_FILLERS`."""
    rng = random.Random(seed)
    out = bytearray()
    decisive: list[int] = []
    distance: list[int] = []
    while len(out) < length:
        gap = rng.choice(sorted(LAG_FILLERS))
        key, cue = rng.randrange(2), rng.randrange(2)
        out += bytes([LAG_KEYS[key]]) + LAG_FILLERS[gap] + bytes([LAG_CUES[cue], LAG_DECISIVE[key ^ cue]])
        decisive.append(len(out) - 1)
        distance.append(gap)
    mask = np.zeros(length, bool)
    gaps = np.zeros(length, np.int64)
    for at, gap in zip(decisive, distance, strict=True):
        if at < length:
            mask[at], gaps[at] = True, gap
    return LagPairStream(bytes(out[:length]), mask, gaps)


def prose(length: int) -> bytes:
    """:data:`PROSE` over and over, cut to ``length`` bytes."""
    return (PROSE * (length // len(PROSE) + 1))[:length]


@dataclass(frozen=True)
class CountModel:
    """One online count model's score on a stream, per byte: a hit, and log2 of the probability of the truth."""

    order: int
    hits: np.ndarray
    log2p: np.ndarray


def count_model(stream: bytes, order: int, alpha: float = ALPHA) -> CountModel:
    """Run an online order-``order`` count model over ``stream`` (predict, then learn each byte).

    Before ``order`` bytes have been seen there is no context: no hit, and a
    uniform guess (log2 p = -8).
    """
    counts: defaultdict[bytes, Counter[int]] = defaultdict(Counter)
    totals: defaultdict[bytes, int] = defaultdict(int)
    hits = np.zeros(len(stream), bool)
    log2p = np.full(len(stream), -8.0)
    for m, byte in enumerate(stream):
        if m < order:
            continue
        context = stream[m - order : m]
        seen, total = counts[context], totals[context]
        if total:
            hits[m] = seen.most_common(1)[0][0] == byte
        log2p[m] = math.log2((seen[byte] + alpha) / (total + 256 * alpha))
        seen[byte] += 1
        totals[context] = total + 1
    return CountModel(order, hits, log2p)


def count_models(stream: bytes, orders: tuple[int, ...] = ORDERS) -> dict[int, CountModel]:
    """:func:`count_model` of every order in ``orders`` on the same bytes."""
    return {order: count_model(stream, order) for order in orders}


def bytes_to_reach(hits: np.ndarray, level: float, span: int) -> int | None:
    """Bytes from the start of ``hits`` until the trailing ``span``-byte accuracy first reaches ``level``.

    The window lies wholly inside ``hits`` (so the answer is at least
    ``span``); None if it never does. Used the same way for first learning and
    for recovery after a switch, so the two are comparable.
    """
    if len(hits) < span or span < 1:
        return None
    cumulative = np.concatenate([[0], np.cumsum(hits, dtype=np.int64)])
    windows = (cumulative[span:] - cumulative[:-span]) / span
    reached = np.flatnonzero(windows >= level - 1e-12)
    return int(reached[0]) + span if len(reached) else None
