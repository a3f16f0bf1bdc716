"""``hera down``: stop an up agent and offload its complete state to the cache."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "stop an up agent, saving its complete state to the cache"
EXAMPLE = """\
examples:
  hera down                     # the only agent that is up
  hera down 3f2a9c1e-....json   # the agent that file is
  hera --uuid 3f2a down

The inner loop pauses, the whole state (weights, potentials, traces, spikes
in flight, iteration) is written atomically to the agent's cached file, and
the agent process exits. The next up continues exactly where it stopped."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("down", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE", help="instance file of the agent")
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target

    manager = target.select_up(ctx, ctx.args.file, verb="down")
    result = manager.shutdown()
    ctx.out.write(f"down {manager.callsign} {manager.uuid} at iteration {result['iteration']} -> {result['path']}\n")
    return 0
