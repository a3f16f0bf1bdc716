"""``hera pace [AGENT] [PACE]``: how fast an up agent may iterate, shown or set while it runs.

An agent fed nothing iterates as fast as its device allows, a core each, for
ever; a pace bounds that (:mod:`hera.pace`): ``max`` (no limit, the
default), ``N/s`` (iterations per second) or ``Fx`` (a real-time factor,
for families that know their time step). The agent then sleeps between
batches; its iterations are the same, only later. The pace is saved with
the agent, so a down and up keeps it.
"""

from __future__ import annotations

import argparse
from typing import Any

from hera.cli import AGENT_OPTIONS

GLOBALS = AGENT_OPTIONS
HELP = "show or set how fast an up agent may iterate (max, N/s, or a real-time factor Fx)"
EXAMPLE = """\
examples:
  hera pace                      # the pace of the only agent that is up
  hera pace 3f2a 50/s            # at most 50 iterations a second, from now on
  hera --uuid 3f2a pace max      # no limit
  hera pace brisk-otter 1x       # real time (families with a time step: vogels-abbott)

A pace is max, N or N/s, or Fx. Pacing changes only wall-clock time: the agent
computes the same iterations, sleeping between them, and a paced agent leaves
its core idle. It is kept with the agent (saved with every save); set it at
build (hera build --pace) or up (hera up --pace) too."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from hera.commands import report

    parser = sub.add_parser("pace", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument(
        "agent", nargs="?", metavar="AGENT", help="the agent: an instance file, or a UUID, prefix or callsign"
    )
    parser.add_argument(
        "pace", nargs="?", metavar="PACE", help="the pace to keep from now on: max, N/s or Fx (a lone word that is a pace is the pace)"
    )
    report.add_options(parser)
    return parser


def _split(ctx: Any) -> tuple[str | None, str | None]:
    """(agent, pace) from the positionals: ``AGENT PACE``, ``PACE``, ``AGENT`` or nothing.

    A lone word is the pace when ``--uuid``/``--callsign``/``--identifier``
    names the agent, or when it reads as a pace; otherwise it names the agent.
    """
    from hera.commands import target
    from hera.pace import PaceError, parse

    given = [word for word in (ctx.args.agent, ctx.args.pace) if word is not None]
    if len(given) == 2:
        return given[0], given[1]
    if not given:
        return None, None
    if target.identifier(ctx) is not None:
        return None, given[0]
    try:
        parse(given[0])
    except PaceError:
        return given[0], None
    return None, given[0]


def run(ctx: Any) -> int:
    from pathlib import Path

    from hera.commands import report, target
    from hera.errors import UsageError
    from hera.pace import PaceError, parse

    agent, text = _split(ctx)
    manager = target.select_up(ctx, target.positional(ctx, Path(agent) if agent else None), verb="pace")
    status = manager.request("status", timeout=10)
    if text is not None:
        try:
            pace = parse(text)
            pace.rate(status.get("seconds_per_iteration"), status.get("family") or "of this agent")
        except PaceError as exc:
            raise UsageError(str(exc), hint="a pace is max, N/s or Fx; see 'hera pace --help'") from None
        status = manager.request("pace", timeout=10, pace=pace.text)
    facts = {
        "callsign": manager.callsign,
        "uuid": manager.uuid,
        "pace": status["pace"],
        "state": status["state"],
        "iteration": status["iteration"],
        "rate": status["rate"],
    }
    report.done(ctx, f"pace {manager.callsign} {manager.uuid} {status['pace']}", facts)
    return 0
