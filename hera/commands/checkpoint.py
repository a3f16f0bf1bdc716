"""``hera --uuid X checkpoint``: a running agent writes its complete state to its cached file now.

The agent takes its state off the device between two batches (the only pause)
and writes and verifies it while its loop runs on; the previous good save is
kept beside the cached file as ``<file>.prev`` until the new one is complete.
This command returns once the write is done, so its exit status says whether
the cache holds the state it names.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "make a running agent save its complete state to the cache now, without stopping"
EXAMPLE = """\
examples:
  hera --uuid 3f2a checkpoint
  hera checkpoint                   # the only agent that is up
  hera checkpoint 3f2a9c1e-....json # the agent that file is

Prints the cached file and the iteration saved. A save that cannot be written
(full disk, read-only directory) is one error line; the agent keeps running
and the cached file keeps the previous save."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("checkpoint", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE", help="instance file of the agent")
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target

    manager = target.select_up(ctx, ctx.args.file, verb="checkpoint")
    result = manager.request("checkpoint", timeout=None)
    ctx.out.write(f"checkpoint {manager.callsign} {manager.uuid} at iteration {result['iteration']} -> {result['path']}\n")
    return 0
