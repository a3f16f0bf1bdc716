"""The daemon's data port: raw bytes in, one JSON record per unit out, for any program that has the connection file.

The control port speaks signed JSON requests, which a program must
reimplement hera's client to use. The data port, opened beside it in daemon
mode (loopback unless ``tcp_host`` says otherwise), takes a one-line
handshake proving the peer holds the same key, and then carries the stream
itself: whatever bytes the peer sends are fed to the brain as units, and for
each unit *this connection* fed the peer gets one line
``{"iteration": I, "unit": U, "output": O or null}``, in order. The wire
format is in docs/protocol.md ("The data port"); docs/examples/data_client.py
is a client in a few lines of plain Python.

Taichi is not thread-safe, so a connection's threads never touch the brain:
units reach it through :meth:`Runner.call_soon` and :meth:`Runner.feed_units`,
and the brain's records come back through the connection's *sink*, called on
the loop's thread, which only appends them for the connection's writer.

**Back-pressure.** A connection reads from its socket only while the agent
can take more: while the input queue is full (:class:`Busy`) it waits and
offers the same bytes again, and it never has more than ``WINDOW`` units fed
whose records it has not yet sent. So TCP flow control holds a producer
faster than the brain (or one that does not read its records), and what the
agent holds for a connection is bounded, whatever the peer does.

**Ends.** The last line a connection gets says why it ends and how far it
got: ``{"end": "done" | "down" | "error", "fed": N, "records": M}``. ``fed`` is
exactly how many of the peer's bytes the agent accepted (the first N it
sent), ``records`` how many records this connection was sent. After
``down`` the units fed and not yet presented are saved with the agent's
state; their records, once it is up again, go to the control ``read``, as do
those of a connection that closed before its units were presented.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hera.agent import protocol
from hera.agent.runner.records import Busy, Sink
from hera.agent.server import BACKLOG, Warnings, accept_forever

if TYPE_CHECKING:
    from hera.agent.runner import Runner

log = logging.getLogger("hera.agent")

#: The hello's ``hera`` field: this is a data port, not the control protocol.
KIND = "data"
#: Bytes read from the socket and fed at once (the size of a control ``feed``).
CHUNK = 1 << 16
#: Units a connection may have fed whose records it has not sent yet; past it, it reads no more.
WINDOW = 1 << 17
#: Seconds a new connection has to send its authentication line, and how long that line may be.
AUTH_SECONDS = 5.0
AUTH_LINE = 256
#: Connections still authenticating; a new one beyond it closes the oldest.
MAX_HANDSHAKING = 32
#: Authenticated connections; a new one beyond it is refused (a stream is never cut for another).
MAX_STREAMS = 16
#: While the input queue is full: wait this long before offering the bytes again, doubling up to the second.
BUSY_WAIT = (0.005, 0.1)
#: How long a connection's thread waits for the loop between looks at whether the agent is leaving.
POLL_SECONDS = 0.5
#: When the agent goes down, the records already made are sent within this many seconds (all connections).
FLUSH_SECONDS = 2.0


def digest(key: bytes, word: bytes, nonce: str) -> str:
    """The hex HMAC-SHA256 under ``key`` of ``word + b"\\0" + nonce``: the peer's ``data``, the agent's proof ``agent``."""
    return hmac.new(key, word + b"\0" + nonce.encode("ascii"), hashlib.sha256).hexdigest()


def line(message: dict[str, Any]) -> bytes:
    return (json.dumps(message) + "\n").encode()


#: After a refusal, how long and how much of what the peer still sends is read and dropped.
DRAIN = (0.5, 1 << 20)


def refuse(sock: socket.socket, error: str) -> None:
    """Say why, then close so that the peer reads it: a lingering close, as HTTP servers do.

    Closing a socket with unread bytes in it (the peer sent its data right
    after its line) makes the kernel send a reset, which throws away the
    refusal before the peer reads it. So the write side is shut after the
    line, and what the peer still sends is read and dropped until it closes
    its side, for at most ``DRAIN`` (seconds, bytes).
    """
    sock.sendall(line({"ok": False, "error": error}))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        deadline, left = time.monotonic() + DRAIN[0], DRAIN[1]
        while left > 0 and (wait := deadline - time.monotonic()) > 0:
            sock.settimeout(wait)
            got = sock.recv(min(left, CHUNK))
            if not got:
                return
            left -= len(got)


@dataclass(eq=False)  # compared and hashed by identity: connections live in a set
class Stream:
    """One data connection: what it fed, what it was sent, and the records waiting for its writer."""

    sock: socket.socket
    accepted: float = field(default_factory=time.monotonic)
    authenticated: bool = False
    #: Shut down to make room (its thread closes it): no longer counted against the caps.
    dropped: bool = False
    #: Units the agent accepted from this connection (written on the loop's thread only).
    fed: int = 0
    #: Records written to the socket (by the writer thread only).
    sent: int = 0
    #: Records from the sink as JSON lines, oldest first, and how many each holds, for the writer.
    waiting: deque[tuple[bytes, int]] = field(default_factory=deque)
    changed: threading.Condition = field(default_factory=threading.Condition)
    #: The peer sent its last byte (it half-closed, or went): no more units will be fed.
    eof: bool = False
    #: Why it ends, once it does: ``done``, ``down`` or ``error`` (with ``error``), or ``gone`` (the peer went).
    end: str | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        #: The one sink object this stream's units are fed with: the runner tells sinks apart by identity.
        self.sink: Sink = self._receive

    def _receive(self, records: list[dict[str, Any]]) -> None:
        """On the loop's thread, the records of this stream's units: formatted (bounded memory) and queued, never sent here."""
        data = protocol.record_lines(records).encode("ascii")
        with self.changed:
            self.waiting.append((data, len(records)))
            self.changed.notify_all()

    def finish(self, end: str, error: str | None = None) -> None:
        """Tell the writer to end the stream (the first reason given stands)."""
        with self.changed:
            if self.end is None:
                self.end, self.error = end, error
            self.changed.notify_all()


class DataPort:
    """Listens on the data port and runs each connection's stream against the runner's loop."""

    def __init__(self, uuid: str, key: bytes, host: str = "127.0.0.1") -> None:
        self.uuid = uuid
        self.key = key
        self.runner: Runner | None = None
        self._stop = threading.Event()
        self._warn = Warnings()
        self._streams: set[Stream] = set()
        self._guard = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(BACKLOG)
        self.port: int = self.listener.getsockname()[1]

    def start(self, runner: Runner) -> None:
        self.runner = runner
        threading.Thread(
            target=accept_forever, args=(self.listener, "data", self._stop, self._admit, self._warn, self._shed),
            daemon=True, name="hera-accept-data",
        ).start()

    def close(self, reason: str = "down") -> None:
        """The loop has ended: accept no more, send every stream the records already made and its end line.

        Called after :meth:`Runner.loop` returned, so no unit is fed any more
        and each stream's ``fed`` is final. A peer that does not read cannot
        hold the agent: what is not sent within ``FLUSH_SECONDS`` is not sent.
        """
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._guard:
            streams = list(self._streams)
        for stream in streams:
            stream.finish(reason)
            with contextlib.suppress(OSError):
                stream.sock.shutdown(socket.SHUT_RD)  # wakes its reader
        deadline = time.monotonic() + FLUSH_SECONDS
        for stream in streams:
            stream.finished.wait(max(0.0, deadline - time.monotonic()))
        with self._guard:
            for stream in self._streams:
                with contextlib.suppress(OSError):
                    stream.sock.shutdown(socket.SHUT_RDWR)

    # -- connections ---------------------------------------------------------------------------------

    def _shed(self, exc: OSError) -> None:
        """Out of descriptors: close the oldest connection still authenticating."""
        with self._guard:
            waiting = self._handshaking()
            if waiting:
                self._drop(min(waiting, key=lambda s: s.accepted))

    def _handshaking(self) -> list[Stream]:
        return [s for s in self._streams if not s.authenticated and not s.dropped]

    def _drop(self, stream: Stream) -> None:
        """Wake the stream's threads with a shutdown; they close it (the caller holds ``_guard``)."""
        stream.dropped = True
        with contextlib.suppress(OSError):
            stream.sock.shutdown(socket.SHUT_RDWR)

    def _admit(self, sock: socket.socket, kind: str) -> None:
        stream = Stream(sock)
        try:
            with self._guard:
                waiting = self._handshaking()
                if len(waiting) >= MAX_HANDSHAKING:
                    self._warn("data-cap", f"closed the data connection that waited longest: at most {MAX_HANDSHAKING} authenticating")
                    self._drop(min(waiting, key=lambda s: s.accepted))
                self._streams.add(stream)
            threading.Thread(target=self._serve, args=(stream,), daemon=True, name="hera-data").start()
        except Exception as exc:  # noqa: BLE001 - no thread to be had, a socket gone: drop this one
            log.warning("dropped a data connection: %s", exc)
            self._forget(stream)

    def _forget(self, stream: Stream) -> None:
        """Shut down (waking a thread blocked on it), then close, under the guard as the control server does."""
        with self._guard:
            self._streams.discard(stream)
            with contextlib.suppress(OSError):
                stream.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                stream.sock.close()
        stream.finished.set()

    def _serve(self, stream: Stream) -> None:
        """The handshake, then this thread reads and feeds while a writer thread sends the records."""
        try:
            first = self._handshake(stream)
        except OSError:
            first = None
        if first is None:
            self._forget(stream)
            return
        writer = threading.Thread(target=self._write, args=(stream,), daemon=True, name="hera-data-out")
        writer.start()
        try:
            self._read(stream, first)
        except OSError:
            pass  # the peer went: the writer finds out when it sends
        except Exception as exc:  # noqa: BLE001 - a stream's trouble must never be the agent's
            log.exception("a data connection failed")
            stream.finish("error", f"{type(exc).__name__}: {exc}")
        with stream.changed:
            stream.eof = True
            stream.changed.notify_all()

    def _handshake(self, stream: Stream) -> bytes | None:
        """Hello, proof, the peer's line: the bytes it sent after that line, or None (refused, told why)."""
        sock = stream.sock
        nonce = secrets.token_hex(16)
        hello = {"hera": KIND, "uuid": self.uuid, "nonce": nonce, "proof": digest(self.key, b"agent", nonce)}
        sock.sendall(line(hello))
        deadline = time.monotonic() + AUTH_SECONDS
        got = b""
        while b"\n" not in got and len(got) <= AUTH_LINE:
            # Past the deadline only when nothing came: a batch holding the GIL must not cost a peer whose line is there.
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                more = sock.recv(AUTH_LINE + 1 - len(got))
            except TimeoutError:
                self._warn("data-deadline", f"closed a data connection that did not authenticate within {AUTH_SECONDS:g} s")
                return None
            if not more:
                return None
            got += more
        sock.settimeout(None)
        answer, _, rest = got.partition(b"\n")
        expected = digest(self.key, b"data", nonce).encode()
        if not hmac.compare_digest(answer.strip(), expected):
            self._warn("data-key", "refused a data connection: its line is not the key's HMAC of the nonce")
            refuse(sock, "wrong key: the line must be the hex HMAC-SHA256 of \"data\\0\" + nonce")
            return None
        refusal = self._admissible(stream)
        if refusal is not None:
            refuse(sock, refusal)
            return None
        sock.sendall(line({"ok": True}))
        return rest

    def _admissible(self, stream: Stream) -> str | None:
        """Why an authenticated peer cannot stream now (too many streams, a family without input), or None."""
        with self._guard:
            streams = sum(1 for s in self._streams if s.authenticated)
            if streams >= MAX_STREAMS:
                return f"too many data connections ({MAX_STREAMS}); close one"
            stream.authenticated = True
        assert self.runner is not None
        runner = self.runner
        try:  # feeding nothing asks the family whether it takes input at all
            self._on_loop(lambda: runner.feed_units(b""))
        except Busy:
            pass
        except Exception as exc:  # noqa: BLE001 - the family's one line, or the agent going down
            return str(exc)
        return None

    def _on_loop(self, fn: Any) -> Any:
        """Run ``fn`` on the loop's thread and wait for it; RuntimeError once the agent is leaving."""
        assert self.runner is not None
        future = self.runner.call_soon(fn)
        while True:
            try:
                return future.result(timeout=POLL_SECONDS)
            except TimeoutError:
                if self._stop.is_set():
                    future.cancel()
                    raise RuntimeError("the agent is going down") from None

    def _read(self, stream: Stream, first: bytes) -> None:
        """Read while there is room in the window, feed every chunk (waiting while the queue is full), until EOF."""
        data = first
        while stream.end is None:
            with stream.changed:
                while stream.fed - stream.sent > WINDOW - CHUNK and stream.end is None:
                    stream.changed.wait(POLL_SECONDS)
            if stream.end is not None:
                return
            if not data:
                data = stream.sock.recv(CHUNK)
                if not data:
                    return  # the peer has sent everything
            if not self._feed(stream, data):
                return
            data = b""

    def _feed(self, stream: Stream, data: bytes) -> bool:
        """Feed ``data`` whole; while the input queue is full, wait and try again. False: the stream ended."""
        assert self.runner is not None
        runner = self.runner

        def feed() -> None:
            result = runner.feed_units(data, stream.sink)
            stream.fed += int(result["fed"])
            if not runner.moving:  # a moving loop publishes after its next batch; a stopped one only now
                runner.publish()

        delay = BUSY_WAIT[0]
        while stream.end is None:
            try:
                self._on_loop(feed)
                return True
            except Busy:
                self._stop.wait(delay)
                delay = min(delay * 2, BUSY_WAIT[1])
            except RuntimeError:  # the loop has ended: close() ends the stream
                return False
            except Exception as exc:  # noqa: BLE001 - the runner's refusal, in its own words
                stream.finish("error", str(exc))
                return False
        return False

    def _write(self, stream: Stream) -> None:
        """Send the records as they come; end the stream when told to, or once every unit fed has its record."""
        try:
            while True:
                with stream.changed:
                    while not stream.waiting and stream.end is None and not (stream.eof and stream.sent == stream.fed):
                        stream.changed.wait()
                    batches = list(stream.waiting)
                    stream.waiting.clear()
                if batches:
                    stream.sock.sendall(b"".join(data for data, _ in batches))
                    with stream.changed:
                        stream.sent += sum(count for _, count in batches)
                        stream.changed.notify_all()
                    continue
                if stream.end is None:  # the peer sent its last byte and has every record of it
                    stream.finish("done")
                end: dict[str, Any] = {"end": stream.end, "fed": stream.fed, "records": stream.sent}
                if stream.error is not None:
                    end["error"] = stream.error
                stream.sock.sendall(line(end))
                with contextlib.suppress(OSError):
                    stream.sock.shutdown(socket.SHUT_RDWR)
                return
        except OSError:  # the peer went
            stream.finish("gone")
        finally:
            log.info("data connection ended (%s): fed %d units, sent %d records", stream.end, stream.fed, stream.sent)
            runner = self.runner
            if runner is not None:  # records still due to it (units queued, not presented) go to the control read
                runner.call_soon(lambda: runner.forget_sink(stream.sink))  # (fails at once if the loop has ended)
            self._forget(stream)
