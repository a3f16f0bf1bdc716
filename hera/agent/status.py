"""The agent's live status file: what ``hera agents`` reads instead of asking the agent.

Asking every up agent for its status made a listing wait for each one's
batch in turn; so each agent publishes :class:`hera.manager.files.LiveStatus`
(state, iteration, rate, MODE, the holder's pid, device, port, pace, I/O counts) as
``<uuid>.status.json`` in its runtime directory, written atomically, 0600:

* at start, before it tells ``hera up`` it is ready;
* at once on every change of state, MODE, holder or pace (from the loop's
  thread, or from a connection's when a controller attaches, detaches or
  goes);
* while it iterates, at most about once every ``SECONDS`` (after a batch,
  from the loop's thread: never per batch).

The agent removes it when it exits (with its pid-file, socket and connection
file); once :meth:`StatusFile.close` is called nothing writes it again, so a
connection closing during the exit cannot bring it back.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from hera.manager.files import LiveStatus

log = logging.getLogger("hera.agent")

#: While the loop iterates, the status file is rewritten at most this often (seconds).
SECONDS = 1.0


class StatusFile:
    """Writes one agent's live status when it changes, and while it runs about once a second."""

    def __init__(self, path: Path, presence: Any) -> None:
        self.path = path
        #: MODE and holder now (``ControlServer.presence``): they change on connection threads too.
        self.presence = presence
        self._lock = threading.Lock()
        self._closed = False
        self._key: tuple[Any, ...] | None = None
        self._iteration: tuple[Any, Any] | None = None  # (iteration, io): how far it got
        self._written = 0.0
        self._snapshot: dict[str, Any] = {}

    def publish(self, snapshot: dict[str, Any] | None = None, *, moving: bool = False) -> None:
        """Write ``snapshot`` (default: the last one) if anything a listing shows changed, or a second passed."""
        with self._lock:
            if self._closed:
                return
            if snapshot is not None:
                self._snapshot = snapshot
            snapshot = self._snapshot
            if not snapshot:
                return
            now = self.presence()
            key = (snapshot.get("state"), now["mode"], now["holder_pid"], snapshot.get("pace"))
            iteration = (snapshot.get("iteration"), snapshot.get("io"))  # progress: iterating, or fed while paused
            clock = time.monotonic()
            if key == self._key and (
                iteration == self._iteration or (moving and clock - self._written < SECONDS)
            ):
                return
            try:
                LiveStatus.model_validate({**snapshot, **now}).write(self.path)
            except (OSError, ValueError) as exc:  # a full runtime directory must not stop the agent
                log.warning("cannot write the status file %s: %s", self.path, exc)
                return
            self._key, self._iteration, self._written = key, iteration, clock

    def close(self) -> None:
        """Write no more (the agent is leaving), and remove the file."""
        with self._lock:
            self._closed = True
            self.path.unlink(missing_ok=True)
