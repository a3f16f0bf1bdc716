"""The cache of installed agents: treated like a database, because it is the only copy.

One directory per scope (a user's, or the system's), one ``<uuid>.json``
instance file per agent, 0600 in a 0700 directory. Every change (install,
uninstall, destroy; later up, grow) runs under the store's lock file, checks
the agent's liveness inside the lock, and changes files only by atomic steps
(write-then-rename, link-then-unlink), so concurrent commands serialise and a
crash at any instant leaves either the old state or the new one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hera.cache import callsigns, pidfile
from hera.errors import Conflict, HeraError, NotFound
from hera.instance import Header, Installation, now, read_header
from hera.instance.atomic import fsync_dir, previous_path

LOCK_TIMEOUT = 60.0


@dataclass
class Agent:
    """An installed agent as the cache sees it: header only, never the arrays."""

    path: Path
    scope: str
    header: Header | None = None
    error: str | None = None  # why the file could not be read, if it could not

    @property
    def uuid(self) -> str:
        return self.header.uuid if self.header else self.path.stem

    @property
    def callsign(self) -> str:
        return self.header.callsign if self.header else "?"

    def size(self) -> int | None:
        try:
            return self.path.stat().st_size
        except OSError:
            return None


class Store:
    """One cache directory (a scope) and the runtime directory of its agents."""

    def __init__(self, directory: Path, scope: str, runtime_dir: Path | None) -> None:
        self.directory = directory
        self.scope = scope
        # The caller's runtime directory; None for another user's cache, whose agents are found by title alone.
        self.runtime_dir = runtime_dir
        self._runtime_safe = False  # checked once: no one else can change a safe directory of ours later
        #: Where agents of this cache may be up besides this machine (a Ray cluster's nodes): asked first by
        #: :meth:`liveness`, so destroy, uninstall, grow and copy never take a file an agent runs from there.
        self.elsewhere: Callable[[str], pidfile.Liveness | None] | None = None

    def path_for(self, uuid: str) -> Path:
        return self.directory / f"{uuid}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock: concurrent changes to this cache run one at a time."""
        from filelock import FileLock, Timeout

        self.ensure()
        lock = FileLock(self.directory / ".lock", mode=0o600)
        try:
            lock.acquire(timeout=LOCK_TIMEOUT)
        except Timeout:
            raise HeraError(f"{self.directory} is busy: another hera command holds its lock") from None
        except PermissionError:
            what = "system agents" if self.scope == "system" else f"the agents in {self.directory}"
            raise HeraError(
                f"changing {what} needs write access to {self.directory}",
                hint="run it as root (sudo hera ...)" if self.scope == "system" else None,
            ) from None
        except OSError as exc:
            raise HeraError(f"cannot lock {self.directory}: {exc.strerror or exc}") from None
        try:
            self._sweep()
            yield
        finally:
            lock.release()

    def _sweep(self) -> None:
        """Remove temporaries that a killed write left (SIGKILL mid-install, mid-grow, mid-save).

        Called with the store's lock held, so no other command is writing
        here; an agent that is up may be saving, so its own are left alone.
        """
        from hera.instance.atomic import TMP_PREFIX

        try:
            names = [entry.name for entry in os.scandir(self.directory) if entry.name.startswith(TMP_PREFIX)]
        except OSError:
            return
        for name in names:
            uuid = name[len(TMP_PREFIX):].split(".", 1)[0]
            if self.liveness(uuid).up:
                continue
            with contextlib.suppress(OSError):
                os.unlink(self.directory / name)

    def ensure(self) -> None:
        """Create the cache (0700) on first use; a user's cache must be private and their own."""
        from hera.cache.paths import private_dir

        if self.scope == "user" or not self.directory.is_dir():
            private_dir(self.directory)

    def agents(self) -> list[Agent]:
        """Every agent in this cache, unreadable files included (with their error)."""
        from hera.instance.atomic import sweep_abandoned

        sweep_abandoned(self.directory)  # what a killed install or grow left, without the store's lock
        # os.scandir, not Path.glob: glob silently yields nothing from a directory it may not read.
        try:
            with os.scandir(self.directory) as entries:
                paths = sorted(
                    Path(e.path) for e in entries if e.name.endswith(".json") and not e.name.startswith(".")
                )
        except (FileNotFoundError, NotADirectoryError):
            return []
        except PermissionError:
            raise HeraError(f"{self.directory}: permission denied") from None
        except OSError as exc:
            raise HeraError(f"{self.directory}: {exc.strerror or exc}") from None
        found = []
        for path in paths:
            agent = Agent(path, self.scope)
            try:
                agent.header = read_header(path, follow=False)  # a cache holds no links: one is planted
            except HeraError as exc:
                agent.error = exc.message
            found.append(agent)
        return found

    def liveness(self, uuid: str, titles: dict[str, list[int]] | None = None) -> pidfile.Liveness:
        """Whether ``uuid`` is up, believing only the processes of those who can run it (see :mod:`hera.cache.pidfile`)."""
        if self.elsewhere is not None:
            found = self.elsewhere(uuid)
            if found is not None and found.up:
                return found
        try:
            owner: int | None = os.lstat(self.path_for(uuid)).st_uid
        except OSError:
            owner = None
        return pidfile.check(self._safe_runtime_dir(), uuid, titles, users=pidfile.believed_users(owner))

    def _safe_runtime_dir(self) -> Path | None:
        """The runtime directory, checked (:func:`hera.cache.paths.runtime_dir`) before anything in it is believed.

        Once: a directory that is ours, below directories only root or we can
        change, stays so (a listing of a thousand agents walked its chain a
        thousand times). Not remembered while it does not exist yet.
        """
        from hera.cache.paths import runtime_dir

        if self.runtime_dir is None or self._runtime_safe:
            return self.runtime_dir
        if runtime_dir(self.runtime_dir) is None:
            return None
        self._runtime_safe = True
        return self.runtime_dir

    @contextlib.contextmanager
    def claimed(self, agent: Agent) -> Iterator[None]:
        """Hold the lock while ``up`` checks that ``agent`` is installed and not up, and claims it.

        destroy and uninstall check and remove under the same lock, so an
        agent is either claimed first (and they refuse: it is up) or removed
        first (and ``up`` refuses): never up with its cached file gone. The
        claim is the agent's pid-file, which ``up`` writes for the process
        it starts before it lets go (:func:`hera.cache.pidfile.names_agent`).
        """
        with self.locked():
            if not agent.path.exists():
                raise NotFound(
                    f"agent {agent.callsign} ({agent.uuid[:8]}) was removed meanwhile by another command",
                    hint="'hera agents' lists what is installed",
                )
            live = self.liveness(agent.uuid)
            if live.up:
                raise Conflict(f"agent {agent.callsign} ({agent.uuid[:8]}) is already up (pid {live.pid})")
            yield

    def refuse_if_up(self, agent: Agent, action: str) -> pidfile.Liveness:
        """The agent's liveness (a stale pid-file already removed); :class:`Conflict` if it is up."""
        live = self.liveness(agent.uuid)
        if live.up and live.pid_file:
            raise Conflict(
                f"agent {agent.callsign} ({agent.uuid[:8]}) is up (pid {live.pid}); cannot {action} it",
                hint=f"down it first: hera --uuid {agent.uuid[:8]} down",
            )
        if live.up:
            raise Conflict(
                f"agent {agent.callsign} ({agent.uuid[:8]}) is still running as pid {live.pid}, "
                f"though its pid-file is gone; cannot {action} it",
                hint=f"stop the process first: kill {live.pid}",
            )
        return live

    @staticmethod
    def prepared(source: Path, *, as_new: bool = False) -> Prepared:
        """The file to install, opened, and its header read from that very descriptor; no cache is touched.

        Only the header is read here (and every array entry's description,
        so the size is known for progress): the arrays are verified as they
        are copied (:meth:`install_verified`), never decoded whole, so
        installing needs a few MiB however large the brain. ``as_new`` makes
        it a clone: a fresh UUID and callsign, the original's UUID appended to
        its lineage. Separate from :meth:`install_verified` so that ``install
        --user`` can open the file as root (who may read it when its user may
        not) and hand the open descriptor, not the path, to the process that
        writes it as that user. The caller closes it (:meth:`Prepared.close`).
        """
        import uuid as uuidlib

        prepared = Prepared.open(source)
        if as_new:
            original = prepared.header
            fresh = str(uuidlib.uuid4())
            prepared.header = original.model_copy(
                update={"uuid": fresh, "callsign": callsigns.suggest(fresh), "lineage": [*original.lineage, original.uuid]}
            )
        return prepared

    def install(
        self, source: Path, *, owner: str, taken: set[str], as_new: bool = False, on_bytes: Callable[[int], None] | None = None
    ) -> Agent:
        """Copy an instance into the cache with its install-time initialisation.

        ``taken`` holds callsigns in use elsewhere (other scopes); a clash gets
        a numeric suffix. An installed UUID is refused, never overwritten or
        shadowed; ``as_new`` installs a clone instead: a fresh UUID and
        callsign, the original's UUID appended to its lineage. ``on_bytes``
        is told every array byte verified and written (progress).
        """
        with self.prepared(source, as_new=as_new) as prepared:
            return self.install_verified(prepared, owner=owner, taken=taken, source=source, on_bytes=on_bytes)

    def install_verified(
        self, prepared: Prepared, *, owner: str, taken: set[str], source: Path, on_bytes: Callable[[int], None] | None = None
    ) -> Agent:
        """Write an instance opened by :meth:`prepared` into this cache (``source`` names it in errors).

        The file is streamed from the open descriptor into a temporary in the
        cache, every array's checksum verified as it passes
        (:func:`hera.instance.transcribe`); a damaged file fails there and
        leaves nothing behind, so the cache only ever gains a verified agent.
        """
        from hera.instance import transcribe

        original = prepared.header
        with self.locked():
            target = self.path_for(original.uuid)
            if target.exists():
                raise Conflict(
                    f"agent {original.uuid} ({original.callsign}) is already installed; {source} is a copy of it",
                    hint=f"install the copy as a new agent with --as-new, or use the installed one: hera --uuid {original.uuid[:8]} up",
                )
            taken = taken | {a.callsign for a in self.agents()}
            header = original.model_copy(
                update={
                    "callsign": callsigns.unique(original.callsign, taken),
                    "installed": Installation(owner=owner, scope=self.scope, installed_at=now()),
                }
            )
            try:
                with prepared.named(source):
                    transcribe(prepared.fd, target, header, mode=0o600, overwrite=False, on_bytes=on_bytes)
            except FileExistsError:
                raise Conflict(f"agent {header.uuid} was installed meanwhile by another command") from None
            except OSError as exc:
                raise HeraError(f"cannot write {target}: {exc.strerror or exc}") from None
        return Agent(target, self.scope, header)

    def uninstall(self, agent: Agent, put: Callable[[Path], None]) -> None:
        """Move the cached file, dynamic state and all, out of the cache.

        ``put`` is given the cached file's path, under the lock and once the
        agent is known to be installed and down, and must leave a complete
        copy where it goes, never over anything (or raise: then the cache keeps
        it). Where that is and how it is reached is the caller's business: the
        destination may be in a directory other users can change, so it is
        resolved once, safely, into a directory descriptor (see
        ``hera.commands.uninstall``), never handed here as a path to walk again.
        Only then is the cached file removed.
        """
        with self.locked():
            if not agent.path.exists():
                raise NotFound(f"agent {agent.uuid} was removed meanwhile by another command")
            self.refuse_if_up(agent, "uninstall")
            put(agent.path)
            os.unlink(agent.path)
            previous_path(agent.path).unlink(missing_ok=True)
            fsync_dir(agent.path.parent)

    def destroy(self, agent: Agent) -> None:
        """Remove an agent for good; refused while it runs."""
        with self.locked():
            if not agent.path.exists():
                raise NotFound(f"agent {agent.uuid} was removed meanwhile by another command")
            self.refuse_if_up(agent, "destroy")
            os.unlink(agent.path)
            previous_path(agent.path).unlink(missing_ok=True)
            fsync_dir(agent.path.parent)


@dataclass
class Prepared:
    """A file opened for install: its descriptor, its header (read through that descriptor) and its arrays' size.

    The header comes from the descriptor that is then copied, never from
    the path again, so a file swapped in meanwhile cannot pair one file's
    header with another's arrays (``install --user``: root opens what the
    user may not read, so what root hands over must be what root read).
    """

    fd: int
    header: Header
    #: The arrays' bytes once decoded (what progress counts).
    nbytes: int

    @classmethod
    def open(cls, source: Path) -> Prepared:
        from hera.instance.format import InstanceFile, open_regular

        fd = open_regular(source)
        try:
            with _naming(source, fd), InstanceFile(fd) as opened:
                return cls(fd, opened.header, opened.nbytes)
        except BaseException:
            os.close(fd)
            raise

    def named(self, source: Path) -> contextlib.AbstractContextManager[None]:
        """Errors of what reads the descriptor name ``source``, the file the user named."""
        return _naming(source, self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Prepared:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _naming(source: Path, fd: int) -> Iterator[None]:
    """Errors about descriptor ``fd`` name ``source``, not what ``/proc`` resolves it to (or its number)."""
    try:
        yield
    except HeraError as exc:
        try:
            seen = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            seen = None
        for name in (seen, f"<descriptor {fd}>"):
            if name and name != str(source):
                exc.message = exc.message.replace(name, str(source))
        exc.args = (exc.line(),)
        raise
