"""``hera --uuid X checkpoint``: a running agent writes its complete state to its cached file now.

The agent takes its state off the device between two batches (the only pause)
and writes and verifies it while its loop runs on; the previous good save is
kept beside the cached file as ``<file>.prev`` until the new one is complete.
This command returns once the write is done, so its exit status says whether
the cache holds the state it names.
"""

from __future__ import annotations

import argparse
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument
from hera.commands import report

GLOBALS = AGENT_OPTIONS
HELP = "make a running agent save its complete state to the cache now, without stopping"
EXAMPLE = """\
examples:
  hera --uuid 3f2a checkpoint
  hera checkpoint                   # the only agent that is up
  hera checkpoint 3f2a9c1e-....json # the agent that file is
  hera checkpoint brisk-otter -q    # by callsign; only the exit status

Prints the cached file and the iteration saved; on a terminal the write's
progress is drawn meanwhile (not with --json or -q). A save that cannot be written
(full disk, read-only directory) is one error line; the agent keeps running
and the cached file keeps the previous save."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("checkpoint", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    agent_argument(parser)
    report.add_options(parser)
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.progress import meter

    manager = target.select_up(ctx, target.positional(ctx, ctx.args.file), verb="checkpoint")
    with meter(ctx, manager.callsign) as progress:  # the write drawn on a terminal, as the agent reports it
        result = manager.following(progress, lambda: manager.request("checkpoint", timeout=None))
    facts = {"callsign": manager.callsign, "uuid": manager.uuid, "iteration": result["iteration"], "path": result["path"]}
    line = f"checkpoint {manager.callsign} {manager.uuid} at iteration {result['iteration']} -> {result['path']}"
    report.done(ctx, line, facts)
    return 0
