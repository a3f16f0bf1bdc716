"""The agent's control server: sockets on threads, requests handed to the inner loop.

Taichi is not thread-safe, so nothing here touches the brain. Connection
threads parse and validate requests and put them on the inbox that the inner
loop drains between batches; ``status`` is answered at once from a snapshot
the loop publishes, so it comes back within milliseconds however long a batch
runs. One controller at a time holds the prompt (``attach``); any number may
watch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hera.agent import protocol
from hera.agent.protocol import ProtocolError, Reply, Request

log = logging.getLogger("hera.agent")

#: Requests a connection may have waiting in the inbox; beyond it the client is told to slow down.
MAX_PENDING = 64


@dataclass
class Call:
    """One request on its way to the inner loop, and how to answer it."""

    request: Request
    respond: Callable[[Reply], None]
    connection: Connection | None = None

    def ok(self, result: Any = None) -> None:
        self.respond(Reply(id=self.request.id, ok=True, result=result))

    def fail(self, error: str) -> None:
        self.respond(Reply(id=self.request.id, ok=False, error=error))


@dataclass
class Connection:
    sock: socket.socket
    kind: str  # "unix" | "tcp"
    verifier: protocol.Verifier | None = None
    key: bytes | None = None
    nonce: str = ""
    send_seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: int = 0
    closed: bool = False

    def send(self, reply: Reply) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                if self.key is not None:
                    data = protocol.wrap(self.key, self.nonce, self.send_seq, reply, protocol.REPLY)
                    self.send_seq += 1
                else:
                    data = protocol.encode(reply)
                self.sock.sendall(data)
            except OSError:
                self.closed = True


class ControlServer:
    """Listens on the unix socket (and loopback TCP in daemon mode) and feeds the inbox."""

    def __init__(self, uuid: str, socket_path: Path, *, tcp: bool, key: bytes, tcp_host: str = "127.0.0.1") -> None:
        self.uuid = uuid
        self.inbox: queue.Queue[Call] = queue.Queue()
        self.snapshot: dict[str, Any] = {}
        self.key = key
        self.socket_path = socket_path
        self.listeners: list[tuple[socket.socket, str]] = []
        self.holder: Connection | None = None  # the controller holding the prompt
        self._stop = threading.Event()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            unix.bind(str(socket_path))
        finally:
            os.umask(old)
        unix.listen(16)
        self.listeners.append((unix, "unix"))
        self.tcp_port: int | None = None
        if tcp:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((tcp_host, 0))
            server.listen(16)
            self.tcp_port = server.getsockname()[1]
            self.listeners.append((server, "tcp"))

    def start(self) -> None:
        for listener, kind in self.listeners:
            threading.Thread(target=self._accept, args=(listener, kind), daemon=True, name=f"hera-accept-{kind}").start()

    def close(self) -> None:
        self._stop.set()
        for listener, _ in self.listeners:
            with contextlib.suppress(OSError):
                listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _accept(self, listener: socket.socket, kind: str) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock, kind), daemon=True, name="hera-conn").start()

    def _peer_allowed(self, sock: socket.socket) -> bool:
        """Only the agent's own user may use the unix socket (besides its 0600 mode)."""
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return False
        _, uid, _ = struct.unpack("3i", creds)
        return uid in (os.getuid(), 0)

    def _serve(self, sock: socket.socket, kind: str) -> None:
        conn = Connection(sock, kind)
        try:
            if kind == "unix" and not self._peer_allowed(sock):
                log.warning("refused a unix connection from another user")
                return
            nonce = secrets.token_hex(16)
            sock.sendall(protocol.hello(nonce, self.uuid, auth=kind == "tcp"))
            if kind == "tcp":
                conn.verifier = protocol.Verifier(self.key, nonce)
                conn.key, conn.nonce = self.key, nonce
            reader = sock.makefile("rb")
            while not self._stop.is_set():
                line = reader.readline(protocol.MAX_MESSAGE * 2 + 2)
                if not line:
                    return
                if not line.endswith(b"\n"):
                    conn.send(Reply(id=0, ok=False, error="message too large"))
                    return
                try:
                    payload = conn.verifier.open(line) if conn.verifier else line
                    request = protocol.decode_request(payload)
                except ProtocolError as exc:
                    log.warning("refused a %s message: %s", kind, exc)
                    conn.send(Reply(id=0, ok=False, error=str(exc)))
                    if conn.verifier is not None:
                        return  # an unauthenticated peer gets no second try on this connection
                    continue
                self._dispatch(conn, request)
        except OSError:
            return
        finally:
            conn.closed = True
            if self.holder is conn:
                self.holder = None
            with contextlib.suppress(OSError):
                sock.close()

    def _dispatch(self, conn: Connection, request: Request) -> None:
        if request.op in ("hello", "status"):
            conn.send(Reply(id=request.id, ok=True, result=self.status()))
            return
        if request.op == "attach":
            force = bool(request.args.get("force"))
            if self.holder is not None and self.holder is not conn and not self.holder.closed and not force:
                conn.send(Reply(id=request.id, ok=False, error="another controller holds the prompt"))
                return
            self.holder = conn
        if request.op == "detach" and self.holder is conn:
            self.holder = None
        with conn.lock:
            busy = conn.pending >= MAX_PENDING
            if not busy:
                conn.pending += 1
        if busy:
            conn.send(Reply(id=request.id, ok=False, error="too many requests in flight"))
            return

        def respond(reply: Reply) -> None:
            with conn.lock:  # answered on the loop's thread, counted on the connection's
                conn.pending -= 1
            conn.send(reply)

        self.inbox.put(Call(request, respond, conn))

    def status(self) -> dict[str, Any]:
        return dict(self.snapshot, attached=self.holder is not None and not self.holder.closed)
