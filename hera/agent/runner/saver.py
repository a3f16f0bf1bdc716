"""The agent's one writer: checkpoints, autosaves and copies, written on a thread of its own.

Taking the state off the device is done on the loop's thread (the only
pause: Taichi is not thread-safe); writing and verifying it happens on the
writer thread while the loop iterates on. One write is in flight at a time,
and anything that must save synchronously (``down``, SIGTERM) waits for it
first. The fields the loop and the writer share (``saved_iteration``,
``dirty``, ``last_save``) are read and written under one lock, so a failed
write marking the brain dirty again never races the loop clearing it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hera.agent.server import Call

log = logging.getLogger("hera.agent")

#: What a family's state becomes once taken off the device: a writer to the cache (``None``) or to a copy's path.
Writer = Callable[[Path | None], str]


def save_failure(why: str, exc: OSError, saved_iteration: int) -> str:
    """One clear line for a save that could not be written (full disk, read-only or forbidden directory)."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return (
        f"{why} failed: {exc.strerror or exc}{where}; the agent keeps running and its cached file "
        f"keeps the previous save (iteration {saved_iteration})"
    )


class Saver:
    """Saves to the cache (synchronously, or through the writer thread) and keeps the autosave interval."""

    def __init__(
        self,
        *,
        save: Callable[[], str],
        export: Callable[[], Writer] | None,
        iteration: Callable[[], int],
        autosave_interval: float,
    ) -> None:
        self.save_state = save
        #: Takes the state off the device and returns its writer; without one, saves are synchronous.
        self.export = export
        self.iteration = iteration
        self.autosave_interval = autosave_interval
        #: The background write in flight, if any (see :meth:`start`).
        self.writing: threading.Thread | None = None
        self._lock = threading.Lock()
        self._saved_iteration = iteration()
        self._dirty = True
        self._last_save = time.monotonic()

    # -- the shared fields, under the lock ---------------------------------------------------------

    @property
    def saved_iteration(self) -> int:
        """The iteration the cached file holds for sure (named when a save fails)."""
        with self._lock:
            return self._saved_iteration

    @property
    def dirty(self) -> bool:
        """Whether the brain changed since the last save (autosave skips an unchanged one)."""
        with self._lock:
            return self._dirty

    def touched(self) -> None:
        """The brain changed (it iterated, was fed, its pace was set): the next autosave writes it."""
        with self._lock:
            self._dirty = True

    def _saved(self, iteration: int | None, *, clean: bool) -> None:
        with self._lock:
            if clean:
                self._last_save, self._dirty = time.monotonic(), False
            if iteration is not None:
                self._saved_iteration = max(self._saved_iteration, iteration)

    # -- autosave -----------------------------------------------------------------------------------

    def idle_timeout(self) -> float:
        """How long an idle loop may wait for requests before it looks at the autosave again."""
        if self.autosave_interval <= 0:
            return 0.1
        with self._lock:
            last = self._last_save
        return max(0.01, min(0.1, last + self.autosave_interval - time.monotonic()))

    def maybe_autosave(self) -> None:
        self.finish(wait=False)
        if self.autosave_interval <= 0:
            return
        with self._lock:
            due = time.monotonic() - self._last_save >= self.autosave_interval
            if due and not self._dirty:  # a paused brain is not written again and again
                self._last_save = time.monotonic()
                return
        if not due or self.writing is not None:
            return  # one write at a time; the one in flight is recent enough
        try:
            self.start("autosave")
        except OSError as exc:  # a full disk must not kill the agent: the previous save stays good
            log.error(save_failure("autosave", exc, self.saved_iteration))
            with self._lock:
                self._last_save = time.monotonic()

    # -- saving -------------------------------------------------------------------------------------

    def save(self, why: str) -> str:
        """Write the state to the cache now, on this thread (down, SIGTERM): after any write in flight."""
        self.finish(wait=True)
        started = time.perf_counter()
        iteration = self.iteration()
        path = self.save_state()
        self._saved(iteration, clean=True)
        log.info("%s: saved iteration %d in %.2f s", why, iteration, time.perf_counter() - started)
        return path

    def start(self, why: str, target: Path | None = None, waiter: Call | None = None) -> None:
        """Take the state off the device now and write it on the writer thread; ``waiter`` is answered when written.

        ``target`` None is the cache (verified, the previous save kept as
        ``.prev``); a path is a point-in-time copy. Without an exporter the
        save is simply synchronous.
        """
        self.finish(wait=True)
        iteration = self.iteration()
        if self.export is None:
            if target is not None:
                raise ValueError("this agent cannot write copies")
            try:
                path = self.save(why)
            except OSError as exc:
                if waiter is not None:
                    waiter.fail(save_failure(why, exc, self.saved_iteration))
                raise
            if waiter is not None:
                waiter.ok({"path": path, "iteration": iteration})
            return
        started = time.perf_counter()
        write = self.export()
        paused = time.perf_counter() - started
        if target is None:
            self._saved(None, clean=True)

        def work() -> None:
            begun = time.perf_counter()
            try:
                path = write(target)
            except OSError as exc:
                if target is None:
                    self.touched()  # the next autosave tries again
                message = save_failure(why, exc, self.saved_iteration)
                log.error(message)
                if waiter is not None:
                    waiter.fail(message)
                return
            except Exception as exc:  # the writer must never die silently with a caller waiting
                log.exception("%s failed", why)
                if waiter is not None:
                    waiter.fail(f"{why} failed: {type(exc).__name__}: {exc}")
                return
            if target is None:
                self._saved(iteration, clean=False)
            log.info(
                "%s: iteration %d taken off the device in %.3f s (the loop's pause), written in %.2f s",
                why, iteration, paused, time.perf_counter() - begun,
            )
            if waiter is not None:
                waiter.ok({"path": path, "iteration": iteration})

        self.writing = threading.Thread(target=work, name=f"hera-{why}", daemon=True)
        self.writing.start()

    def finish(self, wait: bool) -> None:
        """Forget a background write that has ended (waiting for it with ``wait``)."""
        if self.writing is not None and (wait or not self.writing.is_alive()):
            self.writing.join()
            self.writing = None
