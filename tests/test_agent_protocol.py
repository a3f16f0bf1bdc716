"""The control plane of a real agent under bad input: refused, and the agent unharmed.

One daemon agent takes everything here: malformed, oversized, unknown and
mistyped requests on its unix socket; unsigned, wrongly keyed, replayed and
reflected messages on its loopback TCP port. Each is refused (a TCP peer
that fails authentication loses its connection), and afterwards the agent
still answers, is still the same process, and its iteration keeps rising.
The files that guard the control plane have the modes docs/protocol.md
promises.
"""

from __future__ import annotations

import json
import os
import socket
import stat

import psutil
import pytest

from agent_helpers import (
    build,
    cache_path,
    log_file,
    pid_file,
    reap_agents,
    request,
    runtime_dir,
    socket_path,
    tick_world,
    up_daemon,
    wait_for,
)
from hera.agent import protocol
from hera.manager.client import AgentClient


@pytest.fixture
def world(hera):
    tick_world(hera)
    yield hera
    reap_agents(hera)


class Raw:
    """A bare connection: send bytes, read lines, see when the agent hangs up."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(10)
        self.reader = sock.makefile("rb")
        self.hello = json.loads(self.reader.readline())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict | None:
        """The next reply (unwrapped if signed), or None when the agent closed the connection."""
        line = self.reader.readline()
        if not line:
            return None
        message = json.loads(line)
        return json.loads(message["payload"]) if "payload" in message else message

    def closed(self) -> bool:
        try:
            return self.reader.readline() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_bad_requests_are_refused_and_the_agent_is_unharmed(world):
    brain = build(world)
    up = up_daemon(world, "t.json")
    uuid = brain.uuid

    # -- files: private directory, private socket, private connection file ---------------------
    assert mode(runtime_dir(world)) == 0o700
    assert stat.S_ISSOCK(os.stat(socket_path(world, uuid)).st_mode) and mode(socket_path(world, uuid)) == 0o600
    assert mode(pid_file(world, uuid)) == 0o600
    assert mode(cache_path(world, uuid)) == 0o600 and mode(log_file(world, uuid)) == 0o600
    assert up.connection == runtime_dir(world) / f"{uuid}.connection.json"
    assert mode(up.connection) == 0o600
    connection = json.loads(up.connection.read_text())
    assert set(connection) == {"uuid", "pid", "transport", "ip", "port", "key", "signature_scheme", "data_port"}
    assert (connection["uuid"], connection["pid"], connection["port"]) == (uuid, up.pid, up.port)
    assert (connection["transport"], connection["ip"], connection["signature_scheme"]) == ("tcp", "127.0.0.1", "hmac-sha256")
    key = bytes.fromhex(connection["key"])
    assert len(key) == 32
    # It listens on loopback only: the control port and the data port.
    listening = [c.laddr for c in psutil.Process(up.pid).net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert sorted(listening) == sorted([("127.0.0.1", up.port), ("127.0.0.1", connection["data_port"])])

    # -- the unix socket: each bad line gets an error reply, and the connection goes on --------
    unix = socket.socket(socket.AF_UNIX)
    unix.connect(str(socket_path(world, uuid)))
    raw = Raw(unix)
    assert raw.hello["uuid"] == uuid and raw.hello["auth"] is False and raw.hello["hera"] == 1
    for line, reason in (
        (b"this is not json\n", "Invalid JSON"),
        (b"\xff\xfe\x00 binary\n", "bad request"),
        (b"[1, 2, 3]\n", "Input should be an object"),
        (b'{"id": 1, "op": "rm -rf /"}\n', "unknown operation 'rm -rf /'"),
        (b'{"id": 2, "op": "status", "extra": true}\n', "extra"),
        (b'{"id": -1, "op": "status"}\n', "id"),
        (b'{"id": 3, "op": "step", "args": {"n": "5"}}\n', "args.n"),
        (b'{"id": 4, "op": "step", "args": {"n": 1.5}}\n', "args.n"),
        (b'{"id": 5, "op": "step", "args": {"n": 0}}\n', "greater than or equal to 1"),
        (b'{"id": 6, "op": "feed", "args": {"text": 42}}\n', "args.text"),
        (b'{"id": 7, "op": "breakpoint_add", "args": {"kind": "shell", "value": "x"}}\n', "args.kind"),
        (b'{"id": 8, "op": "signal", "args": {"name": "SIGKILL"}}\n', "args.name"),
        (b'{"id": 9, "op": "status", "args": {"__class__": "os.system"}}\n', "args.__class__"),
        (b'{"id": 10, "op": "state", "args": {"names": "weights"}}\n', "args.names"),
        (b'{"id": 11, "op": "state", "args": {"names": ["../../etc/passwd"]}}\n', "no state array"),
        (b'{"id": 12, "op": "feed", "args": {"text": "' + b"y" * (70 * 1024) + b'"}}\n', "more than 65536 bytes"),
        (b'{"id": 13, "op": "status", "args": {"pad": "' + b"z" * (protocol.MAX_MESSAGE + 10) + b'"}}\n', "larger than"),
    ):
        raw.send(line)
        reply = raw.reply()
        assert reply is not None and reply["ok"] is False and reason in reply["error"], (line[:80], reply)
    raw.send(b'{"id": 20, "op": "status"}\n')
    assert raw.reply()["result"]["uuid"] == uuid  # the same connection still works
    # A line with no end, longer than any message may be: refused, and this connection closed.
    raw.send(b"{" + b"a" * (2 * protocol.MAX_MESSAGE + 16))
    reply = raw.reply()
    assert reply is not None and reply["error"] == "message too large"
    assert raw.closed()
    raw.close()
    # Half a message, then gone; a connection that says nothing at all.
    for data in (b'{"id": 1, "op": "sta', b""):
        half = socket.socket(socket.AF_UNIX)
        half.connect(str(socket_path(world, uuid)))
        half.sendall(data)
        half.close()

    # -- the TCP port: every message signed, or the connection is closed -----------------------
    def tcp() -> Raw:
        return Raw(socket.create_connection(("127.0.0.1", up.port), timeout=10))

    def signed(nonce: str, seq: int, message: dict, *, with_key: bytes = key, direction: str = protocol.REQUEST) -> bytes:
        payload = json.dumps(message)
        signature = protocol.sign(with_key, nonce, seq, payload, direction)
        return json.dumps({"seq": seq, "payload": payload, "signature": signature}).encode() + b"\n"

    status = {"id": 1, "op": "status"}
    for make, reason in (
        (lambda nonce: json.dumps(status).encode() + b"\n", "unsigned or malformed message"),
        (lambda nonce: signed(nonce, 0, status, with_key=os.urandom(32)), "bad signature"),
        (lambda nonce: signed("another connection's nonce", 0, status), "bad signature"),
        # an agent's signed reply sent back to it as a request: the direction is signed too
        (lambda nonce: signed(nonce, 0, status, direction=protocol.REPLY), "bad signature"),
        (lambda nonce: b'{"seq": 0, "payload": "x", "signature": "' + b"0" * 64 + b'"}\n', "bad signature"),
        (lambda nonce: b"z" * (2 * protocol.MAX_MESSAGE + 16), "message too large"),
    ):
        peer = tcp()
        assert peer.hello["auth"] is True and peer.hello["uuid"] == uuid
        peer.send(make(peer.hello["nonce"]))
        reply = peer.reply()
        assert reply is not None and reply["ok"] is False and reason in reply["error"], reply
        assert peer.closed(), reason
        peer.close()

    # A replayed message: the first is answered, the same sequence number again is refused.
    peer = tcp()
    message = signed(peer.hello["nonce"], 0, status)
    peer.send(message)
    assert peer.reply()["ok"] is True
    peer.send(message)
    assert "replayed message" in peer.reply()["error"]
    assert peer.closed()
    peer.close()
    # A correctly signed but invalid request is refused like on the unix socket, and closes too.
    peer = tcp()
    peer.send(signed(peer.hello["nonce"], 0, {"id": 1, "op": "step", "args": {"n": "many"}}))
    assert "args.n" in peer.reply()["error"]
    assert peer.closed()
    peer.close()

    # -- and the agent is unharmed --------------------------------------------------------------
    with AgentClient.tcp(up.connection) as signed_client:
        first = signed_client.request("status")
        assert first["state"] == "running" and first["pid"] == up.pid and first["tcp_port"] == up.port
        wait_for(lambda: signed_client.request("status")["iteration"] > first["iteration"], what="iterations")
    assert request(world, uuid, "status")["pid"] == up.pid
    assert psutil.Process(up.pid).is_running()
    log = log_file(world, uuid).read_text()
    assert "refused a tcp message: bad signature" in log and "Traceback" not in log
    world("down", check=True)
