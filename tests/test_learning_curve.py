"""scripts/learning_curve.py, the learning benchmark of docs/abraxas.md, reports what it says it does.

The script runs as a user runs it (a tiny stream of every kind, every brain,
``--json``); its count models, its "bytes to 90 %" and its streams are checked
against cases worked out by hand, since every figure of the benchmark is
judged against them.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from abraxas.streams import latin_order2, ngram_hits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import learning_sources as sources  # noqa: E402  (scripts/ is not a package)

SCRIPT = ROOT / "scripts" / "learning_curve.py"
STREAMS = {"sentence", "high_order", "latin2", "lag_pair", "prose"}
BRAINS = ["abraxas", "depth=0", "hidden_rate=0"]


def test_json_has_every_stream_brain_and_count_model(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--length", "200", "--no-png", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report["streams"]) == STREAMS
    assert report["brains"] == {"abraxas": [], "depth=0": ["hidden.depth=0"], "hidden_rate=0": ["plasticity.hidden_rate=0"]}
    no_log_loss = report["log_loss"].startswith("n/a")
    for name, entry in report["streams"].items():
        columns = entry["columns"]
        assert list(columns) == BRAINS + [f"order-{k}" for k in range(1, 9)], name
        for column, figures in columns.items():
            assert 0 <= figures["accuracy"] <= 1, (name, column)
            bits = figures["bits_per_byte"]
            if column.startswith("order-") or not no_log_loss:
                assert bits is not None and 0 <= bits < 64, (name, column, bits)
            else:
                assert bits is None, (name, column)  # never a figure made up from accuracy
            assert "bytes_to_90" in figures
            assert ("regain_bytes" in figures) == (name == "high_order")
            assert ("decisive_accuracy" in figures) == (name == "lag_pair")
    assert report["streams"]["sentence"]["down_up_curve_identical"] is True
    assert len(report["targets"]) == 7 and all(isinstance(t["met"], bool) for t in report["targets"])
    # the count models in the report are those of the shared implementation, on the very bytes fed
    latin = latin_order2(200, seed=7)
    quarter = slice(150, 200)
    assert report["streams"]["latin2"]["columns"]["order-2"]["accuracy"] == round(
        float(sources.count_model(latin, 2).hits[quarter].mean()), 4
    )


def test_a_bad_assignment_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--set", "hidden.nope=1", "--no-png"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("learning_curve.py:")]
    assert len(lines) == 1 and "hidden.nope" in lines[0], done.stderr


def test_count_model_by_hand() -> None:
    alpha = sources.ALPHA
    model = sources.count_model(b"abcabcabd", 2)
    # 'ab'->c, 'bc'->a, 'ca'->b unseen; then each seen once and right; then 'ab' (seen c twice) -> d
    assert model.hits.tolist() == [False] * 5 + [True] * 3 + [False]
    unseen = math.log2(alpha / (256 * alpha))
    assert model.log2p[:5].tolist() == [-8.0, -8.0, unseen, unseen, unseen]
    assert math.isclose(model.log2p[5], math.log2((1 + alpha) / (1 + 256 * alpha)))
    assert math.isclose(model.log2p[8], math.log2(alpha / (2 + 256 * alpha)))
    # a tie goes to the byte seen first: after 'a' came b, then c; the next 'a' predicts b
    assert sources.count_model(b"abacab", 1).hits.tolist() == [False, False, False, False, False, True]


def test_count_model_hits_are_the_family_tests_baseline() -> None:
    stream = bytes(random.Random(1).choice(b"abcd") for _ in range(600))
    for order in (1, 2, 3, 5):
        assert np.array_equal(sources.count_model(stream, order).hits, ngram_hits(stream, order)), order


def test_bytes_to_reach_by_hand() -> None:
    hits = np.array([0, 0, 1, 1, 1, 1], bool)
    assert sources.bytes_to_reach(hits, 1.0, 2) == 4  # bytes 2-3 are the first window all right
    assert sources.bytes_to_reach(hits, 0.5, 2) == 3
    assert sources.bytes_to_reach(hits[:2], 0.5, 2) is None


def test_latin2_needs_both_bytes_before() -> None:
    stream = latin_order2(20000, seed=1)
    pairs: defaultdict[tuple[int, int], Counter[int]] = defaultdict(Counter)
    for a, b, c in zip(stream, stream[1:], stream[2:], strict=False):
        pairs[a, b][c] += 1
    # the table's byte follows ~0.85 + 0.15/8 of the time, after every pair
    for counts in pairs.values():
        assert 0.82 < counts.most_common(1)[0][1] / sum(counts.values()) < 0.92
    # either byte alone leaves the next one near uniform
    for lag in (1, 2):
        alone: defaultdict[int, Counter[int]] = defaultdict(Counter)
        for m in range(2, len(stream)):
            alone[stream[m - lag]][stream[m]] += 1
        for counts in alone.values():
            assert counts.most_common(1)[0][1] / sum(counts.values()) < 0.25


def test_lag_pair_decisive_byte_needs_the_far_byte_and_the_last() -> None:
    made = sources.lag_pair(6000, seed=2)
    data = made.data
    at = np.flatnonzero(made.decisive)
    assert set(made.distance[at].tolist()) == {6, 7, 8}
    joint: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    far: defaultdict[int, Counter[int]] = defaultdict(Counter)
    last: defaultdict[int, Counter[int]] = defaultdict(Counter)
    for m in at.tolist():
        key, cue = data[m - int(made.distance[m])], data[m - 1]
        assert key in sources.LAG_KEYS and cue in sources.LAG_CUES
        joint[key, cue].add(data[m])
        far[key][data[m]] += 1
        last[cue][data[m]] += 1
    assert all(len(outcomes) == 1 for outcomes in joint.values()) and len(joint) == 4
    for alone in (far, last):
        for counts in alone.values():
            assert counts.most_common(1)[0][1] / sum(counts.values()) < 0.6
    # so the count models see it only from the order of its distance on
    decisive = made.decisive
    by_order = {k: sources.count_model(data, k).hits[decisive][-300:].mean() for k in (5, 8)}
    assert by_order[5] < 0.65 and by_order[8] > 0.95, by_order
