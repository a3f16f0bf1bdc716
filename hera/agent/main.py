"""The agent process: one per up agent, started fresh (never forked), in its own session.

It titles itself for ``ps``, takes the agent's lock (so a second up fails),
writes its pid-file, loads the cached instance onto the device, serves its
control socket, tells the controller it is ready, and runs the inner loop
until it is downed or signalled. Every way out that the spec says updates the
cache does so atomically before the pid-file goes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import logging.handlers
import os
import secrets
import signal
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hera.cache import pidfile
from hera.cache.paths import RuntimeFiles
from hera.errors import HeraError
from hera.instance import now, read_header, save
from hera.instance.atomic import previous_path
from hera.manager.files import ConnectionFile, Launch, log_path, read_key

if TYPE_CHECKING:
    from hera.agent.dataport import DataPort
    from hera.agent.runner import Runner
    from hera.agent.server import ControlServer
    from hera.agent.status import StatusFile
    from hera.family import Family
    from hera.instance import Header
    from hera.pace import Pace
    from hera.runtime import Runtime

log = logging.getLogger("hera.agent")

OWN_PREFIX = "hera."
#: Records (iteration, unit, output) that no controller has read yet: saved, so down loses none of them.
RECORDS_ARRAY = "hera.records"
#: The I/O counts [fed, presented, answered], saved so ``inspect`` and the next up carry on from them.
IO_ARRAY = "hera.io"
#: Older agents saved their unread output as bytes; loaded as records of no known iteration or unit (-1).
OUTPUT_ARRAY = "hera.output"
#: Signals whose handlers only note the name for the inner loop to act on.
NOTED = ("SIGTERM", "SIGINT", "SIGTSTP", "SIGCONT", "SIGHUP", "SIGQUIT")


class Ready:
    """The pipe back to the controller: one line, READY or ERROR, then closed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, word: str, payload: Any) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, f"{word} {json.dumps(payload)}\n".encode())
            os.close(self.fd)
        self.fd = -1


def _setup_logging(log_dir: Path, uuid: str) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(log_path(log_dir, uuid), maxBytes=5 << 20, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Taichi and anything else writing to stdout/stderr lands in the log, never on a terminal.
    fd = os.open(log_path(log_dir, uuid), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)


def _sweep_temporaries(*paths: Path) -> None:
    """Remove the half-written files a killed run of this agent left beside ``paths``; its lock is held, so none is in flight.

    Its saves beside the cached file, and its status file in the runtime
    directory (rewritten several times a second while it loads or saves, so a
    SIGKILL then may well catch one half-written).
    """
    from hera.instance.atomic import TMP_PREFIX

    for path in paths:
        for stale in path.parent.glob(f"{TMP_PREFIX}{path.name}*"):
            with contextlib.suppress(OSError):
                stale.unlink()
                log.info("removed %s, left by a write that was killed", stale.name)


def _arch(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def _pool(family: Family, header: Header) -> int:
    """The Taichi CUDA pool this brain asks for: its family's device estimate plus headroom (see hera.devices)."""
    from hera.devices import pool_bytes
    from hera.plan import validated_params

    return pool_bytes(family.estimate(validated_params(header, family)))


#: Descriptors an agent asks for (its soft limit, up to the hard one): far above what its
#: connection caps let a flood take, so its own files (logs, saves, Taichi's) always open.
NOFILE_WANTED = 4096


def _raise_descriptor_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(NOFILE_WANTED, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run(launch: Launch) -> int:
    os.umask(0o077)  # everything the agent writes (logs, snapshots, cache) is the user's alone
    _raise_descriptor_limit()
    # The spec's signals are noted from the first moment, so one that arrives while
    # the brain loads is acted on once the loop runs instead of killing a half-up agent.
    noted: list[str] = []
    for name in NOTED:
        signal.signal(getattr(signal, name), lambda signum, frame: noted.append(signal.Signals(signum).name))
    ready = Ready(launch.ready_fd)
    files = RuntimeFiles(launch.runtime_dir, launch.uuid)
    try:
        header = read_header(launch.cache_path, follow=False)
    except Exception as exc:  # the controller shows this line to the user
        try:  # a damaged header: the previous good save, if kept, is loaded instead (see _serve)
            header = read_header(previous_path(launch.cache_path), follow=False)
        except Exception:
            ready.send("ERROR", str(exc))
            return 1
    import setproctitle

    setproctitle.setproctitle(pidfile.title(header.callsign, header.uuid, header.family.name, header.layout))
    try:
        lock_fd = _take_lock(launch.runtime_dir, files.lock)
    except HeraError as exc:
        ready.send("ERROR", exc.line())
        return 1
    if lock_fd is None:
        ready.send("ERROR", f"agent {header.callsign} ({header.uuid[:8]}) is already up")
        return 1
    _setup_logging(launch.log_dir, launch.uuid)
    for name in ("SIGTTIN", "SIGTTOU"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)  # no terminal: never stop on one
    try:
        pidfile.write(launch.runtime_dir, launch.uuid, os.getpid())
        # From now on the controller and `hera agents` see how far the load is (read, init, load, save).
        status_file = _loading_status(launch, header, files)
        _sweep_temporaries(launch.cache_path, *files.published())
        log.info("up: %s %s on %s (pid %d)", header.callsign, header.uuid, launch.device, os.getpid())
        return _serve(launch, header, ready, files, noted, status_file)
    except Exception as exc:
        log.exception("agent failed")
        # hera's own errors are written for the user already; anything else is named by its type
        ready.send("ERROR", str(exc) if isinstance(exc, HeraError) else f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        for published in files.published():
            published.unlink(missing_ok=True)
        pidfile.remove(launch.runtime_dir, launch.uuid, os.getpid())
        os.close(lock_fd)


def _loading_status(launch: Launch, header: Header, files: RuntimeFiles) -> StatusFile:
    """The status file, published at once: ``loading`` at the cached iteration, nobody holding it yet."""
    from hera.agent.status import StatusFile

    mode = "daemon" if launch.daemon else "detached"
    status_file = StatusFile(files.status, lambda: {"mode": mode, "holder_pid": None})
    status_file.publish({
        "uuid": launch.uuid, "pid": os.getpid(), "state": "loading", "iteration": header.iteration,
        "device": launch.device, "pace": launch.pace if launch.pace is not None else header.pace,
    })
    return status_file


def _load(
    launch: Launch, family: Family, arch: str, status_file: StatusFile
) -> tuple[Runtime, Header, dict[str, Any], str | None, dict[str, int]]:
    """The brain onto the device, one array at a time (see :mod:`hera.agent.loading`), each phase reported.

    Returns the runtime, the header it was loaded from, hera's own arrays,
    the warning of a fallback to the previous good save (a damaged cached
    file, found when it is opened or when an array's checksum fails), and
    each array's size in bytes (a save's progress counts against them).
    """
    from hera.agent.loading import open_brain, release, split
    from hera.instance.atomic import previous_path
    from hera.instance.format import InstanceFile, InstanceFileError, previous_warning
    from hera.kernels import init

    started = time.perf_counter()
    with status_file.phase("read"):
        opened, warning = open_brain(launch.cache_path)
    try:
        read = time.perf_counter()
        with status_file.phase("init"):  # on a GPU, Taichi's pool sized from the family's estimate
            init(arch, device_memory_bytes=_pool(family, opened.header) if arch == "cuda" else None, device=launch.device)
        initialised = time.perf_counter()
        while True:
            try:
                try:
                    # Arrays named "hera.*" are the agent's own (unread output), not the family's.
                    own, arrays = split(opened, OWN_PREFIX)
                    with status_file.phase("load", arrays.nbytes) as phase:
                        arrays.on_bytes = phase
                        runtime = family.runtime(opened.header, arrays, arch)
                except InstanceFileError:
                    raise
                except HeraError as refused:
                    # The family checks names and shapes before anything is decoded; a name changed by
                    # one bit is a damaged file, which its checksums tell (then: the previous save, below).
                    opened.verify()
                    # the family names the array; only the agent knows which file held it
                    raise HeraError(f"{opened.path}: {refused.message}", hint=refused.hint) from None
                release()  # the last array's host copy
                break
            except InstanceFileError as damaged:  # a checksum failed: the previous good save, once
                previous = previous_path(launch.cache_path)
                if warning is not None or not previous.exists():
                    raise
                opened.close()
                opened = InstanceFile(previous, follow=False)
                warning = previous_warning(launch.cache_path, damaged, opened.header)
        log.info(
            "read the cached file in %.2f s, Taichi (%s) in %.2f s, the brain onto the device in %.2f s",
            read - started, arch, initialised - read, time.perf_counter() - initialised,
        )
        return runtime, opened.header, own, warning, {name: entry.nbytes for name, entry in opened.entries.items()}
    finally:
        opened.close()


def _take_lock(runtime_dir: Path, lock: Path) -> int | None:
    """The agent's own lock, held while it runs: its fd, or None if another process holds it.

    The runtime directory is checked again here (the agent may be started by
    something other than ``hera up``), and the lock file is opened without
    following a link and must be a regular file of ours: a lock elsewhere
    would lock nothing.
    """
    from hera.cache.paths import RUNTIME_HINT, runtime_dir as safe_runtime_dir

    safe_runtime_dir(runtime_dir, create=True)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise HeraError(f"cannot open the agent's lock {lock}: {exc.strerror or exc}", hint=RUNTIME_HINT) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        os.close(fd)
        raise HeraError(f"{lock} is not a lock file of yours; remove it", hint=RUNTIME_HINT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _serve(launch: Launch, header: Header, ready: Ready, files: RuntimeFiles, noted: list[str], status_file: StatusFile) -> int:
    from hera import family as families
    from hera.agent.dataport import DataPort
    from hera.agent.loading import Measured, release
    from hera.agent.runner import Runner
    from hera.agent.server import ControlServer
    from hera.runtime import dynamic_header, exported

    family = families.get(header.family.name, launch.workdir)
    # A damaged cached file falls back to the previous good save, with one warning for the user.
    runtime, header, own, warning, sizes = _load(launch, family, _arch(launch.device), status_file)
    if warning:
        log.warning("%s", warning)
    pace = _pace(launch, header, runtime)
    last_up = now()
    key = read_key(launch.key_file) if launch.key_file is not None else secrets.token_bytes(32)
    server = ControlServer(launch.uuid, files.socket, tcp=launch.daemon, key=key, tcp_host=launch.tcp_host)
    # In daemon mode a data port beside the control port: bytes in, records out (hera.agent.dataport).
    dataport = DataPort(launch.uuid, key, launch.tcp_host) if launch.daemon else None

    def export_state(*, lazy: bool = False) -> Callable[[Path | None], str]:
        """Take the state off the device now (the loop's thread); the writer it returns may run on any thread.

        The arrays are host copies, so the loop may run on while they are
        written (a checkpoint's peak: the device's copy and the host's). With
        ``lazy`` (the loop is stopped and the writer runs on this thread:
        ``down``, SIGTERM) each array is taken off the device only as it is
        written, where the family can (:func:`hera.runtime.exported`): one
        array on the host at a time. The cache's saves are verified and keep
        the previous good save as ``.prev``; a copy (``target``) never
        replaces an existing file.
        """
        started = time.perf_counter()
        state = exported(runtime) if lazy else runtime.export_state()
        runner.collect_records()
        extra: dict[str, Any] = {}
        if runner.records.unit is not None:
            extra[IO_ARRAY] = runner.records.saved()
            if runner.records.unread_records:
                extra[RECORDS_ARRAY] = runner.records.peek()
        # A lazy export's sizes are known once each array is taken: until then, as the file had them.
        total = sum(array.nbytes for array in extra.values()) + (
            sum(array.nbytes for array in state.values()) if isinstance(state, dict) else sum(sizes.get(name, 0) for name in state)
        )
        taken = time.perf_counter()
        iteration = runtime.iteration
        kept = None if runner.pace.kind == "max" else runner.pace.text  # the pace goes down and up with the agent
        updated = dynamic_header(header, runtime).model_copy(update={"last_up": last_up, "device": launch.device, "pace": kept})

        def write(target: Path | None = None) -> str:
            begun = time.perf_counter()
            # A synchronous save (down, SIGTERM) stops the loop: the listing says "saving", not the state it left.
            # The cache's saves are read back and verified: twice the bytes (see hera.instance.save).
            passes = 2 if target is None else 1
            with status_file.phase("save", total * passes, state="saving" if lazy else None) as phase:
                measured = Measured((state, extra), sizes, phase, passes)  # the family's arrays, then hera's own
                if target is None:
                    save(launch.cache_path, updated, measured, mode=0o600, keep_previous=True, on_bytes=phase)
                else:
                    save(target, updated, measured, mode=0o600, overwrite=False, on_bytes=phase)
            release()  # the host copies written (see hera.agent.loading.release)
            log.info(
                "state of iteration %d: exported from the device in %.2f s, written to %s in %.2f s",
                iteration, taken - started, target or "the cache", time.perf_counter() - begun,
            )
            return str(target or launch.cache_path)

        return write

    def save_state() -> str:
        """A synchronous save to the cache (down, SIGTERM, a fresh brain's first): array by array off the device."""
        return export_state(lazy=True)(None)

    info = {
        "uuid": header.uuid,
        "callsign": header.callsign,
        "family": header.family.name,
        "layout": header.layout,
        "device": launch.device,
        "pid": os.getpid(),
        "tcp_port": server.tcp_port,
        "data_port": dataport.port if dataport is not None else None,
        "neurons": header.summary.get("neurons"),
        "seconds_per_iteration": runtime.seconds_per_iteration,
        "runtime_dir": str(launch.runtime_dir),
        # Copies are written beside the cache (on disk, hard-linked into place where it can be),
        # never where a message says; the runtime directory is often a small tmpfs.
        "copy_dir": str(launch.cache_path.parent),
    }
    status_file.presence = server.presence
    counts, unread = _own_records(own)
    runner = Runner(
        runtime,
        server,
        save=save_state,
        autosave_interval=launch.autosave_interval,
        start_state=launch.start_state,
        info=info,
        signals=noted,
        export=export_state,
        pace=pace,
        counts=counts,
        unread=unread,
    )
    server.on_change = status_file.publish  # a controller attaching meanwhile: MODE and holder (still "loading")
    try:
        return _run(launch, header, ready, files, runner, server, dataport, key, warning, save_state, status_file)
    finally:
        status_file.close()  # nothing writes it again, not even a connection closing as the agent leaves


def _run(
    launch: Launch, header: Header, ready: Ready, files: RuntimeFiles, runner: Runner, server: ControlServer,
    dataport: DataPort | None, key: bytes, warning: str | None, save_state: Callable[[], str], status_file: StatusFile,
) -> int:
    """Serve, tell the controller the agent is up, run the loop; leave as the loop says.

    The status file says ``loading`` (with its phases) until the agent is
    ready, a fresh brain's first save included; the runner's own state from
    then on.
    """
    if launch.daemon:
        ConnectionFile(
            uuid=header.uuid, pid=os.getpid(), ip=launch.tcp_host, port=server.tcp_port, key=key.hex(),
            data_port=dataport.port if dataport is not None else None,
        ).write(files.connection)
    server.start()
    if dataport is not None:
        dataport.start(runner)
    if not header.dynamic:
        # The first stop of a fresh instance creates its cached state; save now so
        # even a SIGKILL before the first autosave leaves a resumable agent.
        save_state()
    runner.status_file = status_file
    runner.act_on_signals(leave=False)  # Ctrl-C while it loaded: ready in standby, never running
    runner.publish()
    ready.send("READY", {**runner.status(), "warning": warning} if warning else runner.status())
    leaving = runner.loop()
    server.close()
    if dataport is not None:  # the records already made reach their streams, with an end line each
        dataport.close()
    if leaving.save:
        runner.save(leaving.reason)  # its progress in the status file, which goes right after
    status_file.close()
    log.info("down: %s at iteration %d", leaving.reason, runner.runtime.iteration)
    if leaving.reason == "SIGQUIT":
        # The spec: terminate, update the cache, and continue with a core dump.
        for published in files.published():
            published.unlink(missing_ok=True)
        pidfile.remove(launch.runtime_dir, launch.uuid, os.getpid())
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGQUIT)
    return 0


def _own_records(own: dict[str, Any]) -> tuple[tuple[int, int, int] | None, Any]:
    """The saved I/O counts and unread records (``hera.io``, ``hera.records``; an older file's ``hera.output``).

    Arrays of the wrong shape are ignored (with a warning): they are the
    agent's own bookkeeping, never a reason to refuse the brain.
    """
    import numpy as np

    counts, unread = None, None
    saved = own.get(IO_ARRAY)
    if saved is not None:
        if saved.shape == (3,) and saved.dtype.kind == "i":
            fed, presented, answered = (int(v) for v in saved)
            counts = (fed, presented, answered)
        else:
            log.warning("ignoring %s of shape %s", IO_ARRAY, saved.shape)
    records = own.get(RECORDS_ARRAY)
    if records is not None:
        if records.ndim == 2 and records.shape[1] == 3 and records.dtype.kind == "i":
            unread = records.astype(np.int64)
        else:
            log.warning("ignoring %s of shape %s", RECORDS_ARRAY, records.shape)
    old = own.get(OUTPUT_ARRAY)
    if unread is None and old is not None and old.size:
        unread = np.full((old.size, 3), -1, np.int64)
        unread[:, 2] = old.reshape(-1).astype(np.uint8)
    return counts, unread


def _pace(launch: Launch, header: Header, runtime: Runtime) -> Pace:
    """The pace to keep: ``up --pace`` for this up, else the one the agent was built or last ran with.

    Checked against the family before the agent is up: a real-time factor
    on a family whose runtime has no time step is one line for ``hera up``.
    """
    from hera.pace import PaceError, parse

    given = launch.pace if launch.pace is not None else header.pace
    try:
        pace = parse(given)
        pace.rate(runtime.seconds_per_iteration, header.family.name)
    except PaceError as exc:
        kept = launch.pace is None  # the agent's own pace (from its build, or its last run): say how to replace it
        raise HeraError(str(exc), hint=f"the agent keeps pace {given}; up it with --pace N/s" if kept else None) from None
    return pace


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run(Launch.model_validate_json(argv[0]))
