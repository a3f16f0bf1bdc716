"""How well an agent predicts what it is fed: rolling accuracy and log-loss, a decision log and a learning curve.

For a family whose I/O contract ``predicts`` (each record's output is its
guess at the unit presented on the same tick; :class:`hera.runtime.IOContract`)
the agent scores every record it takes: a **hit** where output equals unit
(no output is a miss), and, where the runtime gives it
(:meth:`hera.runtime.Runtime.take_scored_records`), the **log-loss** in bits.
:class:`Learning` keeps, in memory bounded whatever the agent's life:

* the last ``WINDOW`` scored records in a ring: the rolling accuracy and
  log-loss, and the decision log the ``learning`` request returns;
* totals since this process came up;
* a **learning curve**: accuracy and log-loss per block of consecutive
  units, at most ``CURVE_POINTS`` points; when it is full, neighbours merge
  and blocks double, so a day-long run still draws from its first unit.

Its work is a few numpy operations per batch of records (after each batch,
with the records), never per iteration, and it touches only the loop's
thread. These figures are the agent's runtime state, not the brain's: they
are not saved, and start again at every up (docs/agent.md says why).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hera.agent.protocol import DECISION_LIMIT

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("hera.agent")

#: Scored records in the rolling window (and the most the decision log returns).
WINDOW = DECISION_LIMIT
#: The most points of the learning curve kept; past it neighbours merge.
CURVE_POINTS = 512
#: Units per curve point at first (blocks double as points merge).
FIRST_BLOCK = 50


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 4) if count else None


@dataclass
class Point:
    """One block of consecutive scored units on the learning curve: its sums, so that two merge exactly."""

    units: int = 0  # units scored since up at its end
    iteration: int = 0  # the iteration of its last unit
    count: int = 0
    hits: int = 0
    bits: float = 0.0  # log-loss summed over its units that had one
    bits_count: int = 0

    def merged(self, later: Point) -> Point:
        return Point(
            later.units, later.iteration, self.count + later.count, self.hits + later.hits,
            self.bits + later.bits, self.bits_count + later.bits_count,
        )

    def shown(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "iteration": self.iteration,
            "count": self.count,
            "accuracy": _mean(self.hits, self.count),
            "log_loss": _mean(self.bits, self.bits_count),
        }


class Learning:
    """The scores of one agent's predictions since it came up (loop's thread only)."""

    def __init__(self, window: int = WINDOW, *, curve_points: int = CURVE_POINTS, first_block: int = FIRST_BLOCK) -> None:
        import numpy as np

        self.window = window
        # The ring: iteration, unit, output (-1: none) and log-loss (NaN: none) of the last scored records.
        self.iteration = np.zeros(window, np.int64)
        self.unit = np.zeros(window, np.int64)
        self.output = np.zeros(window, np.int64)
        self.bits = np.full(window, np.nan)
        self.head = 0  # the slot the next record goes to
        self.filled = 0
        #: Since up: records scored, hits, and the log-loss summed over the records that had one.
        self.scored = 0
        self.hits = 0
        self.bits_sum = 0.0
        self.bits_count = 0
        #: Whether the runtime gave log-losses at all (None: nothing scored yet).
        self.gives_bits: bool | None = None
        self.curve_points = curve_points
        self.block = first_block
        #: The curve's closed points, oldest first, and the block being filled.
        self.points: list[Point] = []
        self._open = Point()
        self._summary: dict[str, Any] | None = None

    def add(self, rows: np.ndarray, bits: np.ndarray | None) -> None:
        """Score ``rows`` (records ``(iteration, unit, output)``) with their log-losses (None: not given)."""
        import numpy as np

        n = len(rows)
        if not n:
            return
        self._summary = None
        losses = np.full(n, np.nan)
        if bits is not None:
            given = np.asarray(bits, np.float64).reshape(-1)
            if len(given) == n:
                losses = given
            else:  # a family's mistake costs its log-loss, never its records
                log.warning("the runtime gave %d log-losses for %d records; they are left out", len(given), n)
                bits = None
        given_any = bits is not None
        self.gives_bits = given_any if self.gives_bits is None else self.gives_bits or given_any
        hit = rows[:, 2] == rows[:, 1]
        finite = np.isfinite(losses)
        # the ring takes the last `window` of them
        tail = slice(max(0, n - self.window), n)
        slots = (self.head + np.arange(tail.stop - tail.start)) % self.window
        self.iteration[slots] = rows[tail, 0]
        self.unit[slots] = rows[tail, 1]
        self.output[slots] = rows[tail, 2]
        self.bits[slots] = losses[tail]
        self.head = int((self.head + len(slots)) % self.window)
        self.filled = min(self.window, self.filled + len(slots))
        self.scored += n
        self.hits += int(hit.sum())
        self.bits_sum += float(losses[finite].sum())
        self.bits_count += int(finite.sum())
        self._curve(rows, hit, losses, finite)

    def _curve(self, rows: np.ndarray, hit: np.ndarray, losses: np.ndarray, finite: np.ndarray) -> None:
        """Fill the open block, closing a point each time it holds ``block`` units."""
        n, start = len(rows), 0
        first = self.scored - n  # units scored before these
        block = self._open
        while start < n:
            end = min(n, start + self.block - block.count)
            part = slice(start, end)
            block.count += end - start
            block.hits += int(hit[part].sum())
            block.bits += float(losses[part][finite[part]].sum())
            block.bits_count += int(finite[part].sum())
            block.units, block.iteration = first + end, int(rows[end - 1, 0])
            start = end
            if block.count >= self.block:
                self.points.append(block)
                block = self._open = Point()
                if len(self.points) > self.curve_points:
                    self._merge()

    def _merge(self) -> None:
        """Halve the curve's resolution: each pair of neighbours becomes one point (sums add, exactly)."""
        merged = [left.merged(right) for left, right in zip(self.points[::2], self.points[1::2], strict=False)]
        if len(self.points) % 2:
            merged.append(self.points[-1])
        self.points = merged
        self.block *= 2

    def summary(self) -> dict[str, Any]:
        """``status``'s ``learning``: the window's accuracy and log-loss, and the totals since up (None: none yet)."""
        if self._summary is None:
            import numpy as np

            valid = slice(0, self.filled)  # the ring fills from slot 0; once full every slot is valid
            bits = self.bits[valid]
            finite = bits[np.isfinite(bits)]
            self._summary = {
                "window": self.window,
                "units": self.filled,
                "accuracy": _mean(float((self.output[valid] == self.unit[valid]).sum()), self.filled),
                "log_loss": round(float(finite.mean()), 4) if finite.size else None,
                "units_since_up": self.scored,
                "accuracy_since_up": _mean(self.hits, self.scored),
                "log_loss_since_up": _mean(self.bits_sum, self.bits_count),
            }
        return dict(self._summary)

    def decisions(self, count: int) -> list[dict[str, Any]]:
        """The last ``count`` scored records, oldest first: iteration, unit, predicted (None: none), log_loss (None: none)."""
        import math

        count = min(count, self.filled)
        slots = [(self.head - count + k) % self.window for k in range(count)]
        return [
            {
                "iteration": int(self.iteration[slot]),
                "unit": int(self.unit[slot]),
                "predicted": int(self.output[slot]) if self.output[slot] >= 0 else None,
                "log_loss": round(float(self.bits[slot]), 4) if math.isfinite(self.bits[slot]) else None,
            }
            for slot in slots
        ]

    def curve(self) -> dict[str, Any]:
        """The learning curve: one point per block of units, plus the block being filled if it holds any."""
        points = self.points + ([self._open] if self._open.count else [])
        return {"block": self.block, "points": [point.shown() for point in points]}
