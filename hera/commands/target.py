"""Which store and which agent a command means: shared by every command that takes one.

A file, ``--uuid`` (UUID or prefix), ``--callsign`` or ``--identifier``
(either) names an agent; a file and an identifier together is an error, as
the spec says. With none, the single installed agent is meant, and with
several the user must say which.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hera.cache import identities as ident
from hera.cache.paths import Locations
from hera.cache.store import Agent, Store
from hera.errors import HeraError, NotFound, UsageError

if TYPE_CHECKING:
    from hera.manager import AgentManager


def locations(ctx: Any) -> Locations:
    return Locations.from_settings(ctx.settings())


def user_store(ctx: Any) -> Store:
    where = locations(ctx)
    store = Store(where.cache_dir, "user", where.runtime_dir)
    cluster = ctx.settings().cluster
    if cluster is not None:  # its agents may be up on the cluster's nodes: the store asks there too
        from hera.fleet.cluster import connect, liveness_on

        connect(cluster)  # no Ray, or no cluster: said before any agent is looked up
        store.elsewhere = liveness_on(cluster)
    return store


def log_dir(ctx: Any, store: Store) -> Path:
    """Where an agent's log is: this machine's state directory, or for a cluster agent the shared cache's private corner."""
    if ctx.settings().cluster is not None:
        from hera.fleet.keys import cluster_dir

        return cluster_dir(store, "logs")
    return locations(ctx).state_dir / "logs"


def system_store(ctx: Any) -> Store:
    where = locations(ctx)
    return Store(where.system_dir, "system", where.runtime_dir)


def stores(ctx: Any) -> list[Store]:
    """The user's cache, and the system's where it exists and can be read."""
    found = [user_store(ctx)]
    system = system_store(ctx)
    try:
        if system.directory.is_dir():
            found.append(system)
    except OSError:
        pass  # a system directory we may not even look into holds nothing we could use
    return found


def installed(ctx: Any) -> list[tuple[Store, Agent]]:
    result = []
    for store in stores(ctx):
        try:
            result += [(store, agent) for agent in store.agents()]
        except HeraError:
            if store.scope == "user":
                raise
    return result


def identifier(ctx: Any) -> tuple[str, str] | None:
    """The (kind, text) of the identifier the user gave, if any; two kinds at once is an error."""
    given = [(kind, text) for kind in ("uuid", "identifier", "callsign") if (text := getattr(ctx.args, kind, None)) is not None]
    if len(given) > 1:
        raise UsageError("give one of --uuid, --identifier or --callsign, not several")
    return given[0] if given else None


def select(ctx: Any, file: Path | None = None, *, verb: str) -> tuple[Store, Agent]:
    """The installed agent the command line names."""
    named = identifier(ctx)
    if file is not None and named is not None:
        raise UsageError(f"give a file or --{named[0]}, not both")
    candidates = installed(ctx)
    if file is not None:
        from hera.instance import read_header

        uuid = read_header(file).uuid
        for store, agent in candidates:
            if agent.uuid == uuid:
                return store, agent
        raise NotFound(f"{file} (agent {uuid}) is not installed", hint=f"install it first: hera install {file}")
    if named is not None:
        kind, text = named
        chosen = ident.resolve([agent for _, agent in candidates], text, kind)
        return next((s, a) for s, a in candidates if a is chosen)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NotFound("no agents are installed", hint="'hera install FILE' installs one")
    raise UsageError(
        f"{len(candidates)} agents are installed: say which to {verb}",
        hint="give --uuid PREFIX or --callsign NAME ('hera agents' lists them)",
    )


def owner() -> str:
    """The user this process acts as: its effective uid, not $USER (which sudo -E or setpriv leave behind)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid with no passwd entry (containers)
        return str(os.geteuid())


def report_stale(ctx: Any, agent: Agent, live: Any) -> None:
    """Say that a stale pid-file was found and removed (pidfile.check has removed it)."""
    if live.stale:
        ctx.err.write(f"hera: {agent.callsign} ({agent.uuid[:8]}): removed a stale pid-file: {live.stale}\n")


def select_up(ctx: Any, file: Path | None = None, *, verb: str) -> AgentManager:
    """The up agent the command line names, as its manager; with nothing named, the only one that is up."""
    if file is not None or identifier(ctx) is not None:
        if file is not None and not file.is_absolute():
            file = ctx.workdir / file
        manager = managed(ctx, *select(ctx, file, verb=verb))
        manager.require_up()
        return manager
    up = [m for m in (managed(ctx, s, a) for s, a in installed(ctx)) if m.is_alive()]
    if len(up) == 1:
        return up[0]
    if not up:
        raise NotFound("no agent is up")
    names = ", ".join(m.name for m in up)
    raise UsageError(f"{len(up)} agents are up ({names}): say which to {verb}", hint="give --uuid PREFIX or --callsign NAME")


def manager(ctx: Any, file: Path | None = None, *, verb: str) -> AgentManager:
    """The installed agent the command line names, as its manager (up or not)."""
    return managed(ctx, *select(ctx, file, verb=verb))


def managed(ctx: Any, store: Store, agent: Agent) -> AgentManager:
    """The manager of ``agent``: on this machine, or on the Ray cluster the settings name (docs/cluster.md)."""
    from hera.manager import AgentManager

    where = ctx.settings().cluster
    if where is None:
        return AgentManager(store, agent)
    from hera.fleet.manager import ClusterAgentManager  # only with a cluster: one machine never imports Ray

    return ClusterAgentManager(store, agent, where)


def positional(ctx: Any, file: Path | None) -> Path | None:
    """docker's and systemctl's convention for a positional: a path that exists is a file, anything else an agent.

    ``hera down 3f2a`` and ``hera down scout-ash`` name agents; ``hera down
    a.json`` names the agent that file is. Text that looks like a path (a
    slash, or ``.json``) stays a file, so a mistyped file name is reported as
    a missing file rather than as an unknown agent. An identifier taken from
    the positional goes where ``--identifier`` would (UUID, prefix or callsign).
    """
    if file is None:
        return None
    path = file if file.is_absolute() else ctx.workdir / file
    text = str(file)
    if path.exists() or "/" in text or text.endswith(".json"):
        return path
    named = identifier(ctx)
    if named is not None:
        raise UsageError(f"give the agent once: {text!r} or --{named[0]}, not both")
    ctx.args.identifier = text
    return None
