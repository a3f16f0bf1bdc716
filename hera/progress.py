"""Progress of long work, drawn on a terminal and nowhere else.

Loading a 16 GB brain takes minutes; a command that prints nothing for that
long looks hung, and people kill hung things, sometimes mid-save. So every
operation that moves a brain's bytes (build, install, uninstall, copy, grow,
up, down, checkpoint) reports *phases* (``read``, ``decode``, ``upload``,
``save`` …) with bytes done and total, and this module draws them with rich
(installed with Taichi; imported only when a bar is really drawn, so one-shot
commands in scripts pay nothing for it).

Nothing is drawn unless standard error is a terminal and the command was not
asked to be quiet (``--silent``, ``-q``, ``--json``): scripts, pipes and
background jobs see exactly the output they saw before. Bars are transient:
once the work is done the terminal holds only the command's own report line.

The callers' side is deliberately small: :func:`meter` gives a
:class:`Meter`; ``with meter.phase("decode", total) as phase:`` and
``phase.advance(n)`` (safe from any thread, as the codec's workers call it)
or ``phase.update(done, total)`` (for progress read from elsewhere, such as an
agent's status file). The no-op :data:`QUIET` has the same methods, so code
that reports progress never asks whether anyone is watching.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class Phase:
    """One named step of the work; counts bytes unless it was given no total."""

    def __init__(self, meter: Meter, task: Any) -> None:
        self._meter = meter
        self._task = task
        self.done = 0
        self._lock = threading.Lock()

    def advance(self, amount: int) -> None:
        """``amount`` more bytes done (thread-safe: the codec's workers call it)."""
        with self._lock:
            self.done += amount
        self._meter._advance(self._task, amount)

    def update(self, done: int, total: int | None = None) -> None:
        """Set the absolute position (progress read from another process's reports)."""
        with self._lock:
            self.done = done
        self._meter._update(self._task, done, total)

    def __call__(self, amount: int) -> None:
        """A phase is itself the ``on_bytes`` callback the codec takes."""
        self.advance(amount)


class Meter:
    """What a command reports progress to; this base class draws nothing."""

    drawn = False

    @contextmanager
    def phase(self, name: str, total: int | None = None) -> Iterator[Phase]:
        yield Phase(self, None)

    def _advance(self, task: Any, amount: int) -> None:
        pass

    def _update(self, task: Any, done: int, total: int | None) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


QUIET = Meter()


class Follower:
    """Draws the phases another process reports (an agent's status file) on a :class:`Meter`.

    Fed with what was last read, ``show(phase, done, total)``, as often as
    the caller polls: a new phase name ends the bar of the one before; None
    ends the last. Use it as a context manager so no bar outlives the wait.
    """

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self._name: str | None = None
        self._context: Any = None
        self._phase: Phase | None = None

    def show(self, name: str | None, done: int | None = None, total: int | None = None) -> None:
        if name != self._name:
            self.close()
            if name is None:
                return
            self._name = name
            self._context = self.meter.phase(name, total)
            self._phase = self._context.__enter__()
        if self._phase is not None and done is not None:
            self._phase.update(done, total)

    def close(self) -> None:
        """End the bar drawn now, if any."""
        if self._context is not None:
            self._context.__exit__(None, None, None)
        self._name, self._context, self._phase = None, None, None

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Drawn(Meter):
    """Phases as rich progress bars on ``stream`` (a terminal): bytes, rate, time left."""

    drawn = True

    def __init__(self, stream: TextIO, label: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._label = label
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=True,
            refresh_per_second=8,
        )
        self._progress.start()

    @contextmanager
    def phase(self, name: str, total: int | None = None) -> Iterator[Phase]:
        description = f"{self._label} {name}" if self._label else name
        task = self._progress.add_task(description, total=total)
        try:
            yield Phase(self, task)
        finally:
            self._progress.remove_task(task)

    def _advance(self, task: Any, amount: int) -> None:
        self._progress.advance(task, amount)

    def _update(self, task: Any, done: int, total: int | None) -> None:
        if total is None:
            self._progress.update(task, completed=done)
        else:
            self._progress.update(task, completed=done, total=total)

    def close(self) -> None:
        self._progress.stop()


def wanted(stream: TextIO, *, quiet: bool = False) -> bool:
    """Whether progress should be drawn on ``stream``: a terminal, not asked to be quiet, not a dumb one."""
    if quiet or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream is not a terminal
        return False


def meter(ctx: Any = None, label: str = "", *, stream: TextIO | None = None, quiet: bool = False) -> Meter:
    """A :class:`Meter` for a command: drawn on standard error when that is a terminal and nobody asked for quiet.

    ``ctx`` is the command's context: its ``--silent``, ``-q``/``--quiet`` and
    ``--json`` (and its error stream) are honoured; ``label`` prefixes every
    phase (the agent's callsign, say). Use it as a context manager so the bars
    are cleared before the command's report line is printed.
    """
    args = getattr(ctx, "args", None)
    quiet = quiet or any(getattr(args, flag, False) for flag in ("silent", "quiet", "json"))
    stream = stream or getattr(ctx, "err", None) or sys.stderr
    if not wanted(stream, quiet=quiet):
        return QUIET
    return _Drawn(stream, label)
