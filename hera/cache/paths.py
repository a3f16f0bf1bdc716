"""Where hera keeps things, per user and system-wide.

* **cache** (the spec's word): installed agents, one ``<uuid>.json`` each, the
  only copy of a live agent. It lives in the platform's user *data* directory
  (``~/.local/share/hera/agents`` on Linux), never in ``~/.cache``, which
  users and cleaners wipe. Directory 0700, files 0600.
* **system**: agents installed for every user (``/var/lib/hera/agents``).
* **runtime**: pid-files, sockets and locks of running agents, private (0700):
  ``$XDG_RUNTIME_DIR/hera``, or ``/tmp/hera-<uid>`` where that is unset.
  Every command checks it (:func:`runtime_dir`) before it believes anything
  in it: ``/tmp/hera-<uid>`` is a name any local user can take first.
* **state**: logs and shell history (``~/.local/state/hera``).

Each can be moved by settings (``cache_dir``, ``system_dir``, ``runtime_dir``)
or the matching ``HERA_*`` variables.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from hera.errors import HeraError
from hera.ownership import chain_problem, user_name

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


RUNTIME_HINT = (
    "set XDG_RUNTIME_DIR, or runtime_dir in ~/.herarc (HERA_RUNTIME_DIR), to a private directory of your own"
)


def runtime_dir(path: Path, *, create: bool = False) -> Path | None:
    """``path`` if it is a safe runtime directory; None if it does not exist (and ``create`` is false).

    Safe means: a real directory (never a symbolic link, which is never
    followed), owned by the caller, below directories that only root or the
    caller can change. Checked through a file descriptor opened with
    ``O_NOFOLLOW``, so what is checked is what is used: in a sticky ``/tmp``
    no one else can rename or replace a directory of ours once it is checked.
    A directory of the caller's that is open to others is narrowed to 0700
    through that descriptor; nothing else is ever chmodded. Anything else is
    a :class:`HeraError` naming the path and what to do.
    """
    path = Path(os.path.abspath(path))
    _check_ancestors(path)
    if create:
        with _refusing(path):
            # Missing parents are ours to make: every existing one above them was just checked.
            os.makedirs(path.parent, mode=0o700, exist_ok=True)
            try:
                os.mkdir(path, 0o700)  # never follows: an existing link, even dangling, is EEXIST
            except FileExistsError:
                pass
        # A missing parent may have been made by someone else between the check and makedirs
        # (in a sticky /tmp, say): look at the whole chain again now that it exists.
        _check_ancestors(path)
    with _refusing(path):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise HeraError(f"{path} belongs to another user ({user_name(info.st_uid)})", hint=RUNTIME_HINT)
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o700)
    except OSError as exc:
        raise HeraError(f"cannot make {path} private: {exc.strerror or exc}", hint=RUNTIME_HINT) from None
    finally:
        os.close(fd)
    return path


@contextlib.contextmanager
def _refusing(path: Path) -> Iterator[None]:
    """Turn the errors of mkdir/open on the runtime directory into one line; ELOOP means a link was there."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise HeraError(f"{path} is a symbolic link, which hera never follows", hint=RUNTIME_HINT) from None
        if exc.errno == errno.ENOTDIR:
            raise HeraError(f"{path} is not a directory", hint=RUNTIME_HINT) from None
        raise HeraError(f"cannot use {path}: {exc.strerror or exc}", hint=RUNTIME_HINT) from None


def _check_ancestors(path: Path) -> None:
    """Every directory above ``path`` (and every link on the way) must be changeable only by root or us.

    Another user's directory, or one others may write to that is not sticky
    (``/tmp`` is), could swap the runtime directory for theirs after we
    checked it. Parents that do not exist yet will be made below what was
    checked.
    """
    problem = chain_problem(path.parent, missing_ok=True, last_sticky_ok=True)
    if problem is not None:
        raise HeraError(f"{problem}, so {path} cannot be trusted", hint=RUNTIME_HINT)


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


@dataclass(frozen=True)
class RuntimeFiles:
    """The names of one agent's files in a runtime directory."""

    directory: Path
    uuid: str

    @property
    def pid(self) -> Path:
        return self.directory / f"{self.uuid}.pid"

    @property
    def lock(self) -> Path:
        return self.directory / f"{self.uuid}.lock"

    @property
    def socket(self) -> Path:
        return self.directory / f"{self.uuid}.sock"

    @property
    def connection(self) -> Path:
        return self.directory / f"{self.uuid}.connection.json"

    @property
    def status(self) -> Path:
        return self.directory / f"{self.uuid}.status.json"

    def published(self) -> tuple[Path, ...]:
        """What the agent removes when it goes: what others would otherwise believe."""
        return (self.socket, self.connection, self.status)
