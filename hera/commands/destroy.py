"""``hera --uuid X destroy``: remove an agent for good."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument

GLOBALS = AGENT_OPTIONS
HELP = "remove an installed agent for good (cannot be undone)"
EXAMPLE = """\
examples:
  hera --uuid 3f2a destroy
  hera destroy brisk-otter --yes

There is no other copy of an agent outside the cache: destroying it cannot
be undone. It is refused while the agent is up. On a terminal you are asked
to type the callsign to confirm, unless --yes; in scripts (no terminal) it
proceeds, as the spec's command line implies."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("destroy", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    agent_argument(parser)
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.errors import HeraError

    store, agent = target.select(ctx, target.positional(ctx, ctx.args.file), verb="destroy")
    target.report_stale(ctx, agent, store.refuse_if_up(agent, "destroy"))
    if not ctx.args.yes and sys.stdin.isatty():
        ctx.err.write(
            f"Destroy agent {agent.callsign} ({agent.uuid})? There is no other copy; this cannot be undone.\n"
            f"Type its callsign to confirm: "
        )
        ctx.err.flush()
        answer = sys.stdin.readline().strip()
        if answer != agent.callsign:
            raise HeraError("not confirmed; nothing was destroyed")
    store.destroy(agent)
    ctx.out.write(f"destroyed {agent.callsign} {agent.uuid}\n")
    return 0
