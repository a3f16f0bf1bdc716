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

The file is verified (every field and checksum, and its parameters by its
family, which must be installed) and copied into the cache, where it becomes
the agent; the file in the working directory never changes.
The agent gets a callsign unique among your agents (a suffix is added on a
clash). An agent whose UUID is already installed is refused."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("install", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("file", type=Path, metavar="FILE", help="instance file to install")
    parser.add_argument(
        "--as-new", action="store_true", help="install as a new agent: fresh UUID and callsign (a clone; its lineage is kept)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--system", action="store_true", help="install for every user (needs write access to the system directory)")
    where.add_argument("--user", metavar="NAME", help="install into another user's cache (needs root)")
    return parser


def run(ctx: Any) -> int:
    from hera.commands import target
    from hera.errors import HeraError, UsageError
    from hera.store import Store

    named = target.identifier(ctx)
    if named is not None:
        raise UsageError(f"install takes a file, not --{named[0]}")
    args = ctx.args
    where = target.locations(ctx)
    file = args.file if args.file.is_absolute() else ctx.workdir / args.file
    check_params(file, ctx.workdir)
    me = target.owner()
    foreign = None
    if args.system:
        store = Store(where.system_dir, "system", where.runtime_dir)
        if not _writable(store.directory):
            raise HeraError(
                f"installing a system agent needs write access to {store.directory}",
                hint="run it as root (sudo hera install --system FILE), or set system_dir",
            )
        taken = {agent.callsign for _, agent in target.installed(ctx)}
    elif args.user and args.user != me:
        if os.geteuid() != 0:
            raise HeraError(f"installing into {args.user}'s cache needs root", hint="run it with sudo")
        foreign = _Foreign(args.user)
        store = Store(foreign.directory, "user", where.runtime_dir, foreign=True)
        # their callsigns are checked inside the store's lock; ours do not matter to them
        system = target.system_store(ctx)
        try:
            taken = {agent.callsign for agent in system.agents()}
        except HeraError:
            taken = set()
    else:
        store = target.user_store(ctx)
        taken = {agent.callsign for _, agent in target.installed(ctx)}
    try:
        agent = store.install(file, owner=args.user or me, taken=taken, as_new=args.as_new)
    finally:
        if foreign is not None:
            foreign.give_back()
    assert agent.header is not None
    if args.as_new:
        renamed = f" (a clone of {_callsign(file)} {agent.header.lineage[-1][:8]})"
    else:
        renamed = f" (callsign changed from {_callsign(file)})" if _callsign(file) != agent.callsign else ""
    ctx.out.write(f"installed {agent.callsign} {agent.uuid} -> {agent.path}{renamed}\n")
    return 0


def check_params(file: Path, workdir: Path) -> None:
    """Refuse a file whose parameters its family rejects, before it reaches the cache.

    Only ``build`` used to make parameters through the family; a hand-edited
    file (a negative width, an unknown key, an infinite threshold) was
    installed and then crashed ``up`` when it planned. Same check as ``up``'s.
    """
    from hera import family as families
    from hera.errors import HeraError, NotFound
    from hera.instance import read_header
    from hera.plan import validated_params

    header = read_header(file)
    try:
        family = families.get(header.family.name, workdir)
    except NotFound as exc:
        raise HeraError(f"{file}: header.family: {exc.message}", hint=exc.hint) from None
    validated_params(header, family, file)


def _callsign(file: Path) -> str:
    from hera.instance import read_header

    return read_header(file).callsign


def _writable(directory: Path) -> bool:
    probe = directory
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK | os.X_OK)


class _Foreign:
    """Another user's cache, written by root on their behalf and then handed to them.

    Refuses a home that does not exist (hera never creates one) and symbolic
    links below the home (root must not be steered into writing, or handing
    over, a directory elsewhere). The directories root creates on the way, the
    lock file and the agent's file become the user's.
    """

    def __init__(self, user: str) -> None:
        import pwd
        import stat

        from hera.errors import HeraError
        from hera.paths import user_cache_dir, user_home

        home = user_home(user)
        self.entry = pwd.getpwnam(user)
        if not home.is_dir():
            raise HeraError(
                f"{user}'s home {home} does not exist; hera will not create it",
                hint=f"create it first, or install as {user} with a cache_dir of their own",
            )
        self.directory = user_cache_dir(user, home)
        self.created: list[Path] = []
        probe = home
        for part in self.directory.relative_to(home).parts:
            probe = probe / part
            try:
                info = os.lstat(probe)
            except FileNotFoundError:
                self.created.append(probe)
                continue
            if not stat.S_ISDIR(info.st_mode):
                raise HeraError(
                    f"{probe} is not a plain directory (a symbolic link or a file); "
                    f"refusing to install into {user}'s cache through it"
                )

    def give_back(self) -> None:
        """Hand what root wrote in the user's home to the user (never following a link)."""
        paths = [*self.created, self.directory]
        if self.directory.is_dir():
            paths += [p for p in self.directory.iterdir() if p.name == ".lock" or p.suffix == ".json"]
        for path in paths:
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if info.st_uid == 0:
                os.chown(path, self.entry.pw_uid, self.entry.pw_gid, follow_symlinks=False)
