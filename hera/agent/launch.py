"""Starting one agent process and knowing when it is up (the controller's side).

The agent is a fresh interpreter (``python -m hera.agent``), never a fork: a
process that initialised Taichi hangs when forked, and the controller must not
import Taichi at all. It starts in a session of its own so the terminal's
signals and hang-up reach only the controller, which decides what the agent
should do with them. It reports READY or ERROR on a pipe; anything it prints
goes to its log.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hera.agent.main import Launch, log_path
from hera.errors import HeraError

READY_TIMEOUT = 300.0


def start(launch: Launch, timeout: float = READY_TIMEOUT) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start the agent; return its process and first status once it serves requests."""
    from hera.paths import private_dir

    # The agent runs elsewhere (its working directory is its log directory, where a
    # core dump of SIGQUIT or SIGABRT lands), so every path it is given is absolute.
    absolute = {name: Path(getattr(launch, name)).absolute() for name in ("cache_path", "runtime_dir", "log_dir", "workdir")}
    private_dir(absolute["log_dir"])
    read_fd, write_fd = os.pipe()
    launch = launch.model_copy(update={"ready_fd": write_fd, **absolute})
    log = os.open(log_path(launch.log_dir, launch.uuid), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    env = dict(os.environ)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "hera.agent", launch.model_dump_json()],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            start_new_session=True,
            cwd=launch.log_dir,
            env=env,
        )
    finally:
        os.close(write_fd)
        os.close(log)
    try:
        line = _read_line(read_fd, process, timeout)
    finally:
        os.close(read_fd)
    word, _, payload = line.partition(" ")
    if word == "READY":
        return process, json.loads(payload)
    if word == "ERROR":
        process.wait(timeout=30)
        raise HeraError(json.loads(payload))
    process.wait(timeout=30)
    raise HeraError(
        f"the agent process exited ({process.returncode}) before it was up",
        hint=f"see its log: {log_path(launch.log_dir, launch.uuid)}",
    )


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
