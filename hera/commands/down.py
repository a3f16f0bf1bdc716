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

WAIT_EXIT = 60.0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("down", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE", help="instance file of the agent")
    return parser


def run(ctx: Any) -> int:
    import time

    import psutil

    from hera.commands import target

    store, agent = target.select_up(ctx, ctx.args.file, verb="down")
    pid = store.liveness(agent.uuid).pid  # before the down: once it has answered, its pid-file may be gone
    with target.connect(store, agent) as client:
        result = client.request("down", timeout=None)
    deadline = time.monotonic() + WAIT_EXIT
    while pid is not None and psutil.pid_exists(pid) and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    ctx.out.write(f"down {agent.callsign} {agent.uuid} at iteration {result['iteration']} -> {result['path']}\n")
    return 0
