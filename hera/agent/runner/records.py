"""What an agent was fed and what it answered: the counts, the unread records, and who gets each record.

A family presents its input one unit at a time (a byte, for abraxas and
tick) and, for every unit presented, says what its output area produced for
it: a **record** ``(iteration, unit, output)``, ``output`` -1 (``None`` on
the wire) where it produced nothing (:meth:`hera.runtime.Runtime.take_records`).
So a reader can always tell which answer belongs to which unit, and a program
that fed 3,000 bytes knows it has all their answers after 3,000 records.

The :class:`Book` counts units ``fed`` (accepted), ``presented`` and
``answered`` (records with an output), and hands each record to whoever fed
its unit: units are presented in the order they were fed, so a FIFO of
spans (how many units, which sink) attributes them. A data-port connection
has a sink of its own; everything else (the control ``feed``, units still
queued from before a restart) goes to the buffer the control ``read`` takes
from, bounded at ``RECORD_LIMIT`` records, oldest dropped and counted.

numpy is imported inside the functions: this module is imported by the agent
only, but nothing here should make that a rule.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("hera.agent")

#: Unread records kept for the control ``read``; older ones are dropped (and counted).
RECORD_LIMIT = 1 << 20

#: Where the records of some fed units go: called on the loop's thread, so it must not block.
Sink = Callable[[list[dict[str, Any]]], None]


class Busy(Exception):
    """The input queue has no room for these units now: nothing was queued; try the same units again later.

    This is the back-pressure: the controller (``hera signal SIGTTIN``) and
    the data port wait and retry, so nothing fed is refused for good or
    dropped, and what waits (and is saved with every checkpoint) stays bounded.
    """

    def __init__(self, queued: int, asked: int, limit: int) -> None:
        self.queued, self.asked, self.limit = queued, asked, limit
        super().__init__(
            f"the input queue is full ({queued} of {limit} units waiting, {asked} more asked); "
            "retry once the agent has taken some in"
        )


class NoInput(ValueError):
    """Input for a family without an input area: refused in one line before the runtime is touched."""


def empty() -> np.ndarray:
    """No records: an int64 array of shape (0, 3)."""
    import numpy as np

    return np.zeros((0, 3), np.int64)


def as_dicts(rows: np.ndarray) -> list[dict[str, Any]]:
    """Records as they go on the wire: ``{"iteration", "unit", "output"}``, ``output`` None for none."""
    return [
        {"iteration": iteration, "unit": unit, "output": output if output >= 0 else None}
        for iteration, unit, output in rows.tolist()
    ]


def outputs(rows: np.ndarray) -> bytes:
    """The output bytes of ``rows``, in order, units with no output skipped (byte-sized units)."""
    import numpy as np

    answered = rows[:, 2]
    return answered[answered >= 0].astype(np.uint8).tobytes()


class Book:
    """The counts, the FIFO of who fed what, and the unread records (all touched on the loop's thread only)."""

    def __init__(self, unit: str | None, *, pending: int, counts: tuple[int, int, int] | None, unread: np.ndarray | None) -> None:
        """``pending``: units queued before this process (a restart); ``counts``: the saved (fed, presented, answered)."""
        self.unit = unit
        # An older file saved no counts: what waits in its queue was fed, nothing is known of the rest.
        self.fed, self.presented, self.answered = counts if counts is not None else (pending, 0, 0)
        #: Records not read yet, oldest first, and how many (rows, and rows with an output).
        self.unread: deque[np.ndarray] = deque()
        self.unread_records = 0
        self.unread_outputs = 0
        #: Records dropped since the last ``read`` (it reports them), and in this process's life.
        self.dropped = 0
        self.dropped_total = 0
        #: [units, sink] in the order they were fed; None: the ``read`` buffer.
        self.spans: deque[list[Any]] = deque()
        if pending:
            self.spans.append([pending, None])
        if unread is not None and len(unread):
            self._keep(unread)

    # -- feeding -----------------------------------------------------------------------------------

    def accepted(self, units: int, sink: Sink | None) -> None:
        """``units`` were queued; their records go to ``sink`` (None: the ``read`` buffer)."""
        if units <= 0:
            return
        self.fed += units
        if self.spans and self.spans[-1][1] is sink:
            self.spans[-1][0] += units
        else:
            self.spans.append([units, sink])

    def forget(self, sink: Sink) -> None:
        """``sink`` is gone (its connection closed): the records of its units still queued go to the buffer."""
        for span in self.spans:
            if span[1] is sink:
                span[1] = None

    # -- records ------------------------------------------------------------------------------------

    def add(self, rows: np.ndarray) -> None:
        """Records the brain just made: counted, then handed to whoever fed their units, in order."""
        if not len(rows):
            return
        self.presented += len(rows)
        self.answered += int((rows[:, 2] >= 0).sum())
        start = 0
        while start < len(rows):
            if not self.spans:  # more presented than anyone fed (a family's own input): the buffer's
                self._keep(rows[start:])
                return
            span = self.spans[0]
            take = min(span[0], len(rows) - start)
            part = rows[start : start + take]
            start += take
            span[0] -= take
            if span[0] == 0:
                self.spans.popleft()
            sink = span[1]
            if sink is None:
                self._keep(part)
                continue
            try:
                sink(as_dicts(part))
            except Exception:  # a sink's trouble is its connection's, never the agent's
                log.exception("a record sink failed; its records are kept for read instead")
                self.forget(sink)
                self._keep(part)

    def _keep(self, rows: np.ndarray) -> None:
        self.unread.append(rows)
        self.unread_records += len(rows)
        self.unread_outputs += int((rows[:, 2] >= 0).sum())
        while self.unread_records > RECORD_LIMIT:
            over = self.unread_records - RECORD_LIMIT
            oldest = self.unread[0]
            gone, kept = oldest[:over], oldest[over:]
            if len(kept):
                self.unread[0] = kept
            else:
                self.unread.popleft()
            self.unread_records -= len(gone)
            self.unread_outputs -= int((gone[:, 2] >= 0).sum())
            self.dropped += len(gone)
            self.dropped_total += len(gone)

    def take(self, limit: int | None = None) -> tuple[np.ndarray, int]:
        """The oldest unread records (at most ``limit``), and how many were dropped since the last take."""
        import numpy as np

        parts: list[np.ndarray] = []
        wanted = self.unread_records if limit is None else min(limit, self.unread_records)
        got = 0
        while got < wanted:
            rows = self.unread[0]
            if len(rows) <= wanted - got:
                parts.append(self.unread.popleft())
            else:
                parts.append(rows[: wanted - got])
                self.unread[0] = rows[wanted - got :]
            got += len(parts[-1])
        taken = np.concatenate(parts) if parts else empty()
        self.unread_records -= len(taken)
        self.unread_outputs -= int((taken[:, 2] >= 0).sum())
        dropped, self.dropped = self.dropped, 0
        return taken, dropped

    def peek(self) -> np.ndarray:
        """Every unread record, left unread (what a save keeps)."""
        import numpy as np

        return np.concatenate(list(self.unread)) if self.unread else empty()

    # -- what status and saves say -------------------------------------------------------------------

    def counts(self, pending: int) -> dict[str, Any]:
        """``status``'s ``io``: only ``{"unit": None}`` for a family without an input area."""
        if self.unit is None:
            return {"unit": None}
        return {
            "unit": self.unit,
            "fed": self.fed,
            "presented": self.presented,
            "pending": pending,
            "answered": self.answered,
            "dropped": self.dropped_total,
        }

    def saved(self) -> np.ndarray:
        """``hera.io``: [fed, presented, answered], saved with the state."""
        import numpy as np

        return np.array([self.fed, self.presented, self.answered], np.int64)
