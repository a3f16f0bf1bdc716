"""``hera --uuid X uninstall``: move a downed agent out of the cache into the working directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "move a downed agent from the cache to the working directory"
EXAMPLE = """\
examples:
  hera --uuid 3f2a uninstall
  hera --callsign brisk-otter uninstall -o brisk-otter.json

The agent must be down. Its cached file, with its dynamic state, becomes
./<uuid>.json (or FILE) and leaves the cache; an existing file is never
overwritten. 'hera install' puts it back."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("uninstall", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE", help="instance file of the agent (instead of an identifier)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to put it (default: ./<uuid>.json)")
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.commands.copy import destination_directory, refuse_existing

    store, agent = target.select(ctx, _file(ctx), verb="uninstall")
    target.report_stale(ctx, agent, store.refuse_if_up(agent, "uninstall"))
    name = ctx.args.output if ctx.args.output is not None else Path(f"{agent.uuid}.json")
    shown = name if name.is_absolute() else ctx.workdir / name
    # The destination may be in a shared directory (/tmp, a project's): it is resolved once, as 'copy -o' is,
    # following only links of the caller's or root's, and the file lands relative to the directory so reached.
    with destination_directory(ctx.workdir, name, shown) as directory:
        refuse_existing(directory, name.name, shown)
        store.uninstall(agent, lambda cached: _put(cached, directory, name.name, shown))
    ctx.out.write(f"uninstalled {agent.callsign} {agent.uuid} -> {shown}\n")
    return 0


def _put(cached: Path, directory: int, final: str, shown: Path) -> None:
    """The cached file at ``final`` in ``directory``: hard-linked (one file system), else copied; never over anything.

    A link is atomic and writes no byte; it never follows a link at ``final``
    (linkat fails if anything holds the name). Across file systems, or where
    links are not allowed, ``copy`` writes an O_EXCL temporary in the
    directory and links that to the name.
    """
    import os

    from hera.commands.copy import copy_cached
    from hera.errors import Conflict

    try:
        os.link(cached, final, dst_dir_fd=directory, follow_symlinks=False)
    except FileExistsError:
        raise Conflict(f"{shown} already exists", hint="choose another -o FILE") from None
    except OSError:
        copy_cached(cached, directory, final, shown)  # says in one line why, if it cannot either
        return
    os.fsync(directory)


def _file(ctx: Any) -> Path | None:
    file = ctx.args.file
    return None if file is None else file if file.is_absolute() else ctx.workdir / file
