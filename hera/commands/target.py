"""Which store and which agent a command means: shared by every command that takes one.

A file, ``--uuid`` (UUID or prefix), ``--callsign`` or ``--identifier``
(either) names an agent; a file and an identifier together is an error, as
the spec says. With none, the single installed agent is meant, and with
several the user must say which.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from hera import ident
from hera.errors import HeraError, NotFound, UsageError
from hera.paths import Locations
from hera.store import Agent, Store


def locations(ctx: Any) -> Locations:
    return Locations.from_settings(ctx.settings())


def user_store(ctx: Any) -> Store:
    where = locations(ctx)
    return Store(where.cache_dir, "user", where.runtime_dir)


def system_store(ctx: Any) -> Store:
    where = locations(ctx)
    return Store(where.system_dir, "system", where.runtime_dir)


def stores(ctx: Any) -> list[Store]:
    """The user's cache, and the system's where it exists and can be read."""
    found = [user_store(ctx)]
    system = system_store(ctx)
    if system.directory.is_dir():
        found.append(system)
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
    given = [(kind, getattr(ctx.args, kind, None)) for kind in ("uuid", "identifier", "callsign")]
    given = [(kind, text) for kind, text in given if text is not None]
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
    return getpass.getuser()
