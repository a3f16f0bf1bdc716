"""The controller's side of an agent's input and output: bytes in with back-pressure, records out.

``hera signal SIGTTIN`` / ``SIGTTOU`` and the shell's ``agent.feed`` /
``agent.read`` / ``agent.records`` all go through here, so the command line
and the shell behave alike (docs/signals.md):

* input is bytes, whatever they are, sent in chunks of at most
  ``FEED_LIMIT`` (no line splitting: a unit is a byte, not a line); while
  the agent's input queue is full it answers busy and the chunk is sent
  again after a short wait, so nothing is dropped and the controller holds at
  most one chunk;
* output comes as records (``iteration``, ``unit``, ``output`` or None), one
  per unit presented, read in bounded batches until none are left; on a
  terminal the output bytes are shown with control bytes escaped
  (:class:`Escaper`), so an agent cannot garble the screen.
"""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from hera.errors import HeraError

if TYPE_CHECKING:
    from hera.manager.client import AgentClient

#: While the agent is busy (its input queue full): first wait and longest wait, in seconds.
BUSY_WAIT = (0.005, 0.1)
#: Records asked for per ``read``: a reply stays far below the protocol's reply limit.
READ_BATCH = 1 << 16
#: How often a progress line on a terminal is redrawn, in seconds.
PROGRESS_EVERY = 0.25


class Fed:
    """How much went in, how long was spent waiting for room, and the agent's name for the lines about it."""

    def __init__(self, callsign: str) -> None:
        self.callsign = callsign
        self.bytes = 0
        self.waited = 0.0

    def __str__(self) -> str:
        return f"{self.bytes:,} byte(s)"

    def summary(self) -> str:
        waited = f" (waited {self.waited:.1f} s while its input queue was full)" if self.waited >= 0.05 else ""
        return f"fed {self} to {self.callsign}{waited}"


def chunks(stream: IO[Any]) -> Iterator[bytes]:
    """A stream's bytes in pieces of at most ``FEED_LIMIT``, as soon as they arrive (a slow pipe is not held back).

    ``read1`` returns what the pipe has without waiting for a full chunk. A
    text stream without a byte buffer (a replaced ``sys.stdin``) is encoded
    back to the bytes it came from.
    """
    from hera.agent.protocol import FEED_LIMIT

    binary = getattr(stream, "buffer", stream)
    read = getattr(binary, "read1", None) or binary.read
    while True:
        piece = read(FEED_LIMIT)
        if not piece:
            return
        if isinstance(piece, str):
            piece = piece.encode("utf-8", "surrogateescape")
        yield piece


def pieces(data: bytes) -> Iterator[bytes]:
    """``data`` in pieces of at most ``FEED_LIMIT`` bytes."""
    from hera.agent.protocol import FEED_LIMIT

    for start in range(0, len(data), FEED_LIMIT):
        yield data[start : start + FEED_LIMIT]


def feed(client: AgentClient, source: Iterator[bytes], fed: Fed, progress: Callable[[Fed], None] | None = None) -> Fed:
    """Every chunk of ``source`` into the agent, in order, each sent again while the agent is busy.

    A failure on the way (the agent went down, it is paused with its queue
    full) is one line saying how much went in before it: that much is the
    agent's, and survives a down (it is saved with the state).
    """
    for chunk in source:
        try:
            feed_one(client, chunk, fed, progress)
        except HeraError as exc:
            raise type(exc)(f"{exc.message}; fed {fed} to {fed.callsign} before that", hint=exc.hint) from None
        fed.bytes += len(chunk)
        if progress is not None:
            progress(fed)
    return fed


def feed_one(client: AgentClient, chunk: bytes, fed: Fed, progress: Callable[[Fed], None] | None = None) -> None:
    """One ``feed``, sent again while the agent is busy and running; refused for good if it is not running.

    ``progress`` is told while it waits too, so a progress line never looks stuck.
    """
    from hera.agent import protocol

    wait = BUSY_WAIT[0]
    data = protocol.encode_data(chunk)
    while True:
        try:
            client.request("feed", data=data)
            return
        except HeraError as exc:
            if not exc.message.removeprefix("agent: ").startswith(protocol.BUSY):
                raise
        state = client.request("status")["state"]
        if state != "running":  # nothing takes input in while it is stopped: waiting would be for ever
            raise HeraError(
                f"{fed.callsign}'s input queue is full and it is {state}",
                hint="continue it (hera signal SIGCONT) and feed the rest",
            )
        time.sleep(wait)
        fed.waited += wait
        if progress is not None:
            progress(fed)
        wait = min(2 * wait, BUSY_WAIT[1])


class Progress:
    """A progress line redrawn in place on a terminal: bytes fed, of how many when known, and the rate."""

    def __init__(self, out: IO[str], total: int | None) -> None:
        self.out = out
        self.total = total
        self.started = self.drawn = time.monotonic()
        self.width = 0

    def __call__(self, fed: Fed) -> None:
        now = time.monotonic()
        if now - self.drawn < PROGRESS_EVERY:
            return
        self.drawn = now
        rate = fed.bytes / max(now - self.started, 1e-9)
        of = f" of {self.total:,} ({100 * fed.bytes / self.total:.0f}%)" if self.total else ""
        self.draw(f"feeding {fed.callsign}: {fed.bytes:,}{of} bytes, {rate / 1024:,.0f} KiB/s")

    def draw(self, line: str) -> None:
        self.out.write("\r" + line.ljust(self.width))
        self.width = len(line)
        self.out.flush()

    def clear(self) -> None:
        if self.width:
            self.out.write("\r" + " " * self.width + "\r")
            self.out.flush()
            self.width = 0


def reads(client: AgentClient) -> Iterator[dict[str, Any]]:
    """``read`` replies, records included, until the agent has nothing more unread.

    Each asks for at most ``READ_BATCH`` records; a reply with fewer took the
    last. Records are asked for even when only the bytes are wanted, because a
    batch of units that produced nothing has no bytes and yet is not the end.
    """
    while True:
        reply: dict[str, Any] = client.request("read", records=True, limit=READ_BATCH)
        yield reply
        if len(reply["records"]) < READ_BATCH:
            return


def output(reply: dict[str, Any]) -> bytes:
    """The output bytes of one ``read`` reply."""
    from hera.agent import protocol

    return protocol.decode_data(reply["data"])


#: What a terminal is not shown as it is: C0 controls but newline and tab, DEL, C1 controls, the
#: backslash (so an escape is never ambiguous), and bytes that are not UTF-8 (as lone surrogates).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\\\\\udc80-\udcff]")


class Escaper:
    """Output bytes as text a terminal shows safely: each unsafe byte as ``\\xNN``, the backslash as ``\\\\``.

    Incremental, so a UTF-8 sequence split between two reads is kept whole.
    """

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")

    def __call__(self, data: bytes, final: bool = False) -> str:
        return _UNSAFE.sub(_escape, self.decoder.decode(data, final))


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    if char == "\\":
        return "\\\\"
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return "".join(f"\\x{byte:02x}" for byte in char.encode())


def total_size(stream: IO[Any]) -> int | None:
    """How many bytes are left in ``stream`` if it is a regular file, for the progress line; else None."""
    import os
    import stat

    try:
        fd = stream.fileno()
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            return max(0, info.st_size - os.lseek(fd, 0, os.SEEK_CUR))
    except (OSError, ValueError, AttributeError):
        pass
    return None


def is_terminal(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False
