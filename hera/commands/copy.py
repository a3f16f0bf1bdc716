"""``hera --uuid X copy``: a point-in-time copy of an agent, in the working directory.

The spec: "It is possible to copy the file stored in the local cache, but that
will only be a copy at a specific time, and on the next up the copy and the
original will start to diverge." A copy keeps the agent's UUID; installing or
upping it while the original is installed needs ``--as-new`` (a clone).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "write a point-in-time copy of an agent (running or down) to the working directory"
EXAMPLE = """\
examples:
  hera --uuid 3f2a copy                   # ./<uuid>.<iteration>.json
  hera --callsign brisk-otter copy -o snapshot.json
  hera install snapshot.json --as-new     # a clone: new UUID and callsign, lineage kept

A running agent writes its complete state at the current iteration without
stopping; a down agent's cached file is copied as it is. An existing file is
never overwritten."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("copy", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write it")
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.errors import Conflict

    store, agent = target.select(ctx, verb="copy")
    assert agent.header is not None
    live = store.liveness(agent.uuid)
    iteration = agent.header.iteration
    if live.up:
        with target.connect(store, agent) as client:
            iteration = int(client.request("status")["iteration"])
    output = ctx.args.output or Path(f"{agent.uuid}.{iteration}.json")
    output = (output if output.is_absolute() else ctx.workdir / output).resolve()
    if output.exists():
        raise Conflict(f"{output} already exists", hint="choose another -o FILE")
    if live.up:
        with target.connect(store, agent, timeout=None) as client:
            result = client.request("copy", timeout=None, path=str(output))
        iteration = int(result["iteration"])
    else:
        with store.locked():
            store.copy_out(agent, output)
    ctx.out.write(f"copied {agent.callsign} {agent.uuid} at iteration {iteration} -> {output}\n")
    return 0
