"""After a switch of source the brain relearns faster than it first learned: surprise speeds up its read-out.

The output's log-loss is averaged over the last few dozen bytes and the last
thousand (``state.surprise``); where the recent average rises above the
long-run one, the output rule steps further and forgets what it is told
against. Nothing outside the brain says that the source changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from abraxas import Abraxas
from abraxas.streams import SWITCHED_SEQUENCES, high_order
from conftest import header_for, params_for
from hera.runtime import dynamic_header

#: Sequences whose last byte only the byte three back tells, then new sequences of the same kind (the
#: learning benchmark's high-order switch, shorter).
HALF = 1500
SWITCHED = high_order(HALF, seed=8) + high_order(HALF, seed=9, sequences=SWITCHED_SEQUENCES)
#: The trailing window of the learning benchmark (scripts/learning_curve.py), and "reached" as it means it.
SPAN, REACHED = 100, 0.9
PLAIN = {"plasticity": {"surprise": 0.0}}


def bytes_to_reach(hits: np.ndarray, level: float) -> int:
    """Bytes until the trailing ``SPAN``-byte accuracy first reaches ``level`` (as the benchmark counts them)."""
    windows = np.convolve(hits.astype(np.float64), np.ones(SPAN), "valid") / SPAN
    reached = np.flatnonzero(windows >= level - 1e-12)
    return int(reached[0]) + SPAN if len(reached) else len(hits) + 1


def learning_and_relearning(rt: Any) -> tuple[int, int, Any]:
    """Bytes to 90 % of the first source's learned accuracy (its last quarter), then from the switch to the same."""
    rt.feed(SWITCHED)
    rt.step(len(SWITCHED) * rt.params.ticks_per_byte)
    log = rt.take_decisions()
    hits = (log[:, 1] == log[:, 2])[log[:, 2] >= 0]
    learned = hits[3 * HALF // 4 : HALF].mean()
    return bytes_to_reach(hits[:HALF], REACHED * learned), bytes_to_reach(hits[HALF:], REACHED * learned), rt


def test_a_switched_source_is_relearned_in_fewer_bytes_than_it_was_first_learned(brain: Callable[..., Any]) -> None:
    """Measured (seed 7): first learning 219 bytes, relearning 140 (the plain rule: 219 and 301)."""
    first, again, rt = learning_and_relearning(brain())
    plain_first, plain_again, _ = learning_and_relearning(brain(overrides=PLAIN))
    assert again < first, (first, again)
    assert again < plain_again, (again, plain_again)
    assert first == plain_first  # first learning is the plain rule's: the averages fall together
    fast, slow, seen = rt.export_state()["state.surprise"]
    assert 0 < fast < 2 and 0 < slow < 2 and seen == 1000  # bits per byte, recent and long-run; bytes it spans


def test_a_brain_downed_while_surprised_resumes_bit_exactly(brain: Callable[..., Any]) -> None:
    """Its surprise is state: saved and loaded with the rest, so the boost it was giving goes on exactly."""
    split = (HALF + 40) * 4 + 1  # just after the switch, while the recent loss is above the long-run one
    straight = brain()
    straight.feed(SWITCHED[: HALF + 300])
    straight.step((HALF + 300) * 4)
    first = brain()
    first.feed(SWITCHED[: HALF + 300])
    first.step(split)
    fast, slow, _ = first.export_state()["state.surprise"]
    assert fast > slow + 1  # the boost is on at the split
    resumed = Abraxas().runtime(dynamic_header(header_for(params_for()), first), first.export_state(), "cpu")
    resumed.step((HALF + 300) * 4 - split)
    mine, theirs = straight.export_state(), resumed.export_state()
    assert sorted(mine) == sorted(theirs)
    for name in mine:
        assert mine[name].tobytes() == theirs[name].tobytes(), name
