"""Python children hera starts never import from the working directory.

``python -m X`` and ``python -c X`` put the working directory first on
``sys.path``: a ``json.py`` or a ``hera/`` package planted in a shared
directory would run, as whoever runs hera there, inside the Taichi probe, the
agent, or the shell that ``signal SIGSTOP`` and ``up -i`` open. hera itself
is run here through its console script, as a user types ``hera``, since
``python -m hera`` would be the user's own choice to trust the directory.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from agent_helpers import build, reap_agents, tick_world, up_daemon
from herakit import World

HERA = str(Path(sys.executable).parent / "hera")

PLANTED = """\
import pathlib
pathlib.Path({marker!r}).write_text("planted code ran")
"""


def plant_module(directory: Path, relative: str, marker: Path) -> None:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PLANTED.format(marker=str(marker)))


@pytest.fixture
def world(hera: World) -> World:
    tick_world(hera)
    yield hera
    reap_agents(hera)


def test_the_taichi_probe_never_imports_a_module_planted_in_the_working_directory(hera: World, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    plant_module(hera.workdir, "json.py", marker)  # the probe's first import
    done = subprocess.run([HERA, "devices", "--probe"], cwd=hera.workdir, env=hera.env, capture_output=True, text=True, timeout=120)
    assert not marker.exists(), f"planted json.py ran: {done.stdout}{done.stderr}"


def test_the_debug_prompt_that_sigstop_opens_is_hera_own_shell_not_a_planted_one(world: World, tmp_path: Path) -> None:
    built = build(world)
    up = up_daemon(world, str(built.path))
    marker = tmp_path / "marker"
    # Planted after the agent is up: the agent starts in a private directory of its own anyway.
    plant_module(world.workdir, "hera/__init__.py", marker)
    plant_module(world.workdir, "hera/shell/__main__.py", marker)
    child = pexpect.spawn(
        HERA, ["--uuid", up.uuid[:8], "signal", "SIGSTOP"],
        cwd=str(world.workdir), env=dict(world.env, TERM="dumb"), encoding="utf-8", timeout=60, dimensions=(50, 200),
    )
    try:
        child.expect(r"hera [\w-]+\[paused")  # the real shell's prompt, attached to the paused agent
        assert not marker.exists(), "a planted hera package ran as the debug prompt"
        child.sendline("detach")
        child.expect(r"detached from .*\n(.|\n)*hera> ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert not marker.exists()


def test_a_process_on_a_dead_agents_port_gets_nothing_from_its_stale_connection_file(world: World) -> None:
    """SIGKILL leaves the connection file; whoever takes the port next must not be sent the owner's input."""
    import json
    import os
    import signal
    import threading

    from agent_helpers import request, wait_for, wait_gone
    from hera.errors import HeraError
    from hera.manager.client import AgentClient

    built = build(world)
    up = up_daemon(world, str(built.path))
    assert request(world, up.uuid, "status")["state"] == "running"
    stale = json.loads(up.connection.read_text())
    os.kill(up.pid, signal.SIGKILL)
    wait_gone(up.pid)
    assert up.connection.exists(), "SIGKILL leaves the connection file behind"
    squatter = wait_for(lambda: _bind(stale["port"]), timeout=20, what=f"port {stale['port']} to be free")
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = squatter.accept()
        with conn:
            hello = {"hera": 1, "uuid": up.uuid, "nonce": "00" * 16, "auth": True, "proof": "ab" * 32}
            conn.sendall(json.dumps(hello).encode() + b"\n")
            conn.settimeout(2)
            try:
                while chunk := conn.recv(65536):
                    received.append(chunk)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(HeraError, match="did not prove it holds the agent's key"):
            with AgentClient.tcp(up.connection, timeout=10) as client:
                client.request("feed", text="my secret input\n")
        thread.join(5)
    finally:
        squatter.close()
    assert b"".join(received) == b"", "the owner's request reached a process that does not hold the key"


def _bind(port: int) -> socket.socket | None:
    try:
        return socket.create_server(("127.0.0.1", port))
    except OSError:
        return None  # the dead agent's listening socket may linger a moment in the kernel
