"""Starting one agent process and knowing when it is up (the controller's side).

The agent is a fresh interpreter (``python -m hera.agent``), never a fork: a
process that initialised Taichi hangs when forked, and the controller must not
import Taichi at all. It starts in a session of its own so the terminal's
signals and hang-up reach only the controller, which decides what the agent
should do with them. It reports READY or ERROR on a pipe; anything it prints
goes to its log.

The controller writes the new process's pid-file itself, under the store's
lock, the moment the process exists: so an agent is "up" for every other
command before it opens its cached file, and ``destroy`` or ``uninstall``
can never remove that file from under an agent that is coming up.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from hera import children
from hera.cache import pidfile
from hera.manager.files import Launch, log_path
from hera.errors import HeraError

READY_TIMEOUT = 300.0


def start(
    launch: Launch, timeout: float = READY_TIMEOUT, *, claim: AbstractContextManager[Any] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start the agent; return its process and first status once it serves requests.

    ``claim`` (the store's lock, see :meth:`hera.cache.store.Store.claimed`) is
    held only while the process is started and its pid-file written for it,
    not while it loads: from then on every command sees the agent as up.
    """
    from hera.cache.paths import private_dir

    # The agent runs elsewhere (its working directory is its log directory, where a
    # core dump of SIGQUIT or SIGABRT lands), so every path it is given is absolute.
    absolute = {name: Path(getattr(launch, name)).absolute() for name in ("cache_path", "runtime_dir", "log_dir", "workdir")}
    private_dir(absolute["log_dir"])
    read_fd, write_fd = os.pipe()
    launch = launch.model_copy(update={"ready_fd": write_fd, **absolute})
    try:
        with claim if claim is not None else contextlib.nullcontext():
            process = _spawn(launch, write_fd)
            _claim(launch, process)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    try:
        line = _read_line(read_fd, process, timeout)
    except HeraError:
        pidfile.remove(launch.runtime_dir, launch.uuid, process.pid)
        raise
    finally:
        os.close(read_fd)
    word, _, payload = line.partition(" ")
    if word == "READY":
        return process, json.loads(payload)
    process.wait(timeout=30)
    pidfile.remove(launch.runtime_dir, launch.uuid, process.pid)  # the claim of a process that never came up
    if word == "ERROR":
        raise HeraError(json.loads(payload))
    raise HeraError(
        f"the agent process exited ({process.returncode}) before it was up",
        hint=f"see its log: {log_path(launch.log_dir, launch.uuid)}",
    )


def _claim(launch: Launch, process: subprocess.Popen[bytes]) -> None:
    """Write the new process's pid-file now, before it has loaded anything (it rewrites the same later)."""
    try:
        pidfile.write(launch.runtime_dir, launch.uuid, process.pid)
    except OSError as exc:
        process.kill()
        process.wait()
        raise HeraError(f"cannot write the pid-file in {launch.runtime_dir}: {exc.strerror or exc}") from None


def _spawn(launch: Launch, write_fd: int) -> subprocess.Popen[bytes]:
    log = os.open(log_path(launch.log_dir, launch.uuid), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return subprocess.Popen(
            children.python("-m", "hera.agent", launch.model_dump_json()),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            start_new_session=True,
            cwd=launch.log_dir,
            env=dict(os.environ),
        )
    finally:
        os.close(log)


def _read_line(fd: int, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            process.kill()
            raise HeraError(f"the agent did not come up within {timeout:.0f} s; it was killed")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()
