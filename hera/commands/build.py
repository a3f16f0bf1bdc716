"""``hera --family F --layout L build``: a new, dead instance file in the working directory."""

from __future__ import annotations

import argparse
import secrets
import uuid as uuidlib
from pathlib import Path
from typing import Any

from hera.commands import report
from hera.errors import HeraError, UsageError
from hera.pace import argument as pace_argument

GLOBALS = ("family", "layout", "callsign", "seed", "set")
HELP = "build a new instance file from a family and a layout"
EXAMPLE = """\
examples:
  hera --family abraxas --layout example build
  hera --family abraxas --layout small --set hidden.depth=3 build -o brain.json
  hera --family abraxas build --json      # what was built, as JSON

The file holds the structure and initial weights (mostly zero) but no dynamic
state: it is dead until it goes up. It is named <uuid>.json unless -o is given,
and an existing file is never overwritten without --force. On a terminal the
work is drawn as it goes (not with --json or -q)."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("build", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="file to write (default: ./<uuid>.json)")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.add_argument(
        "--pace", type=pace_argument, metavar="PACE", help="how fast it may iterate once up: max, N/s or Fx (see 'hera pace')"
    )
    report.add_options(parser)
    return parser


def run(ctx: Any) -> int:
    from hera import config, family as families
    from hera.destination import destination_directory, refuse_existing, writing
    from hera.instance import save
    from hera.instance.atomic import inside
    from hera.progress import meter

    settings = ctx.settings()
    if settings.family is None:
        installed = ", ".join(sorted(families.discover(ctx.workdir))) or "none"
        raise UsageError("which family? give --family NAME", hint=f"installed: {installed}")
    family = families.get(settings.family, ctx.workdir)
    params = family.resolve(settings.layout, config.param_overrides(family.name, ctx.sources()))
    uuid = str(uuidlib.uuid4())
    seed = settings.seed if settings.seed is not None else secrets.randbits(63)
    name = ctx.args.output if ctx.args.output is not None else Path(f"{uuid}.json")
    path = name if name.is_absolute() else ctx.workdir / name
    if not path.parent.is_dir():  # only for the message: the write below goes by the directory resolved safely
        what = "is not a directory" if path.parent.exists() else "does not exist"
        raise HeraError(f"cannot write {path}: {path.parent} {what}", hint="create the directory or choose another -o FILE")
    # The output may be in a shared directory: resolved once, following only links of the caller's or root's
    # (as 'copy -o'); the file is then written and renamed or linked inside the directory so reached.
    with destination_directory(ctx.workdir, name, path) as directory:
        if not ctx.args.force:
            refuse_existing(directory, name.name, path, hint="choose another -o FILE, or add --force to overwrite it")
        if ctx.args.pace not in (None, "max"):
            _check_pace(ctx.args.pace, family, params)
        # On a terminal: the family's own work (no byte count), then the file's bytes as they are written.
        with meter(ctx, f"{family.name}/{settings.layout}") as progress:
            with progress.phase("build"):
                built = family.build(params, seed)
            header = family.new_header(
                settings.layout, params, seed, uuid=uuid, callsign=settings.callsign, summary=built.summary
            )
            if ctx.args.pace not in (None, "max"):
                header = header.model_copy(update={"pace": ctx.args.pace})
            total = sum(array.nbytes for array in built.arrays.values())
            taken = "choose another -o FILE, or add --force to overwrite it"
            with writing(path, taken), inside(directory) as here, progress.phase("write", total) as phase:
                save(here / name.name, header, built.arrays, overwrite=ctx.args.force, on_bytes=phase)
    facts = {"callsign": header.callsign, "uuid": uuid, "family": family.name, "layout": settings.layout, "path": str(path)}
    report.done(ctx, f"built {header.callsign} {uuid} ({family.name}/{settings.layout}) -> {path}", facts)
    return 0


def _check_pace(text: str, family: Any, params: Any) -> None:
    """A real-time pace on a family without a time step is refused here, not at the first up."""
    from hera.errors import UsageError
    from hera.pace import PaceError, parse

    try:
        parse(text).rate(family.seconds_per_iteration(params), family.name)
    except PaceError as exc:
        raise UsageError(str(exc)) from None
