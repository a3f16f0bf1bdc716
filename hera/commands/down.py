"""``hera down``: stop an up agent and offload its complete state to the cache."""

from __future__ import annotations

import argparse
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument
from hera.commands import report

GLOBALS = AGENT_OPTIONS
HELP = "stop an up agent, saving its complete state to the cache"
EXAMPLE = """\
examples:
  hera down                     # the only agent that is up
  hera down 3f2a                # by UUID prefix (or callsign, or --uuid 3f2a)
  hera down 3f2a9c1e-....json   # the agent that file is
  hera down brisk-otter --json  # what was saved, as JSON

The inner loop pauses, the whole state (weights, potentials, traces, spikes
in flight, iteration) is written atomically to the agent's cached file, and
the agent process exits. The next up continues exactly where it stopped.
On a terminal the save's progress is drawn (not with --json or -q)."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("down", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    agent_argument(parser)
    report.add_options(parser)
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.progress import meter

    manager = target.select_up(ctx, target.positional(ctx, ctx.args.file), verb="down")
    with meter(ctx, manager.callsign) as progress:  # the save drawn on a terminal, as the agent reports it
        result = manager.shutdown(meter=progress)
    facts = {"callsign": manager.callsign, "uuid": manager.uuid, "iteration": result["iteration"], "path": result["path"]}
    report.done(ctx, f"down {manager.callsign} {manager.uuid} at iteration {result['iteration']} -> {result['path']}", facts)
    return 0
