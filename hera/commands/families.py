"""``hera families``: the families this user can build from, and where each came from."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hera.family import FamilyEntry

GLOBALS: tuple[str, ...] = ()
HELP = "list installed families"
EXAMPLE = """\
examples:
  hera families
  hera families --json

Families are found as installed packages (entry point group hera.families) and
as family folders cloned into the working directory. A broken family is listed
with its error and does not hide the others. A folder that another user could
have written (or could change) is not imported: it is listed as not trusted,
and trusted_family_dirs in ~/.herarc can vouch for it."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("families", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def run(ctx: Any) -> int:
    from hera.family import TRUST_HINT, survey
    from hera.table import emit

    ctx.settings()  # a broken ~/.herarc (which also says which folders to trust) is one line here too
    found = survey(ctx.workdir)
    rows = [_row(name, entry) for name, entry in sorted(found.entries.items())]
    refused = [_row(entry.name, entry) for entry in found.untrusted]
    columns = [("name", "NAME"), ("version", "VERSION"), ("source", "SOURCE"), ("layouts", "LAYOUTS")]
    if any(row["error"] for row in rows + refused):
        columns.append(("error", "ERROR"))
    emit(ctx.out, rows + refused, columns, ctx.args.json)
    if refused:
        # One line, on stderr so that the table and --json stay what scripts expect.
        folders = sorted({entry.source.removeprefix("folder ") for entry in found.untrusted})
        ctx.err.write(f"hera: not imported, not trusted: {', '.join(folders)}; {TRUST_HINT}\n")
    return 1 if rows and all(row["error"] for row in rows) else 0


def _row(name: str, entry: FamilyEntry) -> dict[str, Any]:
    """One listing row; ``trusted`` is False for a folder that was not imported."""
    family = entry.family
    return {
        "name": name,
        "version": family.version if family else None,
        "source": entry.source,
        "layouts": ", ".join(family.layouts) if family else None,
        "description": family.description if family else None,
        "error": entry.error,
        "trusted": entry.trusted,
    }
