"""``hera families``: the families this user can build from, and where each came from."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "list installed families"
EXAMPLE = """\
examples:
  hera families
  hera families --json

Families are found as installed packages (entry point group hera.families) and
as family folders cloned into the working directory. A broken family is listed
with its error and does not hide the others."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("families", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def run(ctx: Any) -> int:
    from hera.family import discover
    from hera.table import emit

    rows = []
    for name, entry in sorted(discover(ctx.workdir).items()):
        family = entry.family
        rows.append(
            {
                "name": name,
                "version": family.version if family else None,
                "source": entry.source,
                "layouts": ", ".join(family.layouts) if family else None,
                "description": family.description if family else None,
                "error": entry.error,
            }
        )
    columns = [("name", "NAME"), ("version", "VERSION"), ("source", "SOURCE"), ("layouts", "LAYOUTS")]
    if any(row["error"] for row in rows):
        columns.append(("error", "ERROR"))
    emit(ctx.out, rows, columns, ctx.args.json)
    return 1 if rows and all(row["error"] for row in rows) else 0
