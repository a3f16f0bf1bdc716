"""``hera agents``: installed agents, their state, and where they are."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "list installed agents"
EXAMPLE = """\
examples:
  hera agents
  hera agents --user alice
  hera agents --all --json

STATE is built (never run), down (comatose, with dynamic state), up (running;
its pid shown; "up (no pid-file)" when its pid-file was removed while it
runs), broken (the cached file is not a valid instance: the error says why)
or unreadable (you lack the rights to read it).
--all lists every user's cache and the system's that you may read, and says
which it could not. Agents in working directories are not listed."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("agents", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--user", metavar="NAME", help="list another user's agents")
    scope.add_argument("--all", action="store_true", help="list every user's and the system's agents")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def _is_dir(path: Any) -> bool:
    """Whether ``path`` is a directory; PermissionError means there may be one we cannot see."""
    import os
    import stat

    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _caches(ctx: Any) -> tuple[list[tuple[str, Any]], list[str]]:
    """The caches to list, as (owner, store), and the owners whose cache we may not look into."""
    import pwd

    from hera.commands import target
    from hera.errors import HeraError
    from hera.cache.paths import user_cache_dir
    from hera.cache.store import Store

    where = target.locations(ctx)
    me = target.owner()
    mine = (me, target.user_store(ctx))
    if ctx.args.user and ctx.args.user != me:
        directory = user_cache_dir(ctx.args.user)
        try:
            _is_dir(directory)
        except PermissionError:
            raise HeraError(
                f"cannot read {ctx.args.user}'s agents in {directory}: permission denied",
                hint=(f"run it as {ctx.args.user} or " if ctx.args.user != "root" else "run it ")
                + f"as root (sudo hera agents --user {ctx.args.user})",
            ) from None
        return [(ctx.args.user, Store(directory, "user", None))], []
    if not ctx.args.all:
        return [mine], []
    caches, unreadable = [mine], []
    seen = {mine[1].directory}
    for entry in pwd.getpwall():
        directory = user_cache_dir(entry.pw_name, Path(entry.pw_dir))
        if entry.pw_name == me or directory in seen:
            continue
        seen.add(directory)
        try:
            if _is_dir(directory):
                caches.append((entry.pw_name, Store(directory, "user", None)))
        except PermissionError:
            unreadable.append(entry.pw_name)
    try:
        if _is_dir(where.system_dir):
            caches.append(("system", Store(where.system_dir, "system", where.runtime_dir)))
    except PermissionError:
        unreadable.append("system")
    return caches, unreadable


def _live_status(store: Any, agent: Any) -> dict[str, Any]:
    """What an up agent says of itself (running/paused/standby, iteration, rate); quick or nothing."""
    from hera.errors import HeraError
    from hera.manager import AgentManager

    try:
        return dict(AgentManager(store, agent).request("status", timeout=1.0))
    except HeraError:
        return {}


def run(ctx: Any) -> int:
    import os

    from hera.cache import pidfile
    from hera.commands import target
    from hera.errors import HeraError
    from hera.table import emit, human_bytes

    from hera.cache.paths import runtime_dir

    runtime_dir(target.locations(ctx).runtime_dir)  # refused up front if unsafe, even with nothing installed
    titles = pidfile.running_titles()  # one scan for every agent listed
    rows = []
    caches, unreadable = _caches(ctx)
    for owner, store in caches:
        try:
            agents = store.agents()
        except HeraError as exc:
            if not ctx.args.all:
                raise HeraError(
                    f"cannot read {owner}'s agents: {exc.message}",
                    hint=None if owner == target.owner() else f"run it as {owner} or as root",
                ) from None
            unreadable.append(owner)
            continue
        for agent in agents:
            header = agent.header
            live = store.liveness(agent.uuid, titles)
            target.report_stale(ctx, agent, live)
            status: dict[str, Any] = {}
            if header is None:
                state = "unreadable" if not os.access(agent.path, os.R_OK) else "broken"
            elif live.up and store.runtime_dir is None:
                state = "up"  # another user's agent, by its own user's process: its pid-file and socket are theirs
            elif live.up:
                status = _live_status(store, agent) if live.pid_file else {}
                state = status.get("state", "up") if live.pid_file else "up (no pid-file)"
            else:
                state = "down" if header.dynamic else "built"
            rows.append(
                {
                    "uuid": agent.uuid,
                    "callsign": agent.callsign,
                    "owner": owner,
                    "family": header.family.name if header else None,
                    "layout": header.layout if header else None,
                    "state": state,
                    "pid": live.pid,
                    "iteration": status.get("iteration", header.iteration if header else None),
                    "rate": status.get("rate"),
                    "mode": status.get("mode"),
                    "port": status.get("tcp_port"),
                    "device": status.get("device", header.device if header else None),
                    "size": agent.size(),
                    "last_up": header.last_up.isoformat() if header and header.last_up else None,
                    "path": str(agent.path),
                    "error": agent.error,
                }
            )
    if unreadable:
        ctx.err.write(
            f"hera: could not read the agents of {', '.join(unreadable)} (permission denied); "
            f"root can list them: sudo hera agents --all\n"
        )
    if ctx.args.json:
        emit(ctx.out, rows, [], True)
        return 0
    shown = [
        row
        | {
            "uuid": row["uuid"][:8],
            "model": f"{row['family']}/{row['layout']}" if row["family"] else None,
            "size": human_bytes(row["size"]),
            "last_up": row["last_up"].replace("+00:00", "Z") if row["last_up"] else None,
        }
        for row in rows
    ]
    columns = [("uuid", "UUID"), ("callsign", "CALLSIGN")]
    if ctx.args.all or ctx.args.user:
        columns.append(("owner", "OWNER"))
    columns += [
        ("model", "FAMILY/LAYOUT"),
        ("state", "STATE"),
        ("pid", "PID"),
        ("iteration", "ITERATION"),
        ("rate", "IT/S"),
        ("device", "DEVICE"),
        ("mode", "MODE"),
        ("port", "PORT"),
        ("size", "SIZE"),
        ("last_up", "LAST UP"),
    ]
    if any(row["error"] for row in rows):
        columns.append(("error", "ERROR"))
    emit(ctx.out, shown, columns, False)
    return 0
