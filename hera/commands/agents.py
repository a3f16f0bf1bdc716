"""``hera agents``: installed agents, their state, and where they are."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "list installed agents"
EXAMPLE = """\
examples:
  hera agents
  hera agents --user alice
  hera agents --all --json

STATE is built (never run), down (comatose, with dynamic state), up (running;
its pid shown) or broken (the cached file cannot be read: the error says why).
--all lists every user's cache and the system's that you may read, and says
which it could not. Agents in working directories are not listed."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("agents", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--user", metavar="NAME", help="list another user's agents")
    scope.add_argument("--all", action="store_true", help="list every user's and the system's agents")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def _caches(ctx: Any) -> list[tuple[str, Any]]:
    import pwd

    from hera.commands import target
    from hera.paths import user_cache_dir
    from hera.store import Store

    where = target.locations(ctx)
    if ctx.args.user:
        if ctx.args.user == target.owner():
            return [(ctx.args.user, target.user_store(ctx))]
        return [(ctx.args.user, Store(user_cache_dir(ctx.args.user), "user", where.runtime_dir))]
    if not ctx.args.all:
        return [(target.owner(), target.user_store(ctx))]
    caches = [(target.owner(), target.user_store(ctx))]
    seen = {caches[0][1].directory}
    for entry in pwd.getpwall():
        directory = user_cache_dir(entry.pw_name)
        if directory in seen or not directory.parent.parent.exists():
            continue
        seen.add(directory)
        if directory.exists() or not directory.parent.exists():
            caches.append((entry.pw_name, Store(directory, "user", where.runtime_dir)))
    caches.append(("system", Store(where.system_dir, "system", where.runtime_dir)))
    return caches


def run(ctx: Any) -> int:
    from hera import pidfile
    from hera.errors import HeraError
    from hera.table import emit, human_bytes

    titles = pidfile.running_titles()
    rows = []
    for owner, store in _caches(ctx):
        if not store.directory.exists():
            continue
        try:
            agents = store.agents()
        except HeraError as exc:
            ctx.err.write(f"hera: could not read {owner}'s agents: {exc.message}\n")
            continue
        for agent in agents:
            header = agent.header
            live = pidfile.check(store.runtime_dir, agent.uuid, titles)
            if live.stale:
                ctx.err.write(f"hera: {agent.callsign} ({agent.uuid[:8]}): removed a stale pid-file: {live.stale}\n")
            if header is None:
                state = "broken"
            elif live.up:
                state = "up" if live.pid_file else "up (no pid-file)"
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
                    "iteration": header.iteration if header else None,
                    "device": header.device if header else None,
                    "size": agent.size(),
                    "last_up": header.last_up.isoformat() if header and header.last_up else None,
                    "path": str(agent.path),
                    "error": agent.error,
                }
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
        ("device", "DEVICE"),
        ("size", "SIZE"),
        ("last_up", "LAST UP"),
    ]
    if any(row["error"] for row in rows):
        columns.append(("error", "ERROR"))
    emit(ctx.out, shown, columns, False)
    return 0
