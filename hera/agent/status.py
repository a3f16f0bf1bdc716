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

* from the moment it holds its lock, while it loads (``state`` ``loading``),
  and while it saves: the *phase* of the long work (``read``, ``init``,
  ``load``, ``save``) with bytes ``done`` of ``total``, at most every
  ``PHASE_SECONDS`` while the bytes move (and at once when a phase begins or
  ends). ``hera up`` draws these while it waits for READY, and bounds that
  wait by the progress stalling, not by a fixed time; ``down`` and
  ``checkpoint`` draw the save; ``hera agents`` shows ``loading 43 %``.

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
#: While a phase's bytes move, at most this often (seconds): a smooth bar, a few small writes a second.
PHASE_SECONDS = 0.15


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
        #: The phase under way: {"phase", "done", "total"}, or empty.
        self._phase: dict[str, Any] = {}

    def phase(self, name: str, total: int | None = None, *, state: str | None = None) -> PhaseReport:
        """Begin phase ``name`` (written at once); the result counts its bytes (an ``on_bytes`` callback) and ends it.

        ``state`` stands for the published state while the phase lasts
        (``saving``: a down's save, during which the loop does not run).
        """
        with self._lock:
            self._phase = {"phase": name, "done": 0 if total is not None else None, "total": total}
            if state is not None:
                self._phase["state"] = state
            self._write_locked(time.monotonic())
        return PhaseReport(self, name, total)

    def _progress(self, name: str, done: int, total: int | None, *, end: bool = False) -> None:
        with self._lock:
            if self._phase.get("phase") != name:
                return  # a later phase began meanwhile (a checkpoint's write on its thread, say)
            clock = time.monotonic()
            if end:
                self._phase = {}
            else:
                self._phase.update(done=done, total=total)
                if clock - self._written < PHASE_SECONDS:
                    return
            self._write_locked(clock)

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
            if self._write_locked(clock, now):
                self._key, self._iteration = key, iteration

    def _write_locked(self, clock: float, presence: dict[str, Any] | None = None) -> bool:
        """Write the last snapshot with the phase under way (the caller holds the lock); whether it was written."""
        if self._closed or not self._snapshot:
            return False
        try:
            status = {**self._snapshot, **(presence or self.presence()), "phase": None, "done": None, "total": None}
            LiveStatus.model_validate({**status, **self._phase}).write(self.path)
        except (OSError, ValueError) as exc:  # a full runtime directory must not stop the agent
            log.warning("cannot write the status file %s: %s", self.path, exc)
            return False
        self._written = clock
        return True

    def close(self) -> None:
        """Write no more (the agent is leaving), and remove the file."""
        with self._lock:
            self._closed = True
            self.path.unlink(missing_ok=True)


class PhaseReport:
    """One phase of an agent's long work as its status file shows it; call it with each chunk's bytes."""

    def __init__(self, status: StatusFile, name: str, total: int | None) -> None:
        self.status = status
        self.name = name
        self.total = total
        self.done = 0
        self._lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        """``amount`` more bytes done (thread-safe: the codec's workers call it)."""
        with self._lock:
            self.done += amount
            done = self.done
        self.status._progress(self.name, done, self.total)

    def grow(self, amount: int) -> None:
        """The total was ``amount`` bytes off (a size learnt only as the work met it)."""
        with self._lock:
            if self.total is not None:
                self.total += amount

    def end(self) -> None:
        """The phase is over: the status file stops showing it."""
        self.status._progress(self.name, self.done, self.total, end=True)

    def __enter__(self) -> PhaseReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()
