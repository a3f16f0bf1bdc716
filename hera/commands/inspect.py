"""``hera --uuid X inspect``: everything about one agent or instance file (like ``docker inspect``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument

GLOBALS = AGENT_OPTIONS
HELP = "show an agent's header, areas, weight statistics, state, I/O counts, learning and files"
EXAMPLE = """\
examples:
  hera --uuid 3f2a inspect
  hera inspect brisk-otter
  hera inspect ./3f2a9c1e-....json --json

Reads and verifies the whole file (every checksum), so it takes as long as
loading the brain, but piece by piece: a few MiB of memory at a time. A path
that exists is inspected as the file it is (which need not be installed); a
UUID, prefix or callsign, or none, inspects an installed agent's cached file;
for one that is up and predicts its input, "learning" is its rolling accuracy
and log-loss as it last published them (they start again at every up)."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("inspect", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    agent_argument(parser, "what to inspect")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def fill_statistics(value: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    """The statistics of an array that is one value repeated, from the value alone.

    A fill entry may claim more than this machine's memory (a large layout's
    zero weights); describing it must not allocate it.
    """
    import math

    import numpy as np

    count = math.prod(shape)
    row: dict[str, Any] = {"dtype": str(value.dtype), "shape": list(shape), "bytes": count * value.dtype.itemsize}
    if count and value.dtype.kind in "fiub":
        number = float(value.astype(np.float64))
        spread = 0.0 if math.isfinite(number) else math.nan  # as numpy's std of inf or NaN says
        row |= {"min": number, "max": number, "mean": number, "std": spread, "nonzero": float(bool(value))}
    return row


def _describe(opened: Any, name: str, on_bytes: Any = None) -> dict[str, Any]:
    """One array's statistics, verified as its pieces pass; a fill from its one value, never allocated."""
    entry = opened.entries[name]
    if entry.encoding == "fill":
        row = fill_statistics(opened.fill_value(name), entry.shape)
        if on_bytes is not None:
            on_bytes(entry.nbytes)
        return row
    return statistics(entry.dtype, entry.shape, opened.pieces(name, on_bytes=on_bytes))


def statistics(dtype: Any, shape: tuple[int, ...], pieces: Iterable[Any]) -> dict[str, Any]:
    """min, max, mean, std and the share of non-zero elements of an array given as 1-d pieces in its own dtype.

    Why pieces: a brain's array can be larger than this machine's memory,
    and converting it whole to float64 (as this once did) doubled or
    quadrupled it. Each piece is converted on its own (a few MiB of
    float64) and folded into running moments (:class:`Moments`); every piece
    is consumed even where no statistics apply, so the checksum is still
    verified.
    """
    import math

    count = math.prod(shape)
    row: dict[str, Any] = {"dtype": str(dtype), "shape": list(shape), "bytes": count * dtype.itemsize}
    numeric = count > 0 and dtype.kind in "fiub"
    moments = Moments()
    for piece in pieces:
        if numeric:
            moments.add(piece)
    if numeric:
        row |= moments.result()
    return row


class Moments:
    """Count, extremes, mean and sum of squared deviations, folded piece by piece (Chan, Golub and LeVeque).

    The mean and M2 of each piece are computed in float64 on that piece
    alone, then merged: the same figures numpy gives for the whole array in
    float64 (to rounding), with memory for one piece. NaN propagates into
    min, max, mean and std as numpy's would (``np.minimum``, not ``min``).
    """

    def __init__(self) -> None:
        self.count = 0
        self.nonzero = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.low: Any = None
        self.high: Any = None

    def add(self, piece: Any) -> None:
        import numpy as np

        if not piece.size:
            return
        values = piece.astype(np.float64)
        n = int(values.size)
        mean = float(values.mean())
        values -= mean
        m2 = float(np.dot(values, values))
        low, high = piece.min().astype(np.float64), piece.max().astype(np.float64)
        self.low = low if self.low is None else np.minimum(self.low, low)
        self.high = high if self.high is None else np.maximum(self.high, high)
        self.nonzero += int(np.count_nonzero(piece))
        total = self.count + n
        delta = mean - self.mean
        if self.count == 0:
            self.mean, self.m2 = mean, m2
        else:
            self.mean += delta * n / total
            self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def result(self) -> dict[str, float]:
        import math

        std = math.sqrt(self.m2 / self.count)  # NaN stays NaN
        return {
            "min": float(self.low),
            "max": float(self.high),
            "mean": float(self.mean),
            "std": std,
            "nonzero": float(self.nonzero / self.count),
        }


def _count(value: Any) -> str:
    """A count as people read it (``1,536``); anything else a hand-edited summary holds, as written."""
    return f"{value:,}" if type(value) is int else _shown(value)


def _shown(value: Any) -> str:
    """Any JSON value on one short line (summaries are readable text, not checked data)."""
    import json

    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary's neurons, synapses and areas, whatever types a hand edit left in them.

    The summary is the family's description for people: it is not validated
    like the rest of the header, so a wrong type is shown as it is, never a
    traceback.
    """
    lines = []
    if "neurons" in summary:
        lines.append(f"neurons     {_count(summary['neurons'])}   synapses {_count(summary.get('synapses', 0))}")
    areas = summary.get("areas", [])
    for area in areas if isinstance(areas, list) else [areas]:
        if isinstance(area, dict) and {"name", "width", "height", "offset"} <= area.keys():
            name = _shown(area["name"])
            size = f"{_shown(area['width'])}x{_shown(area['height'])}"
            lines.append(f"area        {name:<10} {size}  offset {_shown(area['offset'])}")
        else:
            lines.append(f"area        {_shown(area)}")
    return lines


def saved_io(opened: Any) -> dict[str, Any] | None:
    """The I/O counts an agent saved with its state (``hera.io``, ``hera.records``), or None if it saved none.

    Units ``fed``, ``presented`` and ``answered``; ``pending`` (fed, not yet
    presented: they wait in the saved input queue) and ``unread`` (records
    no controller has read yet) follow from them.
    """
    if "hera.io" not in opened.entries or opened.entries["hera.io"].shape != (3,):
        return None
    fed, presented, answered = (int(v) for v in opened.array("hera.io"))
    records = opened.entries.get("hera.records")
    unread = int(records.shape[0]) if records is not None and len(records.shape) == 2 else 0
    return {"fed": fed, "presented": presented, "pending": fed - presented, "answered": answered, "unread": unread}


def live_learning(store: Any, agent: Any, live: Any) -> dict[str, Any] | None:
    """An up agent's rolling accuracy and log-loss, as it last published them (never asked: no wait).

    These are the agent's runtime figures, not the brain's (they start again
    at every up), so the cached file does not hold them: only an up agent
    has them, and only for a family whose output predicts its input.
    """
    from hera.manager import AgentManager

    if not live.up:
        return None
    status = AgentManager(store, agent).live_status(live)
    return status.learning if status is not None else None


def _figure(value: Any, text: str) -> str:
    return text.format(value) if isinstance(value, (int, float)) else "n/a"


def learning_line(learning: dict[str, Any]) -> str:
    """``accuracy 0.953 over the last 1,000 units (0.871 over 2,400 since up), log-loss 0.41 bits per unit (...)``.

    ``n/a`` where there is no figure: nothing scored yet, or a family that
    gives no probabilities (its log-loss is never made up from accuracy).
    """
    units, since = learning.get("units"), learning.get("units_since_up")
    if not units:
        return "nothing scored since up"
    return (
        f"accuracy {_figure(learning.get('accuracy'), '{:.3f}')} over the last {_count(units)} units "
        f"({_figure(learning.get('accuracy_since_up'), '{:.3f}')} over {_count(since)} since up), "
        f"log-loss {_figure(learning.get('log_loss'), '{:.3g} bits per unit')} "
        f"({_figure(learning.get('log_loss_since_up'), '{:.3g}')} since up)"
    )


def run(ctx: Any) -> int:
    import json

    from hera.commands import target
    from hera.errors import UsageError
    from hera.instance import InstanceFile
    from hera.progress import meter
    from hera.table import human_bytes

    file = target.positional(ctx, ctx.args.file)
    named = target.identifier(ctx)
    learning: dict[str, Any] | None = None
    if file is not None and named is None:
        path = file
        where, state, pid = "file", None, None
    elif file is not None and named is not None:
        raise UsageError(f"give a file or --{named[0]}, not both")
    else:
        store, agent = target.select(ctx, verb="inspect")
        path, where = agent.path, f"{store.scope} cache"
        live = store.liveness(agent.uuid)
        target.report_stale(ctx, agent, live)
        pid = live.pid
        state = ("up" if live.pid_file else "up (no pid-file)") if live.up else ("down" if agent.header and agent.header.dynamic else "built")
        learning = live_learning(store, agent, live)
    with InstanceFile(path) as opened, meter(ctx) as progress, progress.phase("verify", opened.nbytes) as phase:
        header = opened.header
        arrays = {name: _describe(opened, name, phase) for name in opened.entries}
        io = saved_io(opened)
    report: dict[str, Any] = {
        "path": str(path),
        "location": where,
        "file_bytes": path.stat().st_size,
        "state": state or ("with dynamic state" if header.dynamic else "dead (no dynamic state)"),
        "pid": pid,
        "header": header.model_dump(mode="json", exclude_none=True),
        "io": io,
        "learning": learning,
        "arrays": arrays,
    }
    if ctx.args.json:
        ctx.out.write(json.dumps(report, indent=2) + "\n")
        return 0
    out = ctx.out
    out.write(f"{header.callsign}  {header.uuid}\n")
    out.write(f"  family      {header.family.name} {header.family.version}, layout {header.layout}\n")
    out.write(f"  state       {report['state']}" + (f" (pid {pid})" if pid else "") + "\n")
    out.write(f"  iteration   {header.iteration}\n")
    out.write(f"  seed        {header.seed}\n")
    out.write(f"  created     {header.created.isoformat()}\n")
    if header.installed:
        out.write(f"  installed   {header.installed.installed_at.isoformat()} by {header.installed.owner} ({header.installed.scope})\n")
    if header.last_up:
        out.write(f"  last up     {header.last_up.isoformat()} on {header.device}\n")
    if io is not None:
        out.write(
            f"  io          fed {io['fed']:,}, presented {io['presented']:,} ({io['pending']:,} pending), "
            f"answered {io['answered']:,}, unread {io['unread']:,}\n"
        )
    if learning is not None:
        out.write(f"  learning    {learning_line(learning)}\n")
    out.write(f"  file        {path} ({human_bytes(report['file_bytes'])}, {where})\n")
    for line in summary_lines(header.summary):
        out.write(f"  {line}\n")
    out.write("  arrays\n")
    for name, row in arrays.items():
        stats = (
            f"min {row['min']:.4g}  max {row['max']:.4g}  mean {row['mean']:.4g}  std {row['std']:.4g}  nonzero {row['nonzero']:.1%}"
            if "min" in row
            else ""
        )
        shape = "x".join(map(str, row["shape"])) or "scalar"
        out.write(f"    {name:<24} {row['dtype']:<8} {shape:<18} {human_bytes(row['bytes']):>10}  {stats}\n")
    return 0
