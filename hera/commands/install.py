"""``hera install FILE``: put an instance into the cache without upping it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from hera.commands import report

GLOBALS = ("cache_dir",)
HELP = "install an instance file into the cache (does not up it)"
EXAMPLE = """\
examples:
  hera install 3f2a9c1e-....json
  sudo hera install --system brain.json
  sudo hera install --user alice brain.json
  hera install brain.json --json        # what was installed, as JSON

The file is streamed into the cache, where it becomes the agent, every
field and checksum verified as it passes (its parameters by its family,
which must be installed); a few MiB of memory however large the brain. A
damaged file leaves nothing; the file in the working directory never changes.
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
    report.add_options(parser)
    return parser


def run(ctx: Any) -> int:
    from hera.cache.store import Store
    from hera.commands import target
    from hera.errors import HeraError
    from hera.progress import meter

    args = ctx.args
    where = target.locations(ctx)
    file = args.file if args.file.is_absolute() else ctx.workdir / args.file
    check_params(file, ctx.workdir)
    me = target.owner()
    with meter(ctx) as progress:
        if args.system:
            store = Store(where.system_dir, "system", where.runtime_dir)
            if not _writable(store.directory):
                raise HeraError(
                    f"installing a system agent needs write access to {store.directory}",
                    hint="run it as root (sudo hera install --system FILE), or set system_dir",
                )
            taken = {agent.callsign for _, agent in target.installed(ctx)}
            agent = _install(store, file, progress, owner=me, taken=taken, as_new=args.as_new)
        elif args.user and args.user != me:
            if os.geteuid() != 0:
                raise HeraError(f"installing into {args.user}'s cache needs root", hint="run it with sudo")
            # their callsigns are checked inside their store's lock; ours do not matter to them
            try:
                taken = {agent.callsign for agent in target.system_store(ctx).agents()}
            except HeraError:
                taken = set()
            with Store.prepared(file, as_new=args.as_new) as prepared:  # opened by root: they may not read the file
                check_header_params(prepared.header, file, ctx.workdir)  # the very bytes that go in
                with progress.phase("install", prepared.nbytes) as phase:
                    agent = install_as(args.user, prepared, taken=taken, source=file, on_bytes=phase)
        else:
            store = target.user_store(ctx)
            taken = {agent.callsign for _, agent in target.installed(ctx)}
            agent = _install(store, file, progress, owner=args.user or me, taken=taken, as_new=args.as_new)
    assert agent.header is not None
    was = _callsign(file)
    if args.as_new:
        renamed = f" (a clone of {was} {agent.header.lineage[-1][:8]})"
    else:
        renamed = f" (callsign changed from {was})" if was != agent.callsign else ""
    facts = {"callsign": agent.callsign, "uuid": agent.uuid, "path": str(agent.path), "file_callsign": was, "clone": args.as_new}
    report.done(ctx, f"installed {agent.callsign} {agent.uuid} -> {agent.path}{renamed}", facts)
    return 0


def _install(store: Any, file: Path, progress: Any, **how: Any) -> Any:
    """Install ``file`` into ``store``, its bytes verified and written shown as one phase."""
    with store.prepared(file, as_new=how.pop("as_new")) as prepared, progress.phase("install", prepared.nbytes) as phase:
        return store.install_verified(prepared, source=file, on_bytes=phase, **how)


def check_params(file: Path, workdir: Path) -> None:
    """Refuse a file whose parameters its family rejects, before it reaches the cache.

    Only ``build`` used to make parameters through the family; a hand-edited
    file (a negative width, an unknown key, an infinite threshold) was
    installed and then crashed ``up`` when it planned. Same check as ``up``'s.
    """
    from hera.instance import read_header

    check_header_params(read_header(file), file, workdir)


def check_header_params(header: Any, file: Path, workdir: Path) -> None:
    """:func:`check_params` on a header already read (``file`` names it in errors).

    ``install --user`` checks the header of the instance it has read and
    verified, so what is checked is exactly what goes into the cache.
    """
    from hera import family as families
    from hera.errors import HeraError, NotFound
    from hera.plan import validated_params

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


# -- install --user: written by the user's own process, never by root ----------------------------


def install_as(user: str, prepared: Any, *, taken: set[str], source: Path, on_bytes: Any = None) -> Any:
    """Install a file root has opened into ``user``'s cache by a child that has become ``user`` completely.

    Why not root: root writing there, then handing what it made to the user
    with chown, was a race the user wins. Any directory of their cache can be
    swapped for a symbolic link between root's checks and its chown (the
    whole install is the window), and root then wrote into, and handed over,
    whatever the link named: its own files, ``/etc``. A process with the
    user's rights and no others can only be steered where the user could
    write anyway, and what it makes is the user's with no chown at all; root
    itself follows no path of theirs.

    Root has opened the file (the user may not be able to read it) and read
    its header through that descriptor (:meth:`hera.cache.store.Store.prepared`);
    the child inherits the open, read-only descriptor and nothing else of
    root's, streams the file from it into the cache as the user, every
    checksum verified as it passes (a damaged file leaves nothing), and
    answers on a pipe with JSON lines: ``{"done": N}`` as array bytes pass
    (root draws the progress: the child's standard streams are /dev/null),
    then one object: the agent's path and callsign, or the one-line error to
    report. Returns the :class:`Agent`.
    """
    import json
    import pwd

    from hera.cache.store import Agent
    from hera.errors import Conflict, HeraError

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise HeraError(f"no user named {user!r} on this host") from None
    groups = os.getgrouplist(user, entry.pw_gid)
    _preload()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns (os._exit); its answer is what is tested
        os.close(read_fd)
        _child(entry, groups, prepared, taken, source, write_fd)
    os.close(write_fd)
    reply: Any = {}
    with os.fdopen(read_fd, "rb") as pipe:
        for line in pipe:
            try:
                reply = json.loads(line)
            except ValueError:
                reply = {}
                continue
            if isinstance(reply, dict) and type(reply.get("done")) is int and on_bytes is not None:
                on_bytes.update(reply["done"])
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if not isinstance(reply, dict):
        reply = {}
    if isinstance(reply.get("error"), str):
        kind = Conflict if reply.get("conflict") else HeraError
        hint = reply.get("hint")
        raise kind(reply["error"], hint=hint if isinstance(hint, str) else None)
    path, callsign = reply.get("path"), reply.get("callsign")
    if code != 0 or not isinstance(path, str) or not isinstance(callsign, str):
        raise HeraError(f"installing into {user}'s cache failed: the process that wrote it as {user} ended with status {code}")
    return Agent(Path(path), "user", prepared.header.model_copy(update={"callsign": callsign}))


#: What the child of :func:`install_as` imports, directly or not, to write an instance into a cache.
_CHILD_MODULES = (
    "datetime", "errno", "hashlib", "json", "secrets", "stat", "threading", "time",
    "filelock", "psutil",
    "hera.instance.codec", "hera.instance.atomic", "hera.cache.callsigns", "hera.instance", "hera.cache.paths", "hera.cache.pidfile", "hera.cache.store",
)  # fmt: skip


def _preload() -> None:
    """Import, as root, every module the child uses.

    Once it is the user, it may not read them (an interpreter under /root,
    say): an import there would fail halfway through an install.
    """
    import importlib

    for name in _CHILD_MODULES:
        importlib.import_module(name)


def _child(entry: Any, groups: list[int], prepared: Any, taken: set[str], source: Path, answer: int) -> None:
    """Become the user, install, answer on ``answer`` and end: never returns into root's hera."""
    from hera.errors import Conflict, HeraError
    from hera.instance import codec

    # The codec's threads are root's, and no thread survives a fork: a pool made before it would take work
    # and never do it. This process makes its own on first use.
    codec._pool.cache_clear()
    code, reply = 0, {}
    try:
        _become(entry, groups, keep=(prepared.fd, answer))
        agent = _install_here(entry, prepared, taken, source, _Reporter(answer))
        reply = {"path": str(agent.path), "callsign": agent.callsign}
    except HeraError as exc:
        code = exc.exit_code or 1
        reply = {"error": exc.message, "hint": exc.hint, "conflict": isinstance(exc, Conflict)}
    except BaseException as exc:  # noqa: BLE001 - whatever happens, answer and end here
        code, reply = 70, {"error": f"installing as {entry.pw_name} failed: {type(exc).__name__}: {exc}"}
    try:
        _write_line(answer, reply)
    finally:
        os._exit(code)


def _write_line(answer: int, message: dict[str, Any]) -> None:
    import json

    view = memoryview(json.dumps(message).encode() + b"\n")
    while view:
        view = view[os.write(answer, view):]


class _Reporter:
    """The child's ``on_bytes``: the running total as a ``{"done": N}`` line, a few times a second at most.

    Called from the codec's threads, hence the lock; a line is far below
    PIPE_BUF, so it reaches root whole.
    """

    INTERVAL = 0.1

    def __init__(self, answer: int) -> None:
        import threading

        self._answer = answer
        self._lock = threading.Lock()
        self._done = 0
        self._sent = 0.0

    def __call__(self, amount: int) -> None:
        import time

        with self._lock:
            self._done += amount
            moment = time.monotonic()
            if moment - self._sent >= self.INTERVAL:
                self._sent = moment
                _write_line(self._answer, {"done": self._done})


def _become(entry: Any, groups: list[int], *, keep: tuple[int, ...]) -> None:
    """Drop root for good: the user's groups, group and user, in that order (each needs the rights the next drops).

    Root's descriptors are closed but ``keep`` (the file being installed,
    read-only, and the answer pipe; the standard ones point at /dev/null)
    and the working directory is ``/``, so nothing else of root's is
    reachable from here. Changing the uid also makes the process
    undumpable, so the user can neither attach to it nor open its
    descriptors through ``/proc``: what the file holds reaches them only as
    the verified copy in their cache.
    """
    from hera.errors import HeraError

    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != null:
            os.dup2(null, fd)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))  # close_range(2): one call however high the limit
    os.setgroups(groups)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getresuid() != (entry.pw_uid,) * 3 or os.getresgid() != (entry.pw_gid,) * 3:
        raise HeraError(f"could not become {entry.pw_name}; nothing was installed")
    if entry.pw_uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise HeraError(f"root's rights remained after becoming {entry.pw_name}; nothing was installed")
    os.chdir("/")
    os.environ.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)


def _install_here(entry: Any, prepared: Any, taken: set[str], source: Path, on_bytes: Any) -> Any:
    """The install itself, with the user's rights only: their cache is checked as their own hera would check it."""
    from hera.cache.paths import user_cache_dir
    from hera.cache.store import Store
    from hera.errors import HeraError

    home = Path(entry.pw_dir)
    if not home.is_dir():
        raise HeraError(
            f"{entry.pw_name}'s home {home} does not exist; hera will not create it",
            hint=f"create it first, or install as {entry.pw_name} with a cache_dir of their own",
        )
    store = Store(user_cache_dir(entry.pw_name, home), "user", None)
    return store.install_verified(prepared, owner=entry.pw_name, taken=taken, source=source, on_bytes=on_bytes)
