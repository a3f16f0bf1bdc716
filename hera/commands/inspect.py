"""``hera --uuid X inspect``: everything about one agent or instance file (like ``docker inspect``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "show an agent's header, areas, weight statistics, state and files"
EXAMPLE = """\
examples:
  hera --uuid 3f2a inspect
  hera inspect ./3f2a9c1e-....json --json

Reads and verifies the whole file (every checksum), so it takes as long as
loading the brain. Without FILE it inspects an installed agent."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("inspect", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE", help="an instance file (default: an installed agent)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def statistics(array: Any) -> dict[str, Any]:
    import numpy as np

    row: dict[str, Any] = {"dtype": str(array.dtype), "shape": list(array.shape), "bytes": int(array.nbytes)}
    if array.size and array.dtype.kind in "fiub":
        values = array.astype(np.float64, copy=False)
        row |= {
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "nonzero": float(np.count_nonzero(array) / array.size),
        }
    return row


def run(ctx: Any) -> int:
    import json

    from hera import pidfile
    from hera.commands import target
    from hera.errors import UsageError
    from hera.instance import InstanceFile
    from hera.table import human_bytes

    if ctx.args.file is not None and target.identifier(ctx) is None:
        path = ctx.args.file if ctx.args.file.is_absolute() else ctx.workdir / ctx.args.file
        where, state, pid = "file", None, None
    elif ctx.args.file is not None:
        raise UsageError(f"give a file or --{target.identifier(ctx)[0]}, not both")
    else:
        store, agent = target.select(ctx, verb="inspect")
        path, where = agent.path, f"{store.scope} cache"
        live = pidfile.check(store.runtime_dir, agent.uuid)
        target.report_stale(ctx, agent, live)
        pid = live.pid
        state = ("up" if live.pid_file else "up (no pid-file)") if live.up else ("down" if agent.header and agent.header.dynamic else "built")
    with InstanceFile(path) as opened:
        header = opened.header
        arrays = {name: statistics(opened.array(name)) for name in opened.entries}
    report = {
        "path": str(path),
        "location": where,
        "file_bytes": path.stat().st_size,
        "state": state or ("with dynamic state" if header.dynamic else "dead (no dynamic state)"),
        "pid": pid,
        "header": header.model_dump(mode="json", exclude_none=True),
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
    out.write(f"  file        {path} ({human_bytes(report['file_bytes'])}, {where})\n")
    summary = header.summary
    if "neurons" in summary:
        out.write(f"  neurons     {summary['neurons']:,}   synapses {summary.get('synapses', 0):,}\n")
    for area in summary.get("areas", []):
        out.write(f"  area        {area['name']:<10} {area['width']}x{area['height']}  offset {area['offset']}\n")
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
