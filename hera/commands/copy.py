"""``hera --uuid X copy``: a point-in-time copy of an agent, in the working directory.

The spec: "It is possible to copy the file stored in the local cache, but that
will only be a copy at a specific time, and on the next up the copy and the
original will start to diverge." A copy keeps the agent's UUID; installing or
upping it while the original is installed needs ``--as-new`` (a clone).

Where the copy goes is resolved by :mod:`hera.destination`, never through a
link another user could have planted (the working directory may be shared).

A running agent writes the copy into a directory only its owner reaches (its
cache directory, or its runtime directory) under a name it makes: the
``copy`` request carries no path (docs/protocol.md). This command then moves
it into place: a hard link where the two are on one file system, else a copy
of the bytes; the agent's file is removed either way, and one that a killed
``hera copy`` left behind is removed by the next after an hour.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument
from hera.commands import report

GLOBALS = AGENT_OPTIONS
HELP = "write a point-in-time copy of an agent (running or down) to the working directory"
EXAMPLE = """\
examples:
  hera --uuid 3f2a copy                   # ./<uuid>.<iteration>.json
  hera copy brisk-otter --json            # by callsign; what was written, as JSON
  hera --callsign brisk-otter copy -o snapshot.json
  hera install snapshot.json --as-new     # a clone: new UUID and callsign, lineage kept

A running agent writes its complete state at the current iteration without
stopping, and the file is named after the iteration the copy holds; a down
agent's cached file is streamed, every checksum verified on the way (a
damaged one is refused, nothing written). An existing file is
never overwritten, and a symbolic link is never written through; one in a
parent directory is followed only if it is yours (or root's)."""



def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("copy", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    agent_argument(parser)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write it")
    report.add_options(parser)
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.destination import destination_directory, refuse_existing, stream_cached
    from hera.errors import HeraError
    from hera.progress import meter

    manager = target.manager(ctx, target.positional(ctx, ctx.args.file), verb="copy")
    store, agent = manager.store, manager.agent
    if agent.header is None:
        raise HeraError(f"{agent.path}: the agent's cached file cannot be read", hint="'hera agents' shows its state")
    if store.liveness(agent.uuid).up:
        if ctx.args.output is not None:  # refused before the agent writes a whole copy for nothing
            with destination_directory(ctx.workdir, ctx.args.output, _shown(ctx, ctx.args.output)) as directory:
                refuse_existing(directory, ctx.args.output.name, _shown(ctx, ctx.args.output))
        # The copy first, then its name: the agent runs on, so only the copy itself says its iteration.
        result = manager.request("copy", timeout=None)
        iteration = int(result["iteration"])
        with agent_made(store, agent, str(result["path"])) as made:
            shown = _place(ctx, agent, iteration, made)
    else:
        iteration = agent.header.iteration
        name = _name(ctx, agent, iteration)
        shown = _shown(ctx, name)
        with destination_directory(ctx.workdir, name, shown) as directory:
            refuse_existing(directory, name.name, shown)
            with store.locked(), meter(ctx) as progress:
                stream_cached(agent.path, directory, name.name, shown, progress=progress)
    facts = {"callsign": agent.callsign, "uuid": agent.uuid, "iteration": iteration, "path": str(shown)}
    report.done(ctx, f"copied {agent.callsign} {agent.uuid} at iteration {iteration} -> {shown}", facts)
    return 0


def _name(ctx: Any, agent: Any, iteration: int) -> Path:
    """-o FILE, or ``<uuid>.<iteration>.json`` after the iteration the copy holds."""
    return ctx.args.output if ctx.args.output is not None else Path(f"{agent.uuid}.{iteration}.json")


def _shown(ctx: Any, name: Path) -> Path:
    return name if name.is_absolute() else ctx.workdir / name


def _place(ctx: Any, agent: Any, iteration: int, made: tuple[int, str]) -> Path:
    """Move the agent's copy (directory fd, name) to its place in the working directory; where it went."""
    from hera.destination import destination_directory, place, refuse_existing

    name = _name(ctx, agent, iteration)
    shown = _shown(ctx, name)
    with destination_directory(ctx.workdir, name, shown) as directory:
        refuse_existing(directory, name.name, shown)
        place(made[0], made[1], directory, name.name, shown, link=True, mine=True)
    return shown


# -- resolving -o FILE without following another user's links ----------------------------------


# -- the agent's copy, and moving a file into place ---------------------------------------------


#: The copies a running agent writes for this command (see ``hera.agent.runner.handlers.Handlers.op_copy``).
MADE_NAME = r"\.hera-copy\.{uuid}\.\d+\.[0-9a-f]{{8}}"
#: A made copy older than this was left by a ``hera copy`` that was killed: the next one removes it.
STALE_SECONDS = 3600.0


@contextlib.contextmanager
def agent_made(store: Any, agent: Any, path: str) -> Iterator[tuple[int, str]]:
    """The directory and name of the copy the agent made, checked to be one it could have made; removed after.

    It must be in the agent's cache directory or the runtime directory, the
    two places only the owner reaches, under the name the agent gives copies.
    """
    from hera.errors import HeraError

    made = Path(path)
    for where in (agent.path.parent, store.runtime_dir):
        try:
            directory = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        if _same_directory(directory, made.parent) and re.fullmatch(MADE_NAME.format(uuid=re.escape(agent.uuid)), made.name):
            break
        os.close(directory)
    else:
        raise HeraError(f"the agent named {made} as its copy: not a file it could have made; nothing was copied")
    try:
        _sweep_stale(directory, agent.uuid, made.name)
        try:
            yield directory, made.name
        finally:
            with contextlib.suppress(OSError):
                os.unlink(made.name, dir_fd=directory)
    finally:
        os.close(directory)


def _same_directory(fd: int, path: Path) -> bool:
    try:
        one, other = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def _sweep_stale(directory: int, uuid: str, keep: str) -> None:
    """Remove this agent's made copies that a killed ``hera copy`` left behind (never the one in hand)."""
    import time

    pattern = re.compile(MADE_NAME.format(uuid=re.escape(uuid)))
    for name in os.listdir(directory):
        if name == keep or not pattern.fullmatch(name):
            continue
        with contextlib.suppress(OSError):
            if time.time() - os.stat(name, dir_fd=directory, follow_symlinks=False).st_mtime > STALE_SECONDS:
                os.unlink(name, dir_fd=directory)


