"""The learning benchmark's figures, issue 11's targets, the Markdown table and the PNG (scripts/learning_curve.py).

Pure reporting: it takes each learner's per-byte score (hit, log2 p) on a
stream and turns it into what docs/abraxas.md shows. Importing it imports
neither Taichi nor matplotlib (the PNG imports matplotlib when drawn).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from learning_sources import ORDERS, bytes_to_reach

#: Bytes in the PNG's rolling window.
WINDOW = 300
#: Bytes in the trailing window of "bytes to 90 %".
SPAN = 100
#: The count models the PNG draws (the table has them all): those that tell the streams apart.
PLOTTED_ORDERS = (1, 2, 3, 6, 8)
#: Points per curve in the PNG, at most.
POINTS = 1500
#: The fraction of the learned accuracy that "reached" means.
REACHED = 0.9


class Refused(Exception):
    """A bad option or a missing tool: one line, no traceback."""


@dataclass
class Stream:
    """A stream to learn: its bytes, where its first source ends (a switch), its decisive bytes if any."""

    name: str
    data: bytes
    learned_end: int  # end of the part scored as "learned" (the switch, or the end)
    marks: dict[str, int] = field(default_factory=dict)
    decisive: np.ndarray | None = None
    distance: np.ndarray | None = None

    @property
    def switch(self) -> int | None:
        return self.marks.get("switch")

    @property
    def quarter(self) -> slice:
        return slice(self.learned_end - self.learned_end // 4, self.learned_end)


@dataclass
class Scored:
    """Per byte: whether the learner predicted it, and log2 of the probability it gave it (None: not given)."""

    hits: np.ndarray
    log2p: np.ndarray | None
    iterations: int = 0  # what stepping the brain cost (none for a count model)
    wall_s: float = 0.0
    cpu_s: float = 0.0


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def figures(stream: Stream, scored: Scored) -> dict[str, Any]:
    """One learner's figures on one stream (see the module's docstring)."""
    quarter = stream.quarter
    accuracy = float(scored.hits[quarter].mean())
    out: dict[str, Any] = {
        "accuracy": rounded(accuracy),
        "bits_per_byte": None if scored.log2p is None else rounded(-scored.log2p[quarter].mean()),
        "bytes_to_90": bytes_to_reach(scored.hits[: stream.learned_end], REACHED * accuracy, SPAN),
    }
    if stream.switch is not None:
        after = scored.hits[stream.switch :]
        out["regain_bytes"] = bytes_to_reach(after, REACHED * accuracy, SPAN)
        out["accuracy_after_switch"] = rounded(after[len(after) - len(after) // 4 :].mean())
    if stream.decisive is not None and stream.distance is not None:
        mask = np.zeros(len(stream.data), bool)
        mask[quarter] = stream.decisive[quarter]
        out["decisive_accuracy"] = rounded(scored.hits[mask].mean()) if mask.any() else None
        out["decisive_by_distance"] = {
            str(gap): rounded(scored.hits[mask & (stream.distance == gap)].mean())
            for gap in sorted(set(stream.distance[mask].tolist()))
        }
    return out


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's targets, each with what was measured and whether it was met (those this run can judge)."""
    streams = report["streams"]
    found: list[dict[str, Any]] = []

    def figure(stream: str, column: str, key: str) -> float | None:
        """The figure; NaN where it is None (bytes never reached); None where the run did not measure it."""
        figures = streams.get(stream, {}).get("columns", {}).get(column)
        if figures is None or key not in figures:
            return None
        return math.nan if figures[key] is None else float(figures[key])

    def judge(text: str, values: list[float | None], test: Callable[..., bool], shown: str) -> None:
        if any(v is None for v in values):
            return  # not in this run
        if any(math.isnan(v) for v in values if v is not None):
            found.append({"target": text, "measured": "never reached", "met": False})
            return
        found.append({"target": text, "measured": shown.format(*values), "met": bool(test(*values))})

    judge("latin2: abraxas within 0.03 of the order-2 count model",
          [figure("latin2", "abraxas", "accuracy"), figure("latin2", "order-2", "accuracy")],
          lambda a, c: a >= c - 0.03, "{:.3f} vs {:.3f}")
    judge("latin2: depth=0 at least 0.15 lower than abraxas",
          [figure("latin2", "abraxas", "accuracy"), figure("latin2", "depth=0", "accuracy")],
          lambda a, d: a - d >= 0.15, "{:.3f} vs {:.3f}")
    judge("lag-pair: abraxas within 0.03 of the order-8 count model on the decisive byte",
          [figure("lag_pair", "abraxas", "decisive_accuracy"), figure("lag_pair", "order-8", "decisive_accuracy")],
          lambda a, c: a >= c - 0.03, "{:.3f} vs {:.3f}")
    judge("lag-pair: depth=0 at least 0.15 lower than abraxas on the decisive byte",
          [figure("lag_pair", "abraxas", "decisive_accuracy"), figure("lag_pair", "depth=0", "decisive_accuracy")],
          lambda a, d: a - d >= 0.15, "{:.3f} vs {:.3f}")
    judge("sentence: abraxas at least 0.95", [figure("sentence", "abraxas", "accuracy")],
          lambda a: a >= 0.95, "{:.3f}")
    best = max((figure("high_order", f"order-{k}", "accuracy") or 0.0 for k in ORDERS), default=0.0)
    judge("high-order: abraxas within 0.03 of the best count model (its ceiling)",
          [figure("high_order", "abraxas", "accuracy"), best if "high_order" in streams else None],
          lambda a, c: a >= c - 0.03, "{:.3f} vs {:.3f}")
    judge("high-order: 90 % regained after the switch in fewer bytes than first learning took",
          [figure("high_order", "abraxas", "regain_bytes"), figure("high_order", "abraxas", "bytes_to_90")],
          lambda r, f: r < f, "{:.0f} vs {:.0f} bytes")
    return found  # fmt: skip


def cell(value: Any, digits: int) -> str:
    """A figure as the table shows it: n/a for none, a mapping (by distance) as its values joined by slashes."""
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return " / ".join(cell(v, 2) for v in value.values())
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(report: dict[str, Any]) -> str:
    """The Markdown table: one block of rows per stream, the brains and count models side by side."""
    first = next(iter(report["streams"].values()))
    columns = list(first["columns"])
    measures: list[tuple[str, str, int]] = [
        ("accuracy", "accuracy, last quarter", 3),
        ("decisive_accuracy", "decisive byte, last quarter", 3),
        ("decisive_by_distance", "decisive byte 6 / 7 / 8 back", 2),
        ("bits_per_byte", "bits per byte, last quarter", 2),
        ("bytes_to_90", "bytes to 90 %", 0),
        ("regain_bytes", "bytes to regain 90 % after the switch", 0),
        ("accuracy_after_switch", "accuracy after the switch, last quarter", 3),
    ]
    lines = [
        f"| stream | measure | {' | '.join(columns)} |",
        f"| --- | --- |{' --- |' * len(columns)}",
    ]
    for name, entry in report["streams"].items():
        label = f"{name.replace('_', '-')} ({entry['bytes']:,} B)"
        for key, text, digits in measures:
            if key not in entry["columns"][columns[0]]:
                continue
            values = [cell(entry["columns"][c][key], digits) for c in columns]
            if key == "accuracy":
                values[0] = f"**{values[0]}**"
            lines.append(f"| {label} | {text} | {' | '.join(values)} |")
            label = ""
    return "\n".join(lines)


def plot(report: dict[str, Any], scores: dict[str, dict[str, Scored]], streams: list[Stream], out: Path) -> None:
    """One row per stream: rolling accuracy, and rolling log-loss where the brains give it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise Refused("the PNG needs matplotlib (pip install matplotlib); or pass --no-png") from None
    from abraxas.streams import rolling

    brains_log = any(s.log2p is not None for by in scores.values() for n, s in by.items() if not n.startswith("order"))
    kinds: list[tuple[str, Callable[[Scored], np.ndarray | None]]] = [("accuracy", lambda s: s.hits)]
    if brains_log:
        kinds.append(("bits per byte", lambda s: None if s.log2p is None else -s.log2p))
    fig, axes = plt.subplots(len(streams), len(kinds), figsize=(6.5 * len(kinds), 2.6 * len(streams)), squeeze=False)
    colours = {"abraxas": "C3", "depth=0": "C0", "hidden_rate=0": "C2"}
    greys = {order: str(0.8 - 0.7 * i / max(1, len(PLOTTED_ORDERS) - 1)) for i, order in enumerate(PLOTTED_ORDERS)}
    for row, stream in enumerate(streams):
        mask = stream.decisive
        window = WINDOW // 3 if mask is not None else WINDOW  # a decisive byte is about one in eight
        where = np.arange(len(stream.data)) if mask is None else np.flatnonzero(mask)
        for column, (kind, value_of) in enumerate(kinds):
            ax = axes[row][column]
            for name, scored in scores[stream.name].items():
                values = value_of(scored)
                order = int(name.split("-")[1]) if name.startswith("order-") else None
                if values is None or (order is not None and order not in PLOTTED_ORDERS):
                    continue
                every = max(1, len(where) // POINTS)  # a rolling mean changes little from one byte to the next
                x, y = where[::every], rolling(values[where].astype(np.float64), window)[::every]
                if order is not None:
                    ax.plot(x, y, color=greys[order], lw=0.7, label=name)
                else:
                    full = name == "abraxas"  # drawn over its ablations, which may coincide with it
                    ax.plot(x, y, color=colours.get(name, "C4"), lw=1.8 if full else 1.2, zorder=3 if full else 2,
                            label=name)  # fmt: skip
            for label, at in stream.marks.items():
                ax.axvline(at, color="C0", lw=0.8, ls=":")
                ax.annotate(label, (at, 0.03), xycoords=("data", "axes fraction"), color="C0", xytext=(3, 0),
                            textcoords="offset points", fontsize=7)  # fmt: skip
            what = f"rolling {window} decisive bytes" if mask is not None else f"rolling {window} bytes"
            ax.set_title(f"{stream.name.replace('_', '-')}: {kind} ({what})", fontsize=9)
            ax.set_ylim(*((0, 1.02) if kind == "accuracy" else (0, 8.2)))
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("byte", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7, frameon=False)
    fig.suptitle(
        f"abraxas {report['kernel']['abraxas_version']}, {report['layout']} layout, seed {report['seed']}, "
        f"{report['arch']}\n{report['date']}; {report['machine']}",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=80)
    plt.close(fig)
