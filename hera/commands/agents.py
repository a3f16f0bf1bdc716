"""``hera agents``: installed agents, their state, and where they are.

An up agent is never asked anything here: each publishes its state,
iteration, rate, mode and terminal holder in its runtime directory
(:class:`hera.manager.files.LiveStatus`), and the listing reads those files,
so it costs the same whether the agents are idle or deep in a long batch.
One process scan serves every agent listed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hera.cache.pidfile import Liveness
    from hera.cache.store import Agent, Store
    from hera.manager.files import LiveStatus

HELP = "list installed agents"
GLOBALS = ("cache_dir", "cluster")
EXAMPLE = """\
examples:
  hera agents
  hera agents --user alice
  hera agents --all --json

STATE is built (never run), down (comatose, with dynamic state), running,
paused or standby (up: what the agent last published of itself; "loading 43 %"
while it comes up, "saving 71 %" while it goes down, "running, saving 71 %"
during a checkpoint; "up" before its first word; "up (no pid-file)" when its
pid-file was removed while it runs),
broken (the cached file is not a valid instance: the error says why) or
unreadable (you lack the rights to read it). MODE: attached (a terminal holds
it), detached, daemon (serving TCP on PORT). ACC: for a family whose output
predicts its input (abraxas), the share of the last 1,000 units fed that it
predicted (--json: "learning", with the log-loss). Listing never waits for
an agent. --all lists every user's cache and the system's that you may read, and says
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
    import stat

    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _caches(ctx: Any) -> tuple[list[tuple[str, Any]], list[str]]:
    """The caches to list, as (owner, store), and the owners whose cache we may not look into."""
    import pwd

    from hera.cache.paths import user_cache_dir
    from hera.cache.store import Store
    from hera.commands import target
    from hera.errors import HeraError

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


def _held_runtime_dir(pid: int, uuid: str) -> Path | None:
    """The runtime directory agent process ``pid`` runs in: where the lock it holds for its whole life lies.

    The agent's own answer, whoever's settings it was started with: its pid-file,
    socket and status file are beside the lock. None where that cannot be
    seen (another user's process, unless we are root) or it holds no lock.
    """
    import psutil

    try:
        held = psutil.Process(pid).open_files()
    except psutil.Error:
        return None
    for handle in held:
        path = Path(handle.path)
        if path.name == f"{uuid}.lock":
            return path.parent
    return None


def _read_theirs(path: Path, uid: int) -> str | None:
    """A small file of user ``uid``'s (no link, regular, nobody else may change it), or None: for root's listing."""
    from hera.manager.files import read_private

    try:
        return read_private(path, owner=uid)
    except (OSError, ValueError):
        return None


def _published(store: Store, agent: Agent, live: Liveness) -> tuple[bool | None, LiveStatus | None]:
    """Whether an up agent's pid-file exists (None: not ours to know), and the status it last published.

    Read from files, never asked: an agent answers requests between batches,
    and a listing must not wait for any. Where the pid-file is not in our
    runtime directory the process itself says where it runs (the lock it
    holds): a user's agent upped with other settings, or, for root, another
    user's agent, whose runtime directory only they and root may enter.
    """
    import psutil

    from hera.cache.paths import RuntimeFiles
    from hera.manager import AgentManager
    from hera.manager.files import LiveStatus

    if live.pid is None:
        return None, None
    if live.pid_file:
        return True, AgentManager(store, agent).live_status(live)
    where = _held_runtime_dir(live.pid, agent.uuid)
    if where is None:
        # Ours were searched and it is not there; another user's runtime directory cannot be found.
        return (False if store.runtime_dir is not None else None), None
    if store.runtime_dir is not None and where == Path(os.path.abspath(store.runtime_dir)):
        return False, None
    try:
        uid = psutil.Process(live.pid).uids().effective
    except psutil.Error:
        return None, None
    files = RuntimeFiles(where, agent.uuid)
    if (_read_theirs(files.pid, uid) or "").split() != [str(live.pid)]:
        return False, None
    text = _read_theirs(files.status, uid)
    status: LiveStatus | None = None
    try:
        status = LiveStatus.model_validate_json(text) if text else None
    except ValueError:
        pass
    if status is not None and (status.pid, status.uuid) != (live.pid, agent.uuid):
        status = None
    return True, status


def _row(owner: str, store: Store, agent: Agent, live: Liveness) -> dict[str, Any]:
    """One agent as the listing shows it: its cached header, and what it last published if it is up."""
    header = agent.header
    status: LiveStatus | None = None
    if header is None:
        state = "unreadable" if not os.access(agent.path, os.R_OK) else "broken"
    elif live.up:
        pid_file, status = _published(store, agent, live)
        # no status yet (it is starting, or an older agent): plain "up" and the cached iteration, never a wait
        state = status.shown if status else ("up (no pid-file)" if pid_file is False else "up")
    else:
        state = "down" if header.dynamic else "built"
    return {
        "uuid": agent.uuid,
        "callsign": agent.callsign,
        "owner": owner,
        "family": header.family.name if header else None,
        "layout": header.layout if header else None,
        "state": state,
        "pid": live.pid,
        "iteration": status.iteration if status else (header.iteration if header else None),
        "rate": status.rate if status else None,
        "mode": status.mode if status else None,
        "holder": status.holder_pid if status else None,
        "port": status.tcp_port if status else None,
        "data_port": status.data_port if status else None,
        "pace": status.pace if status else None,
        "io": status.io if status else None,
        "learning": status.learning if status else None,
        "phase": status.phase if status else None,
        "done": status.done if status else None,
        "total": status.total if status else None,
        "device": status.device if status else (header.device if header else None),
        "size": agent.size(),
        "last_up": header.last_up.isoformat() if header and header.last_up else None,
        "path": str(agent.path),
        "error": agent.error,
    }


def in_words(row: dict[str, Any]) -> dict[str, Any]:
    """What the table shows for a listing row's uuid, family and layout, rate and accuracy (the JSON keeps them whole)."""
    return {
        "uuid": row["uuid"][:8],
        "model": f"{row['family']}/{row['layout']}" if row["family"] else None,
        "rate": round(row["rate"], 1) if row["rate"] is not None else None,
        "accuracy": accuracy(row.get("learning")),
    }


def accuracy(learning: dict[str, Any] | None) -> str | None:
    """ACC: the share of the last units fed that the agent predicted (``0.953``), for a family that predicts.

    Over its rolling window (``learning.units`` of ``learning.window``); None
    (shown ``-``) where nothing is scored: a family whose output does not
    predict its input, or nothing presented since it came up.
    """
    if not isinstance(learning, dict) or not isinstance(learning.get("accuracy"), (int, float)):
        return None
    return f"{learning['accuracy']:.3f}"


def run(ctx: Any) -> int:
    from hera.cache import pidfile
    from hera.cache.paths import runtime_dir
    from hera.commands import target
    from hera.errors import HeraError
    from hera.table import emit, human_bytes

    where = ctx.settings().cluster
    if where is not None:
        from hera.fleet.commands import agents as cluster_agents

        return cluster_agents(ctx, where)
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
            live = store.liveness(agent.uuid, titles)
            target.report_stale(ctx, agent, live)
            rows.append(_row(owner, store, agent, live))
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
        | in_words(row)
        | {
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
        ("accuracy", "ACC"),
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
