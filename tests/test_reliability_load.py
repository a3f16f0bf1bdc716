"""Load and security: sixteen agents up at once on two cores, and what another local user can do (nothing).

The load test is the heaviest of the reliability suite (about 40 s on two
cores) and is marked ``load``; it runs by default, in CI too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid as uuids

import pytest

from agent_helpers import build, cache_path, reap_agents, request, tick_world, up_daemon, up_daemons, wait_gone
from herakit import World
from reliability_kit import note

AGENTS = 16
#: The longest any listing, signal or down of all agents may take on a loaded two-core machine.
BOUND = 60.0


@pytest.fixture
def world(hera: World) -> World:
    tick_world(hera)
    yield hera
    reap_agents(hera)


def all_at_once(world: World, commands: list[tuple[str, ...]]) -> list[str]:
    """Run the hera commands in parallel, each within BOUND seconds; their outputs (all must succeed)."""
    started = [world.popen(*args) for args in commands]
    outs = []
    for args, process in zip(commands, started, strict=True):
        out, err = process.communicate(timeout=BOUND)
        assert process.returncode == 0, f"{args}: {err}"
        outs.append(out)
    return outs


@pytest.mark.load
def test_sixteen_agents_up_at_once_answer_and_resume_exactly(world: World) -> None:
    files = [build(world, f"a{i}.json", seed=i).path.name for i in range(AGENTS)]
    ups = up_daemons(world, *[(name, "--paused") for name in files])  # idle until told: 16 busy loops starve 2 cores
    started = time.monotonic()
    listing = json.loads(world("agents", "--json", check=True, timeout=BOUND).out)
    assert time.monotonic() - started < BOUND
    rows = listing if isinstance(listing, list) else listing.get("agents", listing)
    assert {up.uuid for up in ups} <= {row["uuid"] for row in rows}
    all_at_once(world, [("--uuid", up.uuid, "signal", "SIGCONT") for up in ups])
    for up in ups:
        assert request(world, up.uuid, "status")["state"] == "running"
    all_at_once(world, [("--uuid", up.uuid, "signal", "SIGTSTP") for up in ups])
    for up in ups:
        assert request(world, up.uuid, "status")["state"] == "paused"
    downs = all_at_once(world, [("--uuid", up.uuid, "down") for up in ups])
    saved = {up.uuid: int(out.split(" at iteration ")[1].split()[0]) for up, out in zip(ups, downs, strict=True)}
    for up in ups:
        wait_gone(up.pid)
    again = up_daemons(world, *[("--uuid", up.uuid, "--paused") for up in ups])
    for up in again:
        assert request(world, up.uuid, "status")["iteration"] == saved[up.uuid]  # exactly where it stopped
    all_at_once(world, [("--uuid", up.uuid, "down") for up in again])
    note("load", agents=AGENTS, trials=2)


@pytest.fixture
def other_user() -> str:
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd to make another local user")
    name = "herarel" + uuids.uuid4().hex[:6]
    if subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], capture_output=True).returncode != 0:
        pytest.skip("useradd failed")
    yield name
    subprocess.run(["userdel", name], capture_output=True)


PROBE = r"""
import json, socket, sys
what, target = sys.argv[1], sys.argv[2]
try:
    if what == "read":
        open(target, "rb").read(1)
    elif what == "list":
        import os; os.listdir(target)
    elif what == "unix":
        s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(target)
        s.sendall(b'{"id": 1, "op": "down"}\n')
        reply = s.recv(4096)
        if b'"ok":true' in reply.replace(b" ", b""):
            print("OBEYED"); sys.exit(0)
        print("REFUSED"); sys.exit(1)
    print("ALLOWED")
except OSError as exc:
    print("DENIED", exc)
"""


def test_another_user_can_neither_read_nor_control_an_agent(world: World, other_user: str) -> None:
    from hera.agent.protocol import Request, wrap

    def ok(reply: bytes) -> bool:
        """Whether a signed reply line says the request was carried out."""
        try:
            return bool(json.loads(json.loads(reply)["payload"])["ok"])
        except (ValueError, KeyError, TypeError):
            return False

    built = build(world)
    up = up_daemon(world, str(built.path))
    # Let the other user traverse to the files, so only their own modes protect them.
    opened = []
    for parent in [world.root, *world.root.parents][:-1]:
        opened.append((parent, parent.stat().st_mode))
        parent.chmod(parent.stat().st_mode | 0o011)
    runtime = world.runtime_dir / "hera"
    tried = 0
    try:
        for what, target in (
            ("read", cache_path(world, up.uuid)),
            ("read", up.connection),
            ("list", runtime),
            ("list", cache_path(world, up.uuid).parent),
            ("unix", runtime / f"{up.uuid}.sock"),
        ):
            done = subprocess.run(["/usr/bin/python3", "-c", PROBE, what, str(target)], user=other_user, capture_output=True, text=True, timeout=30)
            tried += 1
            assert done.stdout.startswith(("DENIED", "REFUSED")), f"{other_user} could {what} {target}: {done.stdout}{done.stderr}"
    finally:
        for parent, mode in opened:
            parent.chmod(mode)
    # The TCP port: no key, a wrong key, a replayed message (right key, old sequence number) are all refused.
    connection = json.loads(up.connection.read_text())
    key = bytes.fromhex(connection["key"])

    def session(lines: list[bytes]) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", connection["port"]), timeout=10) as sock:
            stream = sock.makefile("rb")
            hello = json.loads(stream.readline())
            replies = []
            for line in lines:
                line = line.replace(b"NONCE", hello["nonce"].encode()) if b"NONCE" in line else line
                sock.sendall(line)
                replies.append(stream.readline())
            return replies

    status = Request(id=1, op="status")
    down = Request(id=2, op="down")
    # The first message of the session is signed with this session's nonce; the same bytes again are a replay.
    with socket.create_connection(("127.0.0.1", connection["port"]), timeout=10) as sock:
        stream = sock.makefile("rb")
        nonce = json.loads(stream.readline())["nonce"]
        first = wrap(key, nonce, 5, status)
        sock.sendall(first)
        assert ok(stream.readline())  # the right key works
        for refused in (first, wrap(key, nonce, 4, down), wrap(b"w" * 32, nonce, 9, down), b'{"id": 2, "op": "down"}\n'):
            try:
                sock.sendall(refused)
                reply = stream.readline()
            except OSError:
                reply = b""
            tried += 1
            assert not ok(reply), reply
    # A message captured in another session (another nonce) is refused too.
    replies = session([wrap(key, nonce, 6, down)])
    tried += 1
    assert not ok(replies[0])
    assert request(world, up.uuid, "status")["state"] == "running"  # never stopped, never downed
    world("down", check=True)
    note("security", inputs=tried)
