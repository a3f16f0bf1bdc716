"""``plot``: a picture of the attached agent, to look at rather than read.

A spike raster of the next iterations (the agent steps them one at a time,
then runs on if it was running, or stays paused), beside it the learning
curve of an agent whose family predicts its input (accuracy, and log-loss
where the family gives it, over the units presented since up), and a histogram of
each weight array, in one PNG, opened with the desktop's viewer where there
is one. matplotlib is imported only here.

The agent computes what is drawn and the shell receives only that: the
histograms' edges and counts (``histogram``: counted in the agent, in chunks),
and the spikes of a window of neurons, at most ``SPIKE_LIMIT`` of them
(``record``), and the learning curve's points (``learning``: at most a
few hundred). A 10 GB brain plots in a shell of a few dozen MB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hera.errors import HeraError

#: The most spikes the raster asks for (a scatter of more is a black band, and a big reply).
SPIKE_LIMIT = 200_000
#: Bins of each weight histogram.
BINS = 50


def plot_command(session: Any, args: list[str], out: Any, err: Any) -> int:
    from hera import cli

    parser = cli.Parser(prog="plot", description="write (and open) a PNG: spike raster, learning curve and weight histograms")
    parser.add_argument("-n", "--iterations", type=int, default=300, help="iterations to record (default 300)")
    parser.add_argument("-o", "--output", type=Path, help="PNG to write (default ./<callsign>-<iteration>.png)")
    parser.add_argument(
        "--neurons", type=_window, default=(0, None), metavar="FIRST:END",
        help="the raster's neurons, FIRST to END-1 (default: all; either side may be left out)",
    )
    parser.add_argument("--no-open", action="store_true", help="do not open a viewer")
    from hera.shell.session import parse_alias

    parsed = parse_alias(parser, args, err)
    if isinstance(parsed, int):
        return parsed
    try:
        if session.handle is None:
            raise HeraError("no agent is attached", hint="'attach [ID]' first")
        path, beside = write_plot(session.handle, parsed.iterations, parsed.output, parsed.neurons)
    except HeraError as exc:
        err.write(f"hera: {exc.line()}\n")
        return exc.exit_code
    viewer = None if parsed.no_open else _viewer()
    out.write(f"wrote {path}{beside}" + ("" if viewer or parsed.no_open else " (no display to open it on)") + "\n")
    if viewer:
        subprocess.Popen([*viewer, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return 0


def _window(text: str) -> tuple[int, int | None]:
    """``FIRST:END`` (either side may be empty) as a neuron window."""
    import argparse

    first, colon, end = text.partition(":")
    try:
        window = (int(first or 0), int(end) if end else None)
    except ValueError:
        window = (-1, None)
    if not colon or window[0] < 0 or (window[1] is not None and window[1] <= window[0]):
        raise argparse.ArgumentTypeError(f"{text!r} is not a neuron window FIRST:END with 0 <= FIRST < END, e.g. 0:1000")
    return window


def _viewer() -> list[str] | None:
    """The desktop's "open this file" command, where there is a desktop."""
    if sys.platform == "darwin":
        return ["open"]
    if (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and shutil.which("xdg-open"):
        return ["xdg-open"]
    return None


def draw_curve(axis: Any, learning: dict[str, Any]) -> None:
    """The learning curve: accuracy per block of units presented since up, and log-loss on its own axis where given."""
    points = learning["curve"]["points"]
    units = [p["units"] for p in points]
    axis.plot(units, [p["accuracy"] for p in points], color="tab:green", marker="." if len(points) < 40 else None)
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("units presented since up")
    axis.set_ylabel("accuracy", color="tab:green")
    if any(p["log_loss"] is not None for p in points):
        bits = axis.twinx()
        shown = [(u, p["log_loss"]) for u, p in zip(units, points, strict=True) if p["log_loss"] is not None]
        bits.plot(*zip(*shown, strict=True), color="tab:red", linewidth=1)
        bits.set_ylabel("log-loss, bits per unit", color="tab:red")
        bits.set_ylim(bottom=0)
    if not points:
        axis.text(0.5, 0.5, "nothing presented since up", ha="center", va="center", transform=axis.transAxes)
    latest = learning.get("accuracy")
    loss = learning.get("log_loss")
    figures = (
        f"last {learning['units']:,}: accuracy {latest:.3f}, log-loss "
        + (f"{loss:.3g} bits" if loss is not None else "n/a")
        if latest is not None
        else "nothing scored yet"
    )
    axis.set_title(f"learning ({learning['curve']['block']:,} units per point)\n{figures}", fontsize=9)


def write_plot(
    handle: Any, iterations: int, output: Path | None, neurons: tuple[int, int | None] = (0, None)
) -> tuple[Path, str]:
    """Draw the PNG; returns where, and what ``plot`` says of the learning curve (empty where none is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first, last = neurons
    window: dict[str, int] = {"first": first, "limit": SPIKE_LIMIT} | ({"end": last} if last is not None else {})
    status = handle.status()
    was = status["state"]
    curve = None
    try:
        record = handle.client.request("record", timeout=None, n=iterations, **window)
        histograms = handle.client.request("histogram", timeout=None, match="*weight*", bins=BINS)["arrays"]
        if status.get("learning") is not None:  # a family whose output predicts its input: it is scored
            curve = handle.client.request("learning", curve=True)
    finally:
        if was == "running":  # recording pauses; a running agent goes on running
            handle.client.request("run")
    weights = {name: h for name, h in histograms.items() if h["dtype"].startswith("float")}
    end = record["start"] + len(record["spikes"])
    path = output or Path.cwd() / f"{handle.callsign}-{end}.png"
    columns = max(1, len(weights))
    figure = plt.figure(figsize=(max(8, 3 * columns), 8))
    grid = figure.add_gridspec(2, columns)
    if curve is not None:  # the raster, and the learning curve beside it
        top = grid[0, :].subgridspec(1, 2, width_ratios=[2, 1])
        raster = figure.add_subplot(top[0, 0])
        draw_curve(figure.add_subplot(top[0, 1]), curve)
    else:
        raster = figure.add_subplot(grid[0, :])
    xs = [record["start"] + t for t, row in enumerate(record["spikes"]) for _ in row]
    ys = [i for row in record["spikes"] for i in row]
    raster.scatter(xs, ys, s=1, marker="|", color="black")
    raster.ticklabel_format(useOffset=False, style="plain")
    raster.set_xlim(record["start"] - 0.5, end - 0.5)
    raster.set_xlabel("iteration")
    raster.set_ylabel("neuron")
    rate = sum(record["counts"]) / max(1, len(record["counts"]))
    shown = f"neurons {record['first']:,}–{record['end'] - 1:,}, " if first or last is not None else ""
    cut = f", the first {SPIKE_LIMIT:,} drawn" if record["truncated"] else ""
    raster.set_title(
        f"{handle.callsign}: spikes, iterations {record['start']}–{end} ({shown}{rate:.1f} spikes per iteration{cut})"
    )
    for column, (name, h) in enumerate(sorted(weights.items())):
        axis = figure.add_subplot(grid[1, column])
        if h["counts"]:
            axis.stairs(h["counts"], h["edges"], fill=True, color="tab:blue")
            axis.set_yscale("log")
        else:
            empty = "all zero" if h["zeros"] == h["size"] else "no finite non-zero value"
            axis.text(0.5, 0.5, empty, ha="center", va="center", transform=axis.transAxes)
        axis.set_title(f"{name}\n{h['counted']:,} of {h['size']:,} nonzero", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    if curve is None:
        return path, ""
    scored = curve["units_since_up"]
    return path, f" with the learning curve of {scored:,} unit{'s' if scored != 1 else ''} presented since up"
