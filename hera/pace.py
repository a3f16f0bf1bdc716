"""An agent's pace: how fast its inner loop may iterate while it runs, parsed and checked in one place.

An idle daemon fed nothing used to iterate as fast as its device allowed,
for ever, each one a core. A pace bounds that:

* ``max``: no limit (the default);
* ``N`` or ``N/s``: at most N iterations per second (N > 0, a whole or
  decimal number);
* ``Fx``: a real-time factor: F seconds of simulated time per second of
  wall-clock time (``1x`` is real time, ``0.5x`` half of it). Only a family
  whose runtime says how long one iteration is in simulated time
  (:attr:`hera.runtime.Runtime.seconds_per_iteration`) can keep it.

The command line (``build --pace``, ``up --pace``, ``hera pace``), the
shell and the agent's ``pace`` request all parse with :func:`parse`, so a
pace means the same everywhere and is refused with the same line. Pacing
changes only wall-clock time: every iteration is the same as unpaced.
This module is pure (no Taichi, no numpy).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

#: What a pace looks like, for hints and help texts.
SYNTAX = "max, N/s (iterations per second) or Fx (a real-time factor, e.g. 1x)"
#: The most iterations per second a pace may name (beyond it, say ``max``).
MAX_RATE = 1e9
MAX_FACTOR = 1e6

_NUMBER = r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)"
_RATE = re.compile(rf"^{_NUMBER}\s*(?:/s|/sec|it/s)?$", re.I)
_FACTOR = re.compile(rf"^{_NUMBER}\s*x$", re.I)


class PaceError(ValueError):
    """A pace that cannot be kept or read; the text is one line for the user."""


@dataclass(frozen=True)
class Pace:
    """A parsed pace: ``kind`` ``max`` (no value), ``rate`` (iterations per second) or ``factor``."""

    kind: Literal["max", "rate", "factor"]
    value: float = 0.0

    @property
    def text(self) -> str:
        """The canonical spelling (``max``, ``100/s``, ``0.5x``): what status shows and headers store."""
        if self.kind == "max":
            return "max"
        number = f"{self.value:g}"
        return f"{number}/s" if self.kind == "rate" else f"{number}x"

    def __str__(self) -> str:
        return self.text

    def rate(self, seconds_per_iteration: float | None, family: str = "this family") -> float | None:
        """Iterations per second to keep, None for no limit; a factor needs the family's time step."""
        if self.kind == "max":
            return None
        if self.kind == "rate":
            return self.value
        if not seconds_per_iteration or seconds_per_iteration <= 0:
            raise PaceError(
                f"{self.text} is a real-time factor, and family {family} does not say how much simulated time "
                "an iteration is: give iterations per second (e.g. 100/s)"
            )
        return self.value / seconds_per_iteration


MAX = Pace("max")


def parse(text: str | None) -> Pace:
    """``text`` as a :class:`Pace`; None is ``max``. Anything else is a :class:`PaceError` saying what a pace is."""
    if text is None:
        return MAX
    given = str(text).strip()
    if given.lower() in ("max", "none", "unlimited"):
        return MAX
    for pattern, kind, limit in ((_RATE, "rate", MAX_RATE), (_FACTOR, "factor", MAX_FACTOR)):
        found = pattern.match(given)
        if found is None:
            continue
        value = float(found.group("number"))
        if not math.isfinite(value) or value <= 0:
            raise PaceError(f"pace {given!r}: the number must be above 0 (or say 'max' for no limit)")
        if value > limit:
            raise PaceError(f"pace {given!r} is beyond {limit:g}; say 'max' for no limit")
        return Pace(kind, value)  # type: ignore[arg-type]
    raise PaceError(f"pace {given[:40]!r} is not one: give {SYNTAX}")


def argument(text: str) -> str:
    """An ``argparse`` type for ``--pace``: the canonical spelling, or a usage error saying what a pace is."""
    import argparse

    try:
        return parse(text).text
    except PaceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
