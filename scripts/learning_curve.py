#!/usr/bin/env python3
"""abraxas learns while it runs: online next-byte prediction, with baselines, a switch and a down/up.

Usage::

    python scripts/learning_curve.py [--layout example] [--out learning_curve.png] [--json]

A fresh (zero-weight) agent is fed a stream one byte per ``ticks_per_byte``
iterations and its output sheet predicts each byte before it arrives. Two
streams, each to its own fresh agent:

* ``sentence``: ``the quick brown fox jumps over the lazy dog. `` repeated.
  Halfway, the agent is downed (its state exported and written to an instance
  file) and upped again from that file; a twin that never stopped runs beside
  it, and the two curves must be identical.
* ``high_order``: sequences whose last byte depends on the byte three back
  (``aQRb`` / ``cQRd``, …); then the source switches to new sequences, and the
  script reports how many bytes accuracy takes to recover (continual learning).

Beside the agent, online unigram, bigram and order-3 count models are scored
on the same stream. The PNG shows rolling top-1 accuracy and bits per byte
against iterations; ``--json`` prints the figures: for each stream, the
``fresh`` phase (the first window) and the ``learned`` phase (the last window
before any switch), each with ``final_accuracy``, ``baseline_accuracy``
(unigram), ``bigram_accuracy`` and ``order3_accuracy``. The fresh phase is
the first 45 bytes (one pass of the sentence), the learned phase the last
225 bytes (five passes) before the switch.

Needs matplotlib for the PNG (``pip install matplotlib``; ``--no-png`` skips it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

WINDOW = 225  # bytes in the rolling window: five passes of the sentence


def init_taichi() -> None:
    try:
        from hera.kernels import init  # type: ignore[attr-defined]
    except ImportError:
        import taichi as ti

        ti.init(arch=ti.cpu, cpu_max_num_threads=1, log_level=ti.WARN)
    else:
        init("cpu", threads=1)


def new_agent(layout: str, seed: int) -> tuple[Any, Any]:
    """A freshly built instance's header and its runtime (as ``hera up`` of a new file would make)."""
    from abraxas import Abraxas

    family = Abraxas()
    params = family.resolve(layout)
    built = family.build(params, seed)
    header = family.new_header(layout, params, seed, callsign="learning-curve", summary=built.summary)
    return header, family.runtime(header, built.arrays, "cpu")


def down_and_up(header: Any, rt: Any, folder: Path) -> Any:
    """Export the whole state to an instance file, and load a new runtime from it."""
    from abraxas import Abraxas
    from hera import instance
    from hera.runtime import dynamic_header

    path = folder / f"{header.uuid}.json"
    instance.save(path, dynamic_header(header, rt), rt.export_state())
    loaded = instance.load(path)
    return Abraxas().runtime(loaded.header, loaded.arrays, "cpu")


def present(rt: Any, stream: bytes) -> np.ndarray:
    """Feed ``stream`` and run until all of it was presented; per byte, whether it was predicted."""
    rt.feed(stream)
    rt.step(len(stream) * rt.params.ticks_per_byte)
    log = rt.take_decisions()
    log = log[log[:, 2] >= 0]
    assert bytes(log[:, 2].astype(np.uint8)) == stream, "the agent skipped or reordered input"
    return log[:, 1] == log[:, 2]


def phase(hits: np.ndarray, baselines: dict[str, np.ndarray], where: slice) -> dict[str, float]:
    return {
        "final_accuracy": round(float(hits[where].mean()), 4),
        "baseline_accuracy": round(float(baselines["unigram"][where].mean()), 4),
        "bigram_accuracy": round(float(baselines["bigram"][where].mean()), 4),
        "order3_accuracy": round(float(baselines["order-3"][where].mean()), 4),
    }


def baselines_for(stream: bytes) -> dict[str, np.ndarray]:
    from abraxas.streams import ngram_hits

    return {"unigram": ngram_hits(stream, 0), "bigram": ngram_hits(stream, 1), "order-3": ngram_hits(stream, 3)}


def sentence_run(layout: str, seed: int, passes: int) -> dict[str, Any]:
    from abraxas.streams import SENTENCE, repeated

    stream = repeated(SENTENCE, passes * len(SENTENCE))
    half = (passes // 2) * len(SENTENCE) + 7  # mid-sentence, mid-stream
    header, resumed = new_agent(layout, seed)
    _, twin = new_agent(layout, seed)
    with tempfile.TemporaryDirectory() as folder:
        first = present(resumed, stream[:half])
        resumed = down_and_up(header, resumed, Path(folder))
    second = present(resumed, stream[half:])
    hits = np.concatenate([first, second])
    straight = present(twin, stream)
    return {
        "stream": stream,
        "hits": hits,
        "baselines": baselines_for(stream),
        "marks": {"down/up": half},
        "identical": bool(np.array_equal(hits, straight))
        and all(np.array_equal(a, b) for a, b in zip(resumed.export_state().values(), twin.export_state().values(), strict=True)),
        "ticks": resumed.params.ticks_per_byte,
    }


def high_order_run(layout: str, seed: int, length: int) -> dict[str, Any]:
    from abraxas.streams import SWITCHED_SEQUENCES, high_order, rolling

    before = high_order(length, seed=seed + 1)
    after = high_order(length, seed=seed + 2, sequences=SWITCHED_SEQUENCES)
    _, rt = new_agent(layout, seed)
    hits = np.concatenate([present(rt, before), present(rt, after)])
    stream = before + after
    # Recovery: bytes after the switch until accuracy over the last `span` bytes, all of them
    # after the switch, is back to 90 % of its level before.
    level = hits[length - WINDOW : length].mean()
    span = WINDOW // 3
    curve = rolling(hits[length:], span)[span - 1 :]
    recovered = np.nonzero(curve >= 0.9 * level)[0] + span
    return {
        "stream": stream,
        "hits": hits,
        "baselines": baselines_for(stream),
        "marks": {"switch": length},
        "switch_at": length,
        "recovery_bytes": int(recovered[0]) if len(recovered) else None,
        "level_before_switch": round(float(level), 4),
        "ticks": rt.params.ticks_per_byte,
    }


def plot(runs: dict[str, dict[str, Any]], out: Path, layout: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("learning_curve.py: the PNG needs matplotlib (pip install matplotlib), or pass --no-png")
    from abraxas.streams import bits_per_byte, rolling

    fig, axes = plt.subplots(2, len(runs), figsize=(7 * len(runs), 7), sharex="col", squeeze=False)
    styles = {"unigram": ":", "bigram": "--", "order-3": "-."}
    for column, (name, run) in enumerate(runs.items()):
        x = np.arange(len(run["hits"])) * run["ticks"]
        acc_ax, bpb_ax = axes[0][column], axes[1][column]
        acc_ax.plot(x, rolling(run["hits"], WINDOW), color="C3", lw=2, label="abraxas")
        bpb_ax.plot(x, bits_per_byte(run["hits"], WINDOW), color="C3", lw=2, label="abraxas")
        for base, hits in run["baselines"].items():
            acc_ax.plot(x, rolling(hits, WINDOW), "k", ls=styles[base], lw=1, label=base)
            bpb_ax.plot(x, bits_per_byte(hits, WINDOW), "k", ls=styles[base], lw=1, label=base)
        for label, at in run["marks"].items():
            for ax in (acc_ax, bpb_ax):
                ax.axvline(at * run["ticks"], color="C0", lw=1)
            acc_ax.annotate(label, (at * run["ticks"], 0.02), color="C0", xytext=(4, 0), textcoords="offset points")
        acc_ax.set_title(f"{name.replace('_', '-')} ({layout} layout)")
        acc_ax.set_ylabel(f"top-1 accuracy (rolling {WINDOW} bytes)")
        acc_ax.set_ylim(0, 1.02)
        bpb_ax.set_ylabel("bits per byte")
        bpb_ax.set_xlabel("iteration")
        bpb_ax.set_ylim(0, 8.2)
        acc_ax.legend(loc="lower right", fontsize=8)
        acc_ax.grid(alpha=0.3)
        bpb_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="example")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--passes", type=int, default=60, help="passes of the sentence")
    parser.add_argument("--length", type=int, default=3000, help="bytes of the high-order stream before the switch")
    parser.add_argument("--out", type=Path, default=Path("learning_curve.png"))
    parser.add_argument("--no-png", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    init_taichi()
    started = time.perf_counter()
    runs = {
        "sentence": sentence_run(args.layout, args.seed, args.passes),
        "high_order": high_order_run(args.layout, args.seed, args.length),
    }
    from abraxas.streams import SENTENCE

    first = slice(0, len(SENTENCE))  # the fresh agent: its first pass, before any exposure
    report: dict[str, Any] = {"layout": args.layout, "fresh_bytes": len(SENTENCE), "window_bytes": WINDOW}
    for name, run in runs.items():
        learned_end = run.get("switch_at", len(run["hits"]))
        report[name] = {
            "bytes": len(run["hits"]),
            "fresh": phase(run["hits"], run["baselines"], first),
            "learned": phase(run["hits"], run["baselines"], slice(learned_end - WINDOW, learned_end)),
        }
    report["sentence"]["down_up_curve_identical"] = runs["sentence"]["identical"]
    high = runs["high_order"]
    report["high_order"]["switch"] = {
        "level_before": high["level_before_switch"],
        "recovery_bytes": high["recovery_bytes"],
        "after_recovery": phase(high["hits"], high["baselines"], slice(len(high["hits"]) - WINDOW, None)),
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    if not args.no_png:
        plot(runs, args.out, args.layout)
        report["png"] = str(args.out)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name in runs:
            fresh, learned = report[name]["fresh"], report[name]["learned"]
            print(
                f"{name}: fresh {fresh['final_accuracy']:.3f}, learned {learned['final_accuracy']:.3f} "
                f"(unigram {learned['baseline_accuracy']:.3f}, bigram {learned['bigram_accuracy']:.3f}, "
                f"order-3 {learned['order3_accuracy']:.3f})"
            )
        print(f"down/up mid-stream: curve identical: {runs['sentence']['identical']}")
        print(f"switch of source: recovered to 90% of the level before in {high['recovery_bytes']} bytes")
    return 0 if runs["sentence"]["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
