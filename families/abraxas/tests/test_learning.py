"""abraxas learns next-byte prediction while it runs, on the example layout, on a CPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from abraxas.streams import SENTENCE, high_order, ngram_hits, repeated


def run_stream(rt: Any, stream: bytes) -> np.ndarray:
    """Feed ``stream``, run until it is all presented, and say per byte whether the output predicted it."""
    ticks = rt.params.ticks_per_byte
    rt.feed(stream)
    rt.step(len(stream) * ticks)
    log = rt.take_decisions()
    log = log[log[:, 2] >= 0]
    assert len(log) == len(stream)
    assert bytes(log[:, 2].astype(np.uint8)) == stream  # every byte was presented, in order
    return log[:, 1] == log[:, 2]


def test_fresh_zero_weight_agent_predicts_at_chance(brain: Callable[..., Any]) -> None:
    rt = brain()
    assert not any(w.any() for name, w in rt.export_state().items() if name.startswith("weights."))
    rt.feed(SENTENCE)
    rt.step(len(SENTENCE) * rt.params.ticks_per_byte)
    log = rt.take_decisions()
    predicted = log[log[:, 1] >= 0, 1]
    # Noise keeps it alive: it does answer, with bytes spread over the whole range ...
    assert len(predicted) >= len(SENTENCE) // 2
    assert len(set(predicted.tolist())) >= len(predicted) // 2
    assert rt.last_spikes["hidden0"] > 0
    # ... and is right no more often than chance (1/256 per guess; allow two lucky hits).
    assert int((log[:, 1] == log[:, 2]).sum()) <= 2


def test_learns_a_repeated_sentence_to_at_least_0_8(brain: Callable[..., Any]) -> None:
    stream = repeated(SENTENCE, 40 * len(SENTENCE))
    hits = run_stream(brain(), stream)
    final = hits[-10 * len(SENTENCE) :].mean()
    bigram = ngram_hits(stream, 1)[-10 * len(SENTENCE) :].mean()
    assert final >= 0.8, final
    assert final > bigram


def test_beats_the_bigram_baseline_on_a_high_order_sequence(brain: Callable[..., Any]) -> None:
    stream = high_order(1600, seed=3)
    hits = run_stream(brain(), stream)
    window = slice(-400, None)
    final, bigram = hits[window].mean(), ngram_hits(stream, 1)[window].mean()
    assert final > bigram + 0.1, (final, bigram)
