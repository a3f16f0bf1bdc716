"""``plot``: a picture of the attached agent, to look at rather than read.

A spike raster of the next iterations (the agent steps them one at a time,
then runs on if it was running, or stays paused) and a histogram of each
weight array, in one PNG, opened with the desktop's viewer where there is one. matplotlib is imported only here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hera.errors import HeraError


def plot_command(session: Any, args: list[str], out: Any, err: Any) -> int:
    from hera import cli

    parser = cli.Parser(prog="plot", description="write (and open) a PNG: spike raster and weight histograms")
    parser.add_argument("-n", "--iterations", type=int, default=300, help="iterations to record (default 300)")
    parser.add_argument("-o", "--output", type=Path, help="PNG to write (default ./<callsign>-<iteration>.png)")
    parser.add_argument("--no-open", action="store_true", help="do not open a viewer")
    from hera.shell.session import parse_alias

    parsed = parse_alias(parser, args, err)
    if isinstance(parsed, int):
        return parsed
    try:
        if session.handle is None:
            raise HeraError("no agent is attached", hint="'attach [ID]' first")
        path = write_plot(session.handle, parsed.iterations, parsed.output)
    except HeraError as exc:
        err.write(f"hera: {exc.line()}\n")
        return exc.exit_code
    viewer = None if parsed.no_open else _viewer()
    out.write(f"wrote {path}" + ("" if viewer or parsed.no_open else " (no display to open it on)") + "\n")
    if viewer:
        subprocess.Popen([*viewer, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return 0


def _viewer() -> list[str] | None:
    """The desktop's "open this file" command, where there is a desktop."""
    if sys.platform == "darwin":
        return ["open"]
    if (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and shutil.which("xdg-open"):
        return ["xdg-open"]
    return None


def write_plot(handle: Any, iterations: int, output: Path | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    was = handle.status()["state"]
    try:
        record = handle.client.request("record", timeout=None, n=iterations)
        arrays = handle.state.all()
    finally:
        if was == "running":  # recording pauses; a running agent goes on running
            handle.client.request("run")
    weights = {name: a for name, a in arrays.items() if a.dtype.kind == "f" and "weight" in name}
    end = record["start"] + len(record["spikes"])
    path = output or Path.cwd() / f"{handle.callsign}-{end}.png"
    columns = max(1, len(weights))
    figure = plt.figure(figsize=(max(8, 3 * columns), 8))
    grid = figure.add_gridspec(2, columns)
    raster = figure.add_subplot(grid[0, :])
    xs = [record["start"] + t for t, row in enumerate(record["spikes"]) for _ in row]
    ys = [i for row in record["spikes"] for i in row]
    raster.scatter(xs, ys, s=1, marker="|", color="black")
    raster.ticklabel_format(useOffset=False, style="plain")
    raster.set_xlabel("iteration")
    raster.set_ylabel("neuron")
    rate = len(ys) / max(1, len(record["spikes"]))
    raster.set_title(f"{handle.callsign}: spikes, iterations {record['start']}–{end} ({rate:.1f} spikes per iteration)")
    for column, (name, values) in enumerate(sorted(weights.items())):
        axis = figure.add_subplot(grid[1, column])
        flat = np.asarray(values, dtype=np.float64).ravel()
        nonzero = flat[flat != 0]
        axis.hist(nonzero if nonzero.size else flat, bins=50, color="tab:blue")
        axis.set_yscale("log")
        axis.set_title(f"{name}\n{nonzero.size:,} of {flat.size:,} nonzero", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
