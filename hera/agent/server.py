"""The agent's control server: sockets on threads, requests handed to the inner loop.

Taichi is not thread-safe, so nothing here touches the brain. Connection
threads parse and validate requests and put them on the inbox that the inner
loop drains between batches; ``status`` is answered at once from a snapshot
the loop publishes, so it comes back within milliseconds however long a batch
runs. One controller at a time holds the prompt (``attach``); any number may
watch.

Who holds the prompt is the truth behind MODE: ``attached`` while a holder's
connection is open, else ``daemon`` (upped with ``--daemon``) or
``detached``. The holder is released by its ``detach``, by its connection
closing, by SIGHUP and SIGCONT (:meth:`ControlServer.release`) and by a
forced ``attach`` of another controller. What others do to the agent while a
controller holds it (a signal, a request on another connection, taking the
prompt) is queued on the holder's connection as events, at most
``MAX_EVENTS``, and handed to it with its next ``status``
(docs/protocol.md, "Holding the prompt").

Anyone on the host can open connections to a loopback port, and the agent's
own user can open as many to its unix socket as they like, so what a
connection can cost the agent is bounded (docs/protocol.md, "Limits"):

* a TCP connection is *handshaking* until it sends a validly signed message:
  at most ``MAX_HANDSHAKING`` at once (a new one closes the oldest), each for
  at most ``HANDSHAKE_SECONDS``, and its first line may be at most
  ``HANDSHAKE_LINE`` bytes, so a peer without the key holds a few descriptors
  and a little memory for a few seconds, never the agent;
* *established* connections (a unix peer whose uid SO_PEERCRED vouched for, a
  TCP peer that signed a message) are at most ``MAX_ESTABLISHED``; a new one
  closes the one idle longest, so the owner's next ``hera`` always gets in;
* the accept loops never end on an error: EMFILE, ENFILE, ECONNABORTED or
  anything else is logged, waited out with a growing back-off, and accepting
  goes on.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hera.agent import protocol
from hera.agent.protocol import ProtocolError, Reply, Request

log = logging.getLogger("hera.agent")

#: Requests a connection may have waiting in the inbox; beyond it the client is told to slow down.
MAX_PENDING = 64
#: TCP connections that have not yet sent a validly signed message; a new one beyond it closes the oldest.
MAX_HANDSHAKING = 64
#: Seconds a TCP connection has to send its first validly signed message before it is closed.
HANDSHAKE_SECONDS = 5.0
#: The longest line a peer that has not authenticated may send (a signed request of any usual size fits).
HANDSHAKE_LINE = 256 * 1024
#: Authenticated connections (unix peers of the agent's uid, TCP peers that signed); a new one closes the idlest.
MAX_ESTABLISHED = 192
#: Pending connections the kernel keeps for accept(): a burst waits there instead of being refused.
BACKLOG = 128
#: accept() failed: wait this long first, doubling up to the second figure, then try again.
ACCEPT_BACKOFF = (0.01, 0.5)
#: How often handshakes past their deadline are looked for.
REAP_SECONDS = 0.25
#: A warning that a peer can provoke is logged at most this often (per kind), with a count of the rest.
WARN_SECONDS = 5.0
#: Events kept for the controller holding the prompt until its next ``status``; older ones are dropped.
MAX_EVENTS = 32


def _unread_line(sock: socket.socket) -> bool:
    """Whether the peer has sent the end of a line that no thread has read yet (looked at, not taken)."""
    try:
        return b"\n" in sock.recv(64 * 1024, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # nothing waiting (EAGAIN), or the socket is gone
        return False


class Warnings:
    """Logs a warning that a peer can provoke at most once per ``WARN_SECONDS`` per kind: a flood must not rotate the log away."""

    def __init__(self) -> None:
        #: By kind: when last logged, and how many were kept quiet since.
        self._warned: dict[str, tuple[float, int]] = {}

    def __call__(self, key: str, message: str) -> None:
        now = time.monotonic()
        last, quiet = self._warned.get(key, (0.0, 0))
        if last and now - last < WARN_SECONDS:
            self._warned[key] = (last, quiet + 1)
            return
        if len(self._warned) > 256:  # keys carry refusal texts: keep the table small
            self._warned.clear()
        self._warned[key] = (now, 0)
        log.warning("%s%s", message, f" (and {quiet} more like it since the last)" if quiet else "")


def accept_forever(
    listener: socket.socket,
    kind: str,
    stop: threading.Event,
    admit: Callable[[socket.socket, str], None],
    warn: Callable[[str, str], None],
    shed: Callable[[OSError], None],
) -> None:
    """Accept for as long as the agent lives: an error is waited out, never the end of the thread.

    The issue this answers: ~1,100 connections made accept() fail with
    EMFILE, which ended the thread, and the owner's ``hera`` then waited
    in vain until the agent died. ``shed`` may close a connection to free a
    descriptor; ``stop`` set (and the listener closed) is the only way out.
    Shared by the control port and the data port (:mod:`hera.agent.dataport`).
    """
    delay = ACCEPT_BACKOFF[0]
    failing = False
    while not stop.is_set():
        try:
            sock, _ = listener.accept()
        except OSError as exc:
            if stop.is_set():
                return  # the listener was closed under us: the only way out
            if not failing:  # one line per streak of failures, not one per retry
                warn(f"accept-{kind}", f"accept on the {kind} socket failed ({exc}); retrying")
                failing = True
            shed(exc)
            stop.wait(delay)
            delay = min(delay * 2, ACCEPT_BACKOFF[1])
            continue
        except Exception:  # noqa: BLE001 - the thread must outlive any surprise
            log.exception("accept on the %s socket failed", kind)
            stop.wait(ACCEPT_BACKOFF[1])
            continue
        if failing:
            log.info("accepting on the %s socket again", kind)
        delay, failing = ACCEPT_BACKOFF[0], False
        admit(sock, kind)


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


@dataclass(eq=False)  # compared and hashed by identity: connections live in a set
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
    #: When it was accepted, and when it last sent a message (monotonic): who is evicted first.
    accepted: float = field(default_factory=time.monotonic)
    active: float = field(default_factory=time.monotonic)
    #: A unix peer vouched for by SO_PEERCRED, or a TCP peer that sent a validly signed message.
    authenticated: bool = False
    #: The peer's pid (SO_PEERCRED) on the unix socket; a TCP peer's is not known.
    peer_pid: int | None = None
    #: What others did while this connection held the prompt, for its next ``status`` (appended and
    #: popped whole: atomic in CPython, so the loop's thread and the connection's need no lock).
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))

    @property
    def who(self) -> str:
        """How an event names this peer: ``pid 1234``, or ``a TCP client``."""
        return f"pid {self.peer_pid}" if self.peer_pid is not None else f"a {self.kind.upper()} client"

    def drain_events(self) -> list[dict[str, Any]]:
        return [self.events.popleft() for _ in range(len(self.events))]

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
        #: Upped with --daemon (it serves TCP): MODE is ``daemon`` rather than ``detached`` while unheld.
        self.daemon = tcp
        self.holder: Connection | None = None  # the controller holding the prompt
        #: Called (on whichever thread changed it) when the holder changes: the status file is rewritten.
        self.on_change: Callable[[], None] = lambda: None
        self._stop = threading.Event()
        #: Every open connection. Registered, shut down and closed only under ``_guard``, so a
        #: shutdown never reaches a descriptor number that a closed socket left for reuse.
        self._connections: set[Connection] = set()
        self._guard = threading.Lock()
        self._warn = Warnings()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            unix.bind(str(socket_path))
        finally:
            os.umask(old)
        unix.listen(BACKLOG)
        self.listeners.append((unix, "unix"))
        self.tcp_port: int | None = None
        if tcp:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((tcp_host, 0))
            server.listen(BACKLOG)
            self.tcp_port = server.getsockname()[1]
            self.listeners.append((server, "tcp"))

    def start(self) -> None:
        for listener, kind in self.listeners:
            threading.Thread(
                target=accept_forever, args=(listener, kind, self._stop, self._admit, self._warn, self._shed_for),
                daemon=True, name=f"hera-accept-{kind}",
            ).start()
        if any(kind == "tcp" for _, kind in self.listeners):
            threading.Thread(target=self._reap, daemon=True, name="hera-reaper").start()

    def close(self) -> None:
        self._stop.set()
        for listener, _ in self.listeners:
            with contextlib.suppress(OSError):
                listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _shed_for(self, exc: OSError) -> None:
        """Out of descriptors: close the oldest handshake, whose peer has proved nothing, to make room."""
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            with self._guard:
                waiting = [c for c in self._connections if not c.authenticated and not c.closed]
                if waiting:
                    self._evict(min(waiting, key=lambda c: c.accepted))

    def _admit(self, sock: socket.socket, kind: str) -> None:
        """Register a new connection (closing whom the caps say) and give it a thread of its own."""
        conn = Connection(sock, kind)
        try:
            if kind == "unix":
                peer = self._peer(sock)
                if peer is None:
                    self._warn("peer", "refused a unix connection from another user")
                    sock.close()
                    return
                conn.authenticated, conn.peer_pid = True, peer
            with self._guard:
                self._make_room(conn)
                self._connections.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="hera-conn").start()
        except Exception as exc:  # noqa: BLE001 - no thread to be had (RuntimeError), a socket gone: drop this one
            log.warning("dropped a %s connection: %s", kind, exc)
            self._forget(conn)

    def _make_room(self, conn: Connection) -> None:
        """Keep each kind of connection within its cap by closing the one that has waited or idled longest."""
        same = [c for c in self._connections if c.authenticated == conn.authenticated and not c.closed]
        cap = MAX_ESTABLISHED if conn.authenticated else MAX_HANDSHAKING
        while len(same) >= cap:
            victim = min(same, key=lambda c: c.active if c.authenticated else c.accepted)
            same.remove(victim)
            what = "established connections" if conn.authenticated else "connections that have not authenticated"
            self._warn(f"cap-{conn.authenticated}", f"closed the {victim.kind} connection that waited longest: at most {cap} {what}")
            self._evict(victim)

    def _evict(self, conn: Connection) -> None:
        """Wake the connection's thread with a shutdown; it closes the socket (the caller holds ``_guard``)."""
        conn.closed = True
        if conn in self._connections:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def _forget(self, conn: Connection) -> None:
        conn.closed = True
        with self._guard:
            self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.sock.close()

    def _authenticated(self, conn: Connection) -> None:
        """A TCP peer signed a message: it leaves the handshakes for the established connections."""
        with self._guard:
            conn.authenticated = True
            self._connections.discard(conn)
            self._make_room(conn)
            self._connections.add(conn)

    def _reap(self) -> None:
        """Close handshakes past their deadline, however busy (or slowly dribbling) their peer is."""
        while not self._stop.wait(REAP_SECONDS):
            now = time.monotonic()
            with self._guard:
                for conn in [c for c in self._connections if not c.authenticated and not c.closed]:
                    waited = now - conn.accepted
                    # A kernel holds the GIL for a whole batch (or a long iteration), so a whole line may
                    # have arrived that no thread could read yet: it gets up to twice the deadline.
                    if waited > HANDSHAKE_SECONDS and (waited > 2 * HANDSHAKE_SECONDS or not _unread_line(conn.sock)):
                        self._warn("deadline", f"closed a {conn.kind} connection that did not authenticate within {HANDSHAKE_SECONDS:g} s")
                        self._evict(conn)

    def _peer(self, sock: socket.socket) -> int | None:
        """The peer's pid, if it may use the unix socket: only the agent's own user (or root), besides its 0600 mode."""
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
        pid, uid, _ = struct.unpack("3i", creds)
        return pid if uid in (os.getuid(), 0) else None

    def _serve(self, conn: Connection) -> None:
        sock, kind = conn.sock, conn.kind
        try:
            nonce = secrets.token_hex(16)
            sock.sendall(protocol.hello(nonce, self.uuid, auth=kind == "tcp", key=self.key))
            if kind == "tcp":
                conn.verifier = protocol.Verifier(self.key, nonce)
                conn.key, conn.nonce = self.key, nonce
            reader = sock.makefile("rb")
            while not self._stop.is_set() and not conn.closed:
                # Until it has authenticated, a peer may not make the agent buffer a big line.
                limit = protocol.MAX_MESSAGE * 2 if conn.authenticated else HANDSHAKE_LINE
                line = reader.readline(limit + 2)
                if not line:
                    return
                if not line.endswith(b"\n"):
                    conn.send(Reply(id=0, ok=False, error="message too large"))
                    return
                try:
                    payload = conn.verifier.open(line) if conn.verifier else line
                    if not conn.authenticated:  # the signature is good: this peer holds the key
                        self._authenticated(conn)
                    request = protocol.decode_request(payload)
                except ProtocolError as exc:
                    self._warn(f"refused-{kind}-{str(exc).partition(':')[0]}", f"refused a {kind} message: {exc}")
                    conn.send(Reply(id=0, ok=False, error=str(exc)))
                    if conn.verifier is not None:
                        return  # an unauthenticated peer gets no second try on this connection
                    continue
                conn.active = time.monotonic()
                self._dispatch(conn, request)
        except OSError:
            return
        finally:
            self._forget(conn)
            if self.holder is conn:  # its controller let go by closing (Ctrl-C Ctrl-C, its terminal killed)
                self.holder = None
                self.on_change()

    def _dispatch(self, conn: Connection, request: Request) -> None:
        if request.op in ("hello", "status"):
            conn.send(Reply(id=request.id, ok=True, result=self.status(conn, events=request.op == "status")))
            return
        if request.op == "attach":
            held = self.holding()
            if held is not None and held is not conn:
                if not (isinstance(request.parsed, protocol.AttachArgs) and request.parsed.force):
                    conn.send(Reply(id=request.id, ok=False, error="another controller holds the prompt"))
                    return
                self.tell(held, "detached", f"{conn.who} took the prompt")
            self.holder = conn
            if held is not conn:
                self.on_change()
        if request.op == "detach" and self.holder is conn:
            self.holder = None
            self.on_change()
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

    # -- who holds the prompt ----------------------------------------------------------------------

    def holding(self) -> Connection | None:
        """The connection holding the prompt, if it is still open."""
        holder = self.holder
        return holder if holder is not None and not holder.closed else None

    def presence(self) -> dict[str, Any]:
        """MODE and who holds the agent, as they are now (never remembered from how it was upped)."""
        holder = self.holding()
        mode = "attached" if holder is not None else "daemon" if self.daemon else "detached"
        return {"mode": mode, "holder_pid": holder.peer_pid if holder is not None else None, "attached": holder is not None}

    def tell(self, conn: Connection, event: str, by: str, iteration: int | None = None) -> None:
        """Queue an event for ``conn`` (the holder, or the one just released), read with its next ``status``."""
        at = self.snapshot.get("iteration") if iteration is None else iteration
        conn.events.append({"event": event, "by": by, "iteration": at})

    def notify(self, event: str, by: str, iteration: int, source: Connection | None = None) -> None:
        """The loop's state changed by ``by``: the holder hears of it, unless the request was its own."""
        holder = self.holding()
        if holder is not None and holder is not source:
            self.tell(holder, event, by, iteration)

    def release(self, by: str, iteration: int) -> None:
        """SIGHUP or SIGCONT: the spec has them detach the terminal; its holder is told so."""
        holder = self.holding()
        self.holder = None
        if holder is not None:
            self.tell(holder, "detached", by, iteration)
            self.on_change()

    def status(self, conn: Connection | None = None, *, events: bool = False) -> dict[str, Any]:
        """The loop's snapshot with MODE and the holder now; for ``conn``, whether it holds, and its events."""
        answer = dict(self.snapshot, **self.presence())
        if conn is not None:
            answer["you_hold"] = self.holding() is conn
            if events:
                answer["events"] = conn.drain_events()
        return answer
