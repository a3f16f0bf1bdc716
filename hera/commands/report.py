"""How an action command reports what it did: a line for people, JSON for scripts, or nothing.

``build``, ``install``, ``up --daemon``, ``down``, ``copy`` and
``checkpoint`` each end with one line (``down scout-ash 3f2a… at iteration
…``); ``--json`` prints the same facts as one JSON object instead, and
``-q``/``--quiet`` prints nothing (the exit status says it all), as
``docker`` and ``podman`` do.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_options(parser: argparse.ArgumentParser) -> None:
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="print what was done as one JSON object")
    how.add_argument("-q", "--quiet", action="store_true", help="print nothing; the exit status says it")


def done(ctx: Any, line: str, facts: dict[str, Any]) -> None:
    """Say what was done, as the command line asked."""
    if getattr(ctx.args, "quiet", False):
        return
    if getattr(ctx.args, "json", False):
        ctx.out.write(json.dumps(facts, default=str) + "\n")
    else:
        ctx.out.write(line + "\n")
    ctx.out.flush()
