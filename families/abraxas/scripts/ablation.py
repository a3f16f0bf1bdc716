#!/usr/bin/env python3
"""What the hidden sheets buy: abraxas against its ablations and the count models, one stream at a time.

Usage: ``python families/abraxas/scripts/ablation.py [--layout example] [--length 8000] [--json]
[--streams latin,decisive6,decisive7,decisive8,sentence,high_order]``.

For each stream a fresh brain of the layout (seed 7), the same with
``hidden.depth=0`` and with ``plasticity.hidden_rate=0``, is fed the stream
once; the table gives each one's accuracy over the last quarter (on the
decisive bytes only, for the decisive streams), its log-loss in bits per byte
from the decision log (``-log2 p`` under the output's softmax), and the online
count model of the order that tells the stream. One CPU thread, Taichi
started by hera (:func:`hera.kernels.init`) as an agent starts it; a few
seconds per brain on the example layout. ``scripts/learning_curve.py`` is the
benchmark with curves; this is the model's check, kept beside it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from abraxas import Abraxas, AbraxasParams
from abraxas.runtime import AbraxasRuntime
from abraxas.streams import SENTENCE, decisive, high_order, latin_order2, ngram_hits, repeated
from hera.kernels import init

ABLATIONS: dict[str, dict[str, Any]] = {
    "abraxas": {},
    "hidden.depth=0": {"hidden": {"depth": 0}},
    "hidden_rate=0": {"plasticity": {"hidden_rate": 0.0}},
}


def stream_of(name: str, length: int) -> tuple[bytes, list[int] | None, int]:
    """The stream, the positions scored (None: every position of the last quarter), the count model's order."""
    if name == "latin":
        return latin_order2(length), None, 2
    if name.startswith("decisive"):
        gap = int(name.removeprefix("decisive"))
        stream, ends = decisive(length, gap)
        return stream, ends, gap
    if name == "sentence":
        return repeated(SENTENCE, length), None, 2
    if name == "high_order":
        return high_order(length, seed=8), None, 3
    raise SystemExit(f"ablation.py: no stream {name!r}")


def run(layout: str, overrides: dict[str, Any], stream: bytes) -> np.ndarray:
    """The decision log of a fresh brain fed ``stream`` once, on the ticks that presented a byte."""
    family = Abraxas()
    params = family.resolve(layout, [("ablation", overrides)] if overrides else [])
    assert isinstance(params, AbraxasParams)
    built = family.build(params, 7)
    rt = family.runtime(family.new_header(layout, params, 7, callsign="ablation"), built.arrays, "cpu")
    rt.feed(stream)
    assert isinstance(rt, AbraxasRuntime)
    rt.step(len(stream) * params.ticks_per_byte)
    log = rt.take_decisions()
    return log[log[:, 2] >= 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="example")
    parser.add_argument("--length", type=int, default=8000)
    parser.add_argument("--streams", default="latin,decisive6,decisive7,decisive8,sentence,high_order")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of the table")
    args = parser.parse_args()
    init("cpu", threads=1)
    if not args.json:
        print("| stream | count model (order) | " + " | ".join(ABLATIONS) + " | log-loss, bits/byte |")
        print("| --- " * (3 + len(ABLATIONS)) + "|")
    for name in args.streams.split(","):
        stream, scored, order = stream_of(name, args.length)
        last = np.arange(3 * len(stream) // 4, len(stream))
        where = np.array([m for m in scored if m >= last[0]]) if scored is not None else last
        row: dict[str, Any] = {"stream": name, "bytes": len(stream), "order": order,
                               "count_model": round(float(ngram_hits(stream, order)[where].mean()), 4)}
        for label, overrides in ABLATIONS.items():
            log = run(args.layout, overrides, stream)
            row[label] = round(float((log[where, 1] == log[where, 2]).mean()), 4)
            row[f"{label} bits"] = round(float(-log[last, 3].mean()), 3)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            bits = " / ".join(str(row[f"{label} bits"]) for label in ABLATIONS)
            print(f"| {name} | {row['count_model']} ({order}) | " + " | ".join(str(row[k]) for k in ABLATIONS)
                  + f" | {bits} |", flush=True)


if __name__ == "__main__":
    main()
