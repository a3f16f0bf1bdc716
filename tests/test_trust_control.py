"""The control plane against floods, junk on standard input and races (issue 16: items 3, 8, 9).

Every agent here is a real ``hera up --daemon`` process of the tick test
family; every attack is real: sockets opened by this process (anyone on the
host can reach a loopback port; the agent's own user can reach its unix
socket), bytes piped into ``hera signal SIGTTIN``, ``hera signal`` racing an
agent that goes away. What is checked is what a user sees: whether ``hera``
still gets through, what it prints, and what the agent holds afterwards.
"""

from __future__ import annotations

import io
import json
import os
import random
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent_helpers import (
    UP_LINE,
    Up,
    build,
    client,
    log_file,
    reap_agents,
    request,
    snapshot,
    socket_path,
    tick_world,
    up_daemon,
    wait_for,
)
from cachekit import FakeAgent, read_head, runtime_of, write_pid_file
from hera.agent import protocol
from hera.agent.runner import INPUT_LIMIT
from hera.agent.server import HANDSHAKE_SECONDS, MAX_ESTABLISHED, MAX_HANDSHAKING
from hera.errors import HeraError
from hera.manager.client import AgentClient
from herakit import Result, World, one_error_line

#: What a stock Linux gives a process (``ulimit -n``): the limit the issue's flood ran into.
STOCK_NOFILE = 1024
#: The flood of item 3: more connections than such a process can hold.
FLOOD = 1100
#: The owner's own flood of the unix socket: more than the agent keeps (MAX_ESTABLISHED) plus its backlog.
UNIX_FLOOD = 400


@pytest.fixture
def world(hera: World) -> World:
    tick_world(hera)
    yield hera
    reap_agents(hera)


def stock_nofile() -> None:
    """preexec_fn: the agent gets the stock descriptor limit, whatever this test process has."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(STOCK_NOFILE, hard), hard))


def up_with_stock_limit(world: World, path: str) -> Up:
    result = world("up", path, "--daemon", preexec_fn=stock_nofile)
    assert result.rc == 0, str(result)
    found = UP_LINE.search(result.out)
    assert found, str(result)
    return Up(found["uuid"], found["callsign"], int(found["pid"]), found["device"], int(found["port"]), Path(found["connection"]), result)


def room_for(count: int) -> None:
    """Let this test process hold ``count`` sockets (after the agent started: it must not inherit this)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"this process may hold {hard} files, the flood needs {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def flood(connect: Callable[[], socket.socket], count: int, *, patience: float = 3.0) -> list[socket.socket]:
    """Open up to ``count`` connections and hold them, saying nothing; stop once the agent has taken none for ``patience`` s.

    A full backlog refuses a unix connect at once (EAGAIN): like an attacker, the flood waits and tries again.
    """
    held: list[socket.socket] = []
    progress = time.monotonic()
    while len(held) < count and time.monotonic() - progress < patience:
        try:
            held.append(connect())
            progress = time.monotonic()
        except OSError:
            time.sleep(0.005)
    return held


def tcp_to(port: int) -> Callable[[], socket.socket]:
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5)


def unix_to(path: Path) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            raise
        return sock

    return connect


def release(held: list[socket.socket]) -> None:
    for sock in held:
        sock.close()
    held.clear()


def answers_in_listing(world: World, uuid: str) -> bool:
    """Whether ``hera agents`` shows the agent's live state: only an agent that answered on its socket has one."""
    listing = world("agents", timeout=30, check=True)
    row = next(line for line in listing.out.splitlines() if uuid[:8] in line)
    return any(word in row.split() for word in ("running", "paused", "standby"))


def test_floods_of_connections_on_the_port_and_the_socket_never_silence_the_owner(world: World) -> None:
    """Item 3 as found: 1,100 connections without a key on the TCP port and, at the same time,
    400 of the owner's own on the unix socket.

    The agent is paused so that the flood is accepted as fast as it comes
    (a running agent's kernels share the GIL with accept(), and the flood
    then takes a minute instead of seconds): what is tested is that its
    descriptors are never exhausted and the owner always gets in.
    """
    built = build(world)
    up = up_with_stock_limit(world, str(built.path))
    paused(world, up.uuid)
    room_for(FLOOD + UNIX_FLOOD)
    floods: dict[str, list[socket.socket]] = {}
    attackers = [
        threading.Thread(target=lambda kind=kind, connect=connect, count=count: floods.__setitem__(kind, flood(connect, count)))
        for kind, connect, count in (("tcp", tcp_to(up.port), FLOOD), ("unix", unix_to(socket_path(world, up.uuid)), UNIX_FLOOD))
    ]
    try:
        for attacker in attackers:
            attacker.start()
        for attacker in attackers:
            attacker.join()
        fds = psutil.Process(up.pid).num_fds()
        started = time.monotonic()
        assert answers_in_listing(world, up.uuid)  # the owner's hera gets its answer (within its 1 s)
        with AgentClient.tcp(up.connection, timeout=10) as signed:  # and so does a key holder on TCP
            assert signed.request("status")["state"] == "paused"
        down = world("--uuid", up.uuid, "down", timeout=30)
        assert down.rc == 0 and down.out.startswith(f"down {up.callsign}"), str(down)
        assert time.monotonic() - started < 20
        # The agent kept taking connections, none was left waiting, and what it held stayed capped,
        # far below the stock limit that the flood used to exhaust.
        assert len(floods["tcp"]) >= FLOOD - 20 and len(floods["unix"]) >= UNIX_FLOOD - 20, {k: len(v) for k, v in floods.items()}
        assert fds < MAX_HANDSHAKING + MAX_ESTABLISHED + 128, fds
    finally:
        for held in floods.values():
            release(held)
    assert "Traceback" not in log_file(world, up.uuid).read_text()


def test_a_running_agent_greets_a_burst_of_connections_promptly(world: World) -> None:
    """Between batches the loop hands the GIL to the connection threads: a burst is not served at the
    kernels' leisure (it was about ten connections a second, so a flood crowded the owner out)."""
    built = build(world)
    up = up_daemon(world, str(built.path))
    burst = 120
    started = time.monotonic()
    sockets = []
    for _ in range(burst):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(str(socket_path(world, up.uuid)))
        except BlockingIOError:
            pass
        sockets.append(sock)
    greeted = 0
    while greeted < burst and time.monotonic() - started < 30:
        for sock in sockets:
            try:
                if sock.recv(65536):
                    greeted += 1
            except (BlockingIOError, OSError):
                pass
        time.sleep(0.01)
    took = time.monotonic() - started
    for sock in sockets:
        sock.close()
    assert greeted == burst and took < 4.5, (greeted, took)  # 1.8 s here; 5.8 s without the hand-over
    world("--uuid", up.uuid, "down", check=True)


def test_accepting_survives_running_out_of_file_descriptors(world: World) -> None:
    """EMFILE in accept() (the issue's end of the accept thread) is waited out; the agent answers again."""
    built = build(world)
    up = up_daemon(world, str(built.path))
    # Squeezed only once its kernels are compiled: Taichi opens its runtime library lazily at the
    # first compile and aborts the process if it cannot (no descriptor left is not a flood's doing:
    # the connection caps keep an agent far below any stock limit).
    wait_for(lambda: request(world, up.uuid, "status")["iteration"] > 0, what="the first batch")
    agent = psutil.Process(up.pid)
    soft, hard = agent.rlimit(psutil.RLIMIT_NOFILE)
    agent.rlimit(psutil.RLIMIT_NOFILE, (agent.num_fds() + 4, hard))  # room for four more, no more
    try:
        for connect in (unix_to(socket_path(world, up.uuid)), tcp_to(up.port)):
            held = flood(connect, 40, patience=1.5)  # beyond the room: accept() fails with EMFILE
            time.sleep(0.3)
            release(held)
            time.sleep(0.3)
        # The flood is gone; the limit is still tight, but the agent accepts again: once its back-off
        # (at most 0.5 s) has passed and the flood's descriptors are closed on its side too.
        wait_for(lambda: answers_in_listing(world, up.uuid), timeout=20, what="the agent to answer again")
        with AgentClient.tcp(up.connection, timeout=10) as signed:
            assert signed.request("status")["state"] == "running"
    finally:
        agent.rlimit(psutil.RLIMIT_NOFILE, (soft, hard))
    assert "EMFILE" in log_file(world, up.uuid).read_text() or "Too many open files" in log_file(world, up.uuid).read_text()
    world("--uuid", up.uuid, "down", check=True)


def test_a_tcp_peer_that_does_not_authenticate_in_time_is_closed_and_a_signed_one_stays(world: World) -> None:
    built = build(world)
    up = up_daemon(world, str(built.path))
    key = bytes.fromhex(json.loads(up.connection.read_text())["key"])

    def opened() -> tuple[socket.socket, str]:
        sock = socket.create_connection(("127.0.0.1", up.port), timeout=10)
        hello = b""
        while not hello.endswith(b"\n"):
            hello += sock.recv(1)
        return sock, json.loads(hello)["nonce"]

    silent, _ = opened()
    dribbling, _ = opened()  # a byte now and then, never a line: no deadline per byte would catch it
    signed, nonce = opened()
    payload = protocol.Request(id=1, op="status").model_dump_json()
    envelope = protocol.Signed(seq=0, payload=payload, signature=protocol.sign(key, nonce, 0, payload))
    signed.sendall(protocol.encode(envelope))
    assert json.loads(json.loads(signed.recv(65536))["payload"])["ok"] is True
    started = time.monotonic()
    closed: dict[str, float] = {}
    for sock in (silent, dribbling, signed):
        sock.setblocking(False)
    while time.monotonic() - started < HANDSHAKE_SECONDS + 3 and len(closed) < 2:
        for name, sock in (("silent", silent), ("dribbling", dribbling)):
            if name in closed:
                continue
            try:
                if name == "dribbling":
                    sock.sendall(b"{")
                if sock.recv(65536) == b"":
                    closed[name] = time.monotonic() - started
            except BlockingIOError:
                pass
            except OSError:
                closed[name] = time.monotonic() - started
        time.sleep(0.25)
    assert set(closed) == {"silent", "dribbling"}, closed
    assert all(HANDSHAKE_SECONDS - 1 <= after <= HANDSHAKE_SECONDS + 2.5 for after in closed.values()), closed
    # The authenticated connection outlived the deadline and still works.
    signed.setblocking(True)
    payload = protocol.Request(id=2, op="status").model_dump_json()
    envelope = protocol.Signed(seq=1, payload=payload, signature=protocol.sign(key, nonce, 1, payload))
    signed.sendall(protocol.encode(envelope))
    assert json.loads(json.loads(signed.recv(65536))["payload"])["result"]["state"] == "running"
    for sock in (silent, dribbling, signed):
        sock.close()
    world("--uuid", up.uuid, "down", check=True)


# -- item 9 and item 8: SIGTTIN -----------------------------------------------------------------


def feed_bytes(world: World, uuid: str, data: bytes | Callable[[Any], None], timeout: float = 60) -> tuple[Result, int]:
    """``hera --uuid X signal SIGTTIN`` with ``data`` (or a writer of it) on standard input; its result and peak RSS in KiB."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            world.command("--uuid", uuid, "signal", "SIGTTIN"),
            env=world.env, cwd=world.workdir, stdin=subprocess.PIPE, stdout=out, stderr=err,
        )
        assert process.stdin is not None

        def write() -> None:
            try:
                if callable(data):
                    data(process.stdin)
                else:
                    process.stdin.write(data)
                process.stdin.close()
            except (BrokenPipeError, ValueError):
                pass  # the controller stopped reading (refused, or the agent went away)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            assert time.monotonic() < deadline, "hera signal SIGTTIN did not finish"
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        writer.join(10)
        out.seek(0)
        err.seek(0)
        result = Result(("signal", "SIGTTIN"), process.returncode, out.read().decode(), err.read().decode())
    return result, usage.ru_maxrss


def paused(world: World, uuid: str) -> None:
    world("--uuid", uuid, "signal", "SIGTSTP", check=True)
    wait_for(lambda: request(world, uuid, "status")["state"] == "paused", what="the agent to pause")


def test_sigttin_carries_any_bytes_and_endless_input_costs_no_memory_and_the_queue_stays_bounded(world: World) -> None:
    """Item 9 and item 8's SIGTTIN: bytes that are not UTF-8, input without end, a full queue.

    The agent is paused, so what was fed stays queued, where a snapshot shows it exactly.
    """
    built = build(world)
    up = up_daemon(world, str(built.path))
    paused(world, up.uuid)
    # Bytes that are not UTF-8 (the issue: a pydantic serialisation error) arrive exactly.
    data = b"\xff\xfe\x80 caf\xc3\xa9 \xed\xa0\x80\n\x00\x01 no newline at the end \xc3"
    result, baseline = feed_bytes(world, up.uuid, data)
    assert result.rc == 0 and result.err == f"fed {len(data)} byte(s) to {up.callsign}\n", str(result)
    _, arrays = snapshot(world, up.uuid)
    assert arrays["pending"].tobytes() == data

    # 64 MiB without a newline (the 500 MB, smaller): it goes in a chunk at a time, so the
    # queue fills to at most its limit, and as the agent is paused (it takes nothing in) that is one
    # clear line saying how much went in, never a wait for ever, and the controller never grows.
    def endless(pipe: Any) -> None:
        block = b"y" * (1 << 20)
        for _ in range(64):
            pipe.write(block)

    result, peak = feed_bytes(world, up.uuid, endless)
    refusal = one_error_line(result, "input queue is full", "paused", "SIGCONT")
    assert peak - baseline < 16 << 10, f"the controller grew by {(peak - baseline) >> 10} MiB feeding"
    queued = snapshot(world, up.uuid)[1]["pending"].tobytes()
    assert len(queued) <= INPUT_LIMIT and queued == data + b"y" * (len(queued) - len(data))
    assert f"fed {len(queued) - len(data):,} byte(s)" in refusal

    # The agent's side of it: a feed that does not fit is refused as busy, whoever sends it.
    with client(world, up.uuid) as agent, pytest.raises(HeraError, match=protocol.BUSY):
        agent.request("feed", text="z" * (INPUT_LIMIT - len(queued) + 1))
    assert snapshot(world, up.uuid)[1]["pending"].tobytes() == queued
    world("--uuid", up.uuid, "down", check=True)


def test_sigttin_waits_while_the_input_queue_is_full_and_drops_nothing(world: World) -> None:
    # Each iteration takes 0.2 ms and takes in one byte: the agent drains at most 5,000 bytes a
    # second, so input beyond the queue's limit has to wait for it, however the machine is loaded.
    built = build(world, "t.json", "--set", "seconds_per_iteration=0.0002")
    up = up_daemon(world, str(built.path))
    rng = random.Random(16)
    full = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(65535)) + b"\n" for _ in range(16)]
    beyond = [bytes(rng.choice(b"0123456789") for _ in range(7999)) + b"\n" for _ in range(2)]
    lines = full + beyond
    data = b"".join(lines)
    assert len(b"".join(full)) == INPUT_LIMIT
    result, _ = feed_bytes(world, up.uuid, data, timeout=120)
    assert result.rc == 0, str(result)
    assert result.err.startswith(f"fed {len(data):,} byte(s) to {up.callsign}"), result.err
    assert "waited" in result.err  # the queue was full, and hera waited instead of dropping or failing
    paused(world, up.uuid)
    queued = snapshot(world, up.uuid)[1]["pending"].tobytes()
    out = request(world, up.uuid, "read")
    echoed = protocol.decode_data(out["data"])
    # tick echoes each byte it takes in: what was echoed (read or dropped) and what waits is the whole input.
    assert out["dropped"] + len(echoed) + len(queued) == len(data)
    assert data.endswith(echoed + queued)
    world("--uuid", up.uuid, "down", check=True)


# -- item 8: signal racing the agent's end ------------------------------------------------------


def test_signal_racing_an_agent_that_goes_away_says_it_is_not_up_in_one_line(world: World, isolated: World) -> None:
    """``hera signal SIGHUP`` while the agent vanishes (the issue: an AssertionError, 2 in 72 against ``down``).

    The agent is a real process titled and pid-filed as an up agent, killed
    at random moments while the command runs again and again in the hera
    shell's way (``hera.cli.run``), so thousands of tries fit in seconds.
    """
    from hera import cli

    built = build(world)
    world("install", str(built.path), check=True)
    header = read_head(built.path)
    uuid, callsign = header["uuid"], header["callsign"]
    stop = threading.Event()
    rng = random.Random(8)

    def comings_and_goings() -> None:
        while not stop.is_set():
            fake = FakeAgent(callsign, uuid, "tick", "example")
            write_pid_file(runtime_of(world), uuid, fake.pid)
            time.sleep(rng.uniform(0.0, 0.05))
            fake.stop()

    churn = threading.Thread(target=comings_and_goings, daemon=True)
    churn.start()
    outcomes: dict[str, int] = {}
    deadline = time.monotonic() + 3
    tries = 0
    try:
        while time.monotonic() < deadline:
            out, err = io.StringIO(), io.StringIO()
            rc = cli.run(["--uuid", uuid[:8], "signal", "SIGHUP"], out=out, err=err)
            tries += 1
            if rc == 0:
                assert out.getvalue().startswith(f"sent SIGHUP to {callsign}"), out.getvalue()
                outcomes["sent"] = outcomes.get("sent", 0) + 1
            else:
                lines = err.getvalue().splitlines()
                assert len(lines) == 1 and lines[0].startswith("hera: ") and "Traceback" not in err.getvalue(), lines
                assert "is not up" in lines[0] or "no agent is up" in lines[0] or "went down" in lines[0], lines
                outcomes["not up"] = outcomes.get("not up", 0) + 1
    finally:
        stop.set()
        churn.join(10)
    assert outcomes.get("sent") and outcomes.get("not up"), (tries, outcomes)
