"""``hera --uuid X logs``: an agent's log (rotated, in hera's state directory)."""

from __future__ import annotations

import argparse
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument

GLOBALS = AGENT_OPTIONS
HELP = "show an agent's log"
EXAMPLE = """\
examples:
  hera --uuid 3f2a logs
  hera logs brisk-otter -f -n 20"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("logs", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    agent_argument(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    parser.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="how many last lines (default 50)")
    return parser


def run(ctx: Any) -> int:
    import time
    from collections import deque

    from hera.commands import target
    from hera.errors import NotFound
    from hera.manager.files import log_path

    store, agent = target.select(ctx, target.positional(ctx, ctx.args.file), verb="show the log of")
    path = log_path(target.log_dir(ctx, store), agent.uuid)
    if not path.exists():
        raise NotFound(f"agent {agent.callsign} has no log yet ({path})", hint="it is written once the agent goes up")
    handle = open(path, encoding="utf-8", errors="replace")
    try:
        for line in deque(handle, maxlen=max(0, ctx.args.lines)):
            ctx.out.write(line)
        ctx.out.flush()
        if not ctx.args.follow:
            return 0
        while True:
            line = handle.readline()
            if line:
                ctx.out.write(line)
                ctx.out.flush()
                continue
            if _rotated(path, handle):
                # The agent's log rotated (5 MiB, 3 kept): what is left of the old file, then the new one.
                handle.close()
                handle = open(path, encoding="utf-8", errors="replace")
                continue
            time.sleep(0.2)
    except KeyboardInterrupt:
        return 0
    finally:
        handle.close()


def _rotated(path: Any, handle: Any) -> bool:
    """Whether ``path`` now names another file than the one ``handle`` reads."""
    import os

    try:
        return os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False  # between the rename and the new file: look again shortly
