"""A cluster agent's key: made by its owner's controller, kept in the owner's private part of the shared cache.

On one machine the runtime directory's permissions decide who controls an
agent. A cluster agent runs on some node as whatever account runs Ray, so
hera needs its own proof of ownership: every control request to the agent
is signed with a 32-byte key (HMAC-SHA256, the same signed protocol as a
daemon's TCP port) and every real signal its actor sends carries a proof
made with it. The key is made at ``up`` by the controller and kept in
``<cache>/.cluster/keys/<uuid>.key`` (0600 in a 0700 directory), which only
the owner reads, from any machine that mounts the cache. Losing it loses
control of the running agent, not the agent: ``ray`` can still stop it, and
its cached file is as it was at its last save.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from hera.errors import Conflict

if TYPE_CHECKING:
    from hera.cache.store import Store

#: The owner's private corner of a store for its cluster agents: keys and logs. Not a ``.json``: never an agent.
CLUSTER_DIR = ".cluster"


def cluster_dir(store: Store, part: str) -> Path:
    """``<cache>/.cluster/<part>``, made private (0700) if it is not yet."""
    from hera.cache.paths import private_dir

    private_dir(store.directory / CLUSTER_DIR)
    return private_dir(store.directory / CLUSTER_DIR / part)


def key_path(store: Store, uuid: str) -> Path:
    return store.directory / CLUSTER_DIR / "keys" / f"{uuid}.key"


def new_key(store: Store, uuid: str) -> bytes:
    """A fresh key for an agent about to go up, written before its actor exists (a crash never loses one in use)."""
    from hera.manager.files import write_key

    key = secrets.token_bytes(32)
    write_key(cluster_dir(store, "keys") / f"{uuid}.key", key)
    return key


def load_key(store: Store, uuid: str, owner: str | None, name: str) -> bytes:
    """The key of agent ``name``; a :class:`Conflict` naming its owner where this user does not hold it."""
    from hera.commands.target import owner as me
    from hera.manager.files import read_key

    path = key_path(store, uuid)
    if not path.exists():
        whose = f"{owner}'s" if owner and owner != me() else "not upped from this cache"
        raise Conflict(
            f"agent {name} on the cluster is {whose}: only the controller that upped it holds its key ({path})",
            hint="only its owner can control it; 'hera agents --cluster --all' lists every user's agents",
        )
    return read_key(path)


def forget(store: Store, uuid: str) -> None:
    """The key of an agent that went down for good: gone with its actor."""
    key_path(store, uuid).unlink(missing_ok=True)
