"""``hera install FILE``: put an instance into the cache without upping it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

HELP = "install an instance file into the cache (does not up it)"
EXAMPLE = """\
examples:
  hera install 3f2a9c1e-....json
  sudo hera install --system brain.json
  sudo hera install --user alice brain.json

The file is verified (every field and checksum) and copied into the cache,
where it becomes the agent; the file in the working directory never changes.
The agent gets a callsign unique among your agents (a suffix is added on a
clash). An agent whose UUID is already installed is refused."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("install", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("file", type=Path, metavar="FILE", help="instance file to install")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--system", action="store_true", help="install for every user (needs write access to the system directory)")
    where.add_argument("--user", metavar="NAME", help="install into another user's cache (needs root)")
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.errors import HeraError, UsageError
    from hera.paths import user_cache_dir
    from hera.store import Store

    named = target.identifier(ctx)
    if named is not None:
        raise UsageError(f"install takes a file, not --{named[0]}")
    args = ctx.args
    where = target.locations(ctx)
    file = args.file if args.file.is_absolute() else ctx.workdir / args.file
    if args.system:
        store = Store(where.system_dir, "system", where.runtime_dir)
        if not _writable(store.directory):
            raise HeraError(
                f"installing a system agent needs write access to {store.directory}",
                hint="run it as root (sudo hera install --system FILE), or set system_dir",
            )
    elif args.user and args.user != target.owner():
        if os.geteuid() != 0:
            raise HeraError(f"installing into {args.user}'s cache needs root", hint="run it with sudo")
        store = Store(user_cache_dir(args.user), "user", where.runtime_dir, foreign=True)
    else:
        store = target.user_store(ctx)
    taken = {agent.callsign for _, agent in target.installed(ctx)}
    agent = store.install(file, owner=args.user or target.owner(), taken=taken)
    if args.user and args.user != target.owner():
        _give_to(args.user, agent.path)
    assert agent.header is not None
    renamed = f" (callsign changed from {_callsign(file)})" if _callsign(file) != agent.callsign else ""
    ctx.out.write(f"installed {agent.callsign} {agent.uuid} -> {agent.path}{renamed}\n")
    return 0


def _callsign(file: Path) -> str:
    from hera.instance import read_header

    return read_header(file).callsign


def _writable(directory: Path) -> bool:
    probe = directory
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK | os.X_OK)


def _give_to(user: str, path: Path) -> None:
    """Make a file root installed into another user's cache theirs (and its directories)."""
    import pwd

    entry = pwd.getpwnam(user)
    for item in (path.parent.parent.parent, path.parent.parent, path.parent, path):
        if item.exists() and item.is_relative_to(Path(entry.pw_dir)):
            os.chown(item, entry.pw_uid, entry.pw_gid)
