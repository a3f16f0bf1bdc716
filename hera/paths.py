"""Where hera keeps things, per user and system-wide.

* **cache** (the spec's word): installed agents, one ``<uuid>.json`` each, the
  only copy of a live agent. It lives in the platform's user *data* directory
  (``~/.local/share/hera/agents`` on Linux), never in ``~/.cache``, which
  users and cleaners wipe. Directory 0700, files 0600.
* **system**: agents installed for every user (``/var/lib/hera/agents``).
* **runtime**: pid-files, sockets and locks of running agents, private (0700):
  ``$XDG_RUNTIME_DIR/hera``, or ``/tmp/hera-<uid>`` where that is unset.
* **state**: logs and shell history (``~/.local/state/hera``).

Each can be moved by settings (``cache_dir``, ``system_dir``, ``runtime_dir``)
or the matching ``HERA_*`` variables.
"""

from __future__ import annotations

import os
import pwd
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from hera.errors import HeraError

APP = "hera"


@dataclass(frozen=True)
class Locations:
    cache_dir: Path
    system_dir: Path
    runtime_dir: Path
    state_dir: Path

    @classmethod
    def from_settings(cls, settings: object) -> Locations:
        cache = getattr(settings, "cache_dir", None)
        system = getattr(settings, "system_dir", None)
        runtime = getattr(settings, "runtime_dir", None)
        return cls(
            cache_dir=Path(cache) if cache else default_cache_dir(),
            system_dir=Path(system) if system else default_system_dir(),
            runtime_dir=Path(runtime) if runtime else default_runtime_dir(),
            state_dir=Path(platformdirs.user_state_dir(APP)),
        )


def default_cache_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP)) / "agents"


def default_system_dir() -> Path:
    """One place for every user: never taken from a user's environment.

    Not platformdirs' site data dir: on Linux that is the first entry of the
    caller's ``XDG_DATA_DIRS`` (``/usr/share/gnome`` on one desktop,
    ``/usr/local/share`` in a service), so two users would see two different
    "system" caches. Installed agents change as they live, so on Linux they
    are variable state: ``/var/lib`` (FHS), like any daemon's.
    """
    if sys.platform == "darwin":
        return Path("/Library/Application Support") / APP / "agents"
    return Path("/var/lib") / APP / "agents"


def default_runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        return Path(base) / APP
    return Path("/tmp") / f"{APP}-{os.getuid()}"


def user_home(user: str) -> Path:
    try:
        return Path(pwd.getpwnam(user).pw_dir)
    except KeyError:
        raise HeraError(f"no user named {user!r} on this host") from None


def user_cache_dir(user: str, home: Path | None = None) -> Path:
    """Another user's cache, at the platform's default place under their home.

    Their settings and ``XDG_DATA_HOME`` cannot be known from here, so this is
    where an unconfigured hera of theirs keeps agents (and where ``install
    --user`` puts them). Our own ``XDG_DATA_HOME`` says nothing about theirs.
    """
    home = user_home(user) if home is None else home
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP / "agents"
    return home / ".local" / "share" / APP / "agents"


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if needed, and refuse one that others could tamper with."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise HeraError(f"cannot create {path}: {exc.strerror or exc}") from None
    if info.st_uid != os.getuid():
        raise HeraError(f"{path} belongs to another user", hint="set runtime_dir or cache_dir to a directory of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            path.chmod(0o700)
        except OSError as exc:
            raise HeraError(f"{path} is open to other users and cannot be made private: {exc.strerror}") from None
    return path
