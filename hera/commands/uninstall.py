"""``hera --uuid X uninstall``: move a downed agent out of the cache into the working directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument

GLOBALS = AGENT_OPTIONS
HELP = "move a downed agent from the cache to the working directory"
EXAMPLE = """\
examples:
  hera --uuid 3f2a uninstall
  hera uninstall brisk-otter -o brisk-otter.json

The agent must be down. Its cached file, with its dynamic state, becomes
./<uuid>.json (or FILE) and leaves the cache; an existing file is never
overwritten. 'hera install' puts it back."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("uninstall", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    agent_argument(parser)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to put it (default: ./<uuid>.json)")
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.destination import destination_directory, refuse_existing, stream_cached
    from hera.progress import meter

    store, agent = target.select(ctx, target.positional(ctx, ctx.args.file), verb="uninstall")
    target.report_stale(ctx, agent, store.refuse_if_up(agent, "uninstall"))
    name = ctx.args.output if ctx.args.output is not None else Path(f"{agent.uuid}.json")
    shown = name if name.is_absolute() else ctx.workdir / name
    # The destination may be in a shared directory (/tmp, a project's): it is resolved once, as 'copy -o' is,
    # following only links of the caller's or root's, and the file lands relative to the directory so reached.
    with destination_directory(ctx.workdir, name, shown) as directory, meter(ctx) as progress:
        refuse_existing(directory, name.name, shown)
        store.uninstall(
            agent, lambda cached: stream_cached(cached, directory, name.name, shown, link=True, progress=progress, phase="move")
        )
    ctx.out.write(f"uninstalled {agent.callsign} {agent.uuid} -> {shown}\n")
    return 0
