"""The inner loop: a state machine around a family's Runtime, on the agent's main thread.

States (:class:`State`): ``running`` (iterating continuously), ``paused``
(the debug mode: stopped at an exact iteration, waiting for commands) and
``standby`` (stopped by Ctrl-C / SIGINT, idle until told to run). Work is
done in batches sized to about ``BATCH_SECONDS`` so control requests are
picked up quickly; single steps and breakpoints are exact because the batch
is bounded by the next iteration breakpoint and probe breakpoints stop the
runtime itself at the iteration they fire.

A Taichi kernel holds the GIL while it runs, so not even ``status`` is
answered during a batch: the batch size therefore starts at one iteration
(the first call compiles; nothing is known of the brain's speed yet) and
grows at most fourfold per batch towards ``BATCH_SECONDS``. A request waits
at most one batch, or one iteration where a single iteration takes longer.

A **pace** (:mod:`hera.pace`) bounds how fast a running agent iterates: the
loop runs what the pace allows (:class:`Pacer`, a token bucket) and then
sleeps until more is due, answering requests while it sleeps, so a paced
agent uses next to no CPU and ``status`` stays instant. Pacing changes only
wall-clock time: the iterations are the same. Steps (``step N``,
``record``) are asked-for work and run at full speed.

What the loop shares: the snapshot ``status`` answers from (published after
every batch, request and signal), the live status file
(:mod:`hera.agent.status`), and events for the controller holding the
prompt when anyone else changes the state (:meth:`ControlServer.notify`).
Saving is the :class:`~hera.agent.runner.saver.Saver`'s; the requests'
handlers are :mod:`hera.agent.runner.handlers`.

Input and output (:mod:`hera.agent.runner.records`): after every batch the
loop takes the records the brain made (one per unit presented) and hands
each to whoever fed its unit. Other threads (the data port's) reach the
brain only through :meth:`Runner.call_soon`, whose functions run on the
loop's thread between batches, paused or not; :meth:`Runner.feed_units`
(all or none, :class:`~hera.agent.runner.records.Busy` when the input queue
has no room) is what they call there. For a family whose output predicts
its input, the same records are scored on the way
(:mod:`hera.agent.runner.learning`): ``status``'s ``learning``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hera import pace as paces
from hera.agent.runner.learning import Learning
from hera.agent.runner.records import Book, Busy, NoInput, Sink
from hera.agent.runner.saver import Saver, Writer, save_failure
from hera.agent.server import Call, ControlServer
from hera.runtime import Runtime

if TYPE_CHECKING:
    import numpy as np

    from hera.agent.status import StatusFile

log = logging.getLogger("hera.agent")

BATCH_SECONDS = 0.04
MAX_BATCH = 1 << 20
#: The most units queued for input (fed, not yet presented); past it feeding is refused with :class:`Busy`.
INPUT_LIMIT = 1 << 20
#: Paced, the loop runs what is due in chunks of about this many seconds' worth (at least one iteration).
PACE_TICK = 0.02
#: The longest the loop sleeps in one go (paced or idle): signals are acted on at least this often.
LONGEST_SLEEP = 0.1
#: The achieved rate (IT/S) is measured over windows of about this many seconds.
RATE_WINDOW = 1.0


class State(StrEnum):
    """The inner loop's states; on the wire (status, events) their values."""

    RUNNING = "running"
    PAUSED = "paused"
    STANDBY = "standby"


@dataclass
class Breakpoint:
    id: int
    kind: str  # "iteration" | "every" | "probe"
    value: Any

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "value": self.value}


@dataclass
class Soon:
    """A function for the loop's thread (:meth:`Runner.call_soon`), and the future its result goes to."""

    fn: Callable[[], Any]
    future: Future[Any]

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn()
        except BaseException as exc:  # Exit too: the caller hears of it, the loop goes on
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class Exit(Exception):
    """Leave the loop: ``save`` says whether the state goes to the cache first."""

    def __init__(self, save: bool, reason: str) -> None:
        super().__init__(reason)
        self.save = save
        self.reason = reason


class Pacer:
    """A token bucket: iterations become due at ``rate`` per second, at most two chunks' worth saved up.

    The cap keeps an agent that was slow (or asleep longer than asked) from
    racing to catch up; a chunk (``PACE_TICK`` seconds' worth, at least one
    iteration) is what the loop waits for, so at 10 it/s it wakes ten times a
    second and at 100,000 it/s it runs 2,000 at a time fifty times a second.
    """

    def __init__(self, rate: float | None = None) -> None:
        self.rate = rate
        self.credit = 0.0
        self.last = time.monotonic()
        self.restart()

    @property
    def chunk(self) -> float:
        return max(1.0, (self.rate or 0.0) * PACE_TICK)

    def restart(self) -> None:
        """Start afresh (the loop starts running, or the pace changed): one chunk due at once."""
        self.credit, self.last = self.chunk, time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        if self.rate is not None:
            self.credit = min(self.credit + (now - self.last) * self.rate, 2 * self.chunk)
        self.last = now

    def wait(self) -> float:
        """Seconds until a chunk is due (0: now)."""
        if self.rate is None:
            return 0.0
        self._refill()
        return 0.0 if self.credit >= self.chunk else (self.chunk - self.credit) / self.rate

    def allowance(self) -> int | None:
        """Iterations the pace allows now (None: no limit)."""
        if self.rate is None:
            return None
        self._refill()
        return max(1, int(self.credit))

    def spent(self, iterations: int) -> None:
        if self.rate is not None:
            self.credit -= iterations


class Runner:
    """Drives the runtime and answers the inbox between batches (the handlers are :class:`Handlers`)."""

    def __init__(
        self,
        runtime: Runtime,
        server: ControlServer,
        *,
        save: Callable[[], str],
        autosave_interval: float,
        start_state: str = "running",
        info: dict[str, Any] | None = None,
        signals: list[str] | None = None,
        export: Callable[[], Writer] | None = None,
        pace: paces.Pace = paces.MAX,
        status_file: StatusFile | None = None,
        counts: tuple[int, int, int] | None = None,
        unread: np.ndarray | None = None,
    ) -> None:
        """``counts`` and ``unread``: the I/O counts and unread records saved with the state (``hera.io``, ``hera.records``)."""
        from hera.agent.runner.handlers import Handlers

        self.runtime = runtime
        self.server = server
        self.saver = Saver(save=save, export=export, iteration=lambda: self.runtime.iteration, autosave_interval=autosave_interval)
        self.state = State(start_state)
        self.info = info or {}
        self.breakpoints: list[Breakpoint] = []
        self.next_breakpoint_id = 1
        self.steps_left = 0
        self.step_waiters: list[Call] = []
        self.stopped_on: str | None = None
        #: Iterations in the next batch: starts at one, see the module's docstring.
        self.batch_size = 1
        self.batches = 0
        #: The brain's own speed over the last batch (iterations per second), and what it achieved lately.
        self.speed = 0.0
        self.rate = 0.0
        self._window = (time.monotonic(), runtime.iteration)
        self._measured = False
        self.pace = pace
        self.pacer = Pacer(pace.rate(runtime.seconds_per_iteration, self.family))
        self.records = Book(runtime.io.unit, pending=int(runtime.queued()) if runtime.io.unit else 0, counts=counts, unread=unread)
        #: The scores of its predictions, for a family whose output predicts its input (else None).
        self.learning = Learning() if runtime.io.unit is not None and runtime.io.predicts else None
        #: The server's inbox, where :meth:`call_soon` puts its functions too (so they wake the loop).
        self.inbox: queue.Queue[Any] = server.inbox
        self.closed = False
        self._closing = threading.Lock()  # call_soon never queues a function after the loop's last look
        self.probe_names = {p.name for p in runtime.probes()}
        #: Signal names noted by handlers, acted on by the loop (handlers must not touch queues or locks).
        self.signals: list[str] = [] if signals is None else signals
        self.status_file = status_file
        self.handlers = Handlers(self)
        self.publish()

    @property
    def family(self) -> str:
        return str(self.info.get("family", "this family"))

    @property
    def moving(self) -> bool:
        return self.state is State.RUNNING or self.steps_left > 0

    # -- the loop ---------------------------------------------------------------------------------

    def loop(self) -> Exit:
        """Run until told to exit; return how."""
        try:
            while True:
                self.act_on_signals()
                self.drain(self._sleep())
                if self.steps_left > 0 or (self.state is State.RUNNING and self.pacer.wait() == 0):
                    self.batch()
                    # A kernel holds the GIL for the whole batch and the Python between batches is
                    # shorter than the switch interval, so without this the connection threads (accept,
                    # hello, reading requests) would get the GIL only now and then: a flood of
                    # connections then starved the owner's. sleep(0) hands it over, if anyone waits.
                    time.sleep(0)
                self.saver.maybe_autosave()
        except Exit as leaving:
            self.saver.finish(wait=True)
            self._close()
            return leaving

    def _close(self) -> None:
        """No more calls run on this loop: whoever waits on one hears that the agent is going down."""
        with self._closing:
            self.closed = True
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Soon) and item.future.set_running_or_notify_cancel():
                item.future.set_exception(RuntimeError("the agent is going down"))

    def _sleep(self) -> float:
        """How long to wait for requests before the next look: 0 with work due, else until some is."""
        if self.steps_left > 0:
            return 0.0
        if self.state is State.RUNNING:
            return min(self.pacer.wait(), LONGEST_SLEEP)
        return self.saver.idle_timeout()

    def act_on_signals(self, *, leave: bool = True) -> None:
        """What the spec's signal table asks, done on the loop's own thread.

        ``leave=False`` (before the agent is ready: signals that came while it
        loaded) acts on those that steer the loop and keeps SIGTERM, SIGQUIT
        and whatever follows them for the loop, so Ctrl-C while loading makes
        the first status say ``standby``.
        """
        while self.signals:
            if not leave and self.signals[0] in ("SIGTERM", "SIGQUIT"):
                return
            name = self.signals.pop(0)
            log.info("received %s at iteration %d in state %s", name, self.runtime.iteration, self.state.value)
            if name in ("SIGTERM", "SIGQUIT"):
                # Saved here, not after the loop: a save that fails (full disk) keeps the agent
                # running instead of ending it with its newest state lost.
                try:
                    self.saver.save(name)
                except OSError as exc:
                    log.error("%s refused: %s", name, save_failure(name, exc, self.saver.saved_iteration))
                    continue
                raise Exit(save=False, reason=name)
            was = self.state
            if name == "SIGINT":
                self.stop(State.STANDBY)
            elif name == "SIGTSTP":
                self.stop(State.PAUSED)
            elif name == "SIGCONT":
                self.stop(State.RUNNING)
                self.stopped_on = None
            self.changed(was, name)
            if name in ("SIGCONT", "SIGHUP"):  # the spec: both detach the terminal
                self.server.release(name, self.runtime.iteration)
            self.publish()

    def changed(self, was: State, by: str, source: Any = None) -> None:
        """The holder hears of a change of state that ``by`` made (not its own request, not a breakpoint)."""
        if self.state is not was:
            self.server.notify(self.state.value, by, self.runtime.iteration, source)

    def drain(self, timeout: float) -> None:
        while True:
            try:
                call = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
            except queue.Empty:
                return
            timeout = 0
            if isinstance(call, Soon):
                call.run()
                self.publish()  # what it did (units fed) shows in the next status at once
            else:
                self.handle(call)

    def stop(self, state: State) -> None:
        """Go to ``state``, cancelling steps still to run; whoever asked for them is told where it stopped."""
        if state is State.RUNNING and not self.moving:
            self.pacer.restart()
            self._restart_window()
        self.state, self.steps_left = state, 0
        self.answer_steps()

    def start_steps(self, n: int) -> None:
        """Pause, then run exactly ``n`` iterations at full speed (asked-for work is not paced)."""
        self.stop(State.PAUSED)  # a step asked while others run replaces them
        self.stopped_on = None
        self.steps_left = n
        self._restart_window()

    def answer_steps(self) -> None:
        if self.steps_left == 0 and self.step_waiters:
            self.publish()  # as in handle(): the snapshot first, then the replies
            status = self.status()
            for waiter in self.step_waiters:
                waiter.ok(status)
            self.step_waiters.clear()

    def batch(self) -> None:
        n = self.batch_size
        if self.steps_left > 0:
            n = min(n, self.steps_left)
        else:
            allowed = self.pacer.allowance()
            if allowed is not None:
                n = min(n, allowed)
        before = self.runtime.iteration
        limit = self._next_iteration_stop(before)
        if limit is not None:
            n = min(n, limit - before)
        probes = [bp.value for bp in self.breakpoints if bp.kind == "probe"]
        started = time.perf_counter()
        result = self.runtime.step(n, probes)
        elapsed = time.perf_counter() - started
        if result.iterations:
            self.saver.touched()
            if self.batches > 0:  # the first call compiles kernels: its time says nothing of the speed
                fitting = int(BATCH_SECONDS * result.iterations / max(elapsed, 1e-9))
                # Follow slow-downs at once, speed-ups at most fourfold per batch.
                self.batch_size = max(1, min(MAX_BATCH, 4 * self.batch_size, fitting))
            self.speed = result.iterations / max(elapsed, 1e-9)
            self.batches += 1
            if self.steps_left == 0:
                self.pacer.spent(result.iterations)
            self._measure()
        self.collect_records()
        if self.steps_left > 0:
            self.steps_left = max(0, self.steps_left - result.iterations)
        hit = result.stopped_on
        if hit is None and limit is not None and self.runtime.iteration == limit:
            hit = f"iteration:{limit}"
        if hit is not None:
            self.stopped_on = hit
            self.state = State.PAUSED
            self.steps_left = 0
            log.info("breakpoint %s at iteration %d", hit, self.runtime.iteration)
        self.answer_steps()
        self.publish()

    def _restart_window(self) -> None:
        self._window, self._measured = (time.monotonic(), self.runtime.iteration), False

    def _measure(self) -> None:
        """IT/S: iterations per second of wall-clock time over about the last second (the pace's sleeps count)."""
        now, iteration = time.monotonic(), self.runtime.iteration
        since, then = self._window
        if now - since >= RATE_WINDOW:
            self.rate = (iteration - then) / (now - since)
            self._window, self._measured = (now, iteration), True
        elif not self._measured:  # no whole window yet since it started moving: the brain's speed, within the pace
            self.rate = min(self.speed, self.pacer.rate or self.speed)

    def _next_iteration_stop(self, now: int) -> int | None:
        stops = []
        for bp in self.breakpoints:
            if bp.kind == "iteration" and bp.value > now:
                stops.append(bp.value)
            elif bp.kind == "every":
                stops.append((now // bp.value + 1) * bp.value)
        return min(stops) if stops else None

    def collect_records(self) -> None:
        """Take the records the brain made, score them where the family predicts, and hand each to whoever fed its unit.

        Scoring (:class:`~hera.agent.runner.learning.Learning`) is a few numpy
        operations on the whole batch of records, never per iteration.
        """
        if self.records.unit is None:
            return
        if self.learning is None:
            self.records.add(self.runtime.take_records())
            return
        rows, bits = self.runtime.take_scored_records()
        self.learning.add(rows, bits)
        self.records.add(rows)

    # -- input and output, for the handlers and the data port ----------------------------------------

    def call_soon(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on the loop's thread between batches (paused and in standby too); any thread may call this.

        Its result or exception goes to the future. This is how another
        thread (the data port's) touches the brain, which only the loop's
        thread may: Taichi is not thread-safe. Once the loop has ended the
        future fails at once.
        """
        future: Future[Any] = Future()
        with self._closing:
            if not self.closed:
                self.inbox.put(Soon(fn, future))
                return future
        future.set_exception(RuntimeError("the agent is going down"))
        return future

    def room(self) -> int:
        """Units that could be fed now without :class:`Busy` (0 for a family without an input area)."""
        if self.records.unit is None:
            return 0
        return max(0, INPUT_LIMIT - int(self.runtime.queued()))

    def feed_units(self, data: bytes, sink: Sink | None = None) -> dict[str, Any]:
        """Queue ``data`` (all of it or none); the records of these units go to ``sink`` (None: ``read``'s buffer).

        Only on the loop's thread (through :meth:`call_soon` from another).
        Raises :class:`Busy` when the input queue has no room for all of it
        (nothing is queued then), :class:`NoInput` (a ``ValueError``) for a
        family without an input area, and ``ValueError`` for more than the
        queue ever holds.
        """
        unit = self.records.unit
        if unit is None:
            raise NoInput(
                f"family {self.family} has no input area: {self.runtime.io.description}"
            )
        if len(data) > INPUT_LIMIT:
            raise ValueError(f"{len(data)} units at once is more than the input queue holds ({INPUT_LIMIT})")
        queued = int(self.runtime.queued())  # units fed and not yet presented (the family's own count)
        if data and queued + len(data) > INPUT_LIMIT:
            raise Busy(queued, len(data), INPUT_LIMIT)
        if data:
            self.runtime.feed(data)
            self.records.accepted(len(data), sink)
            self.saver.touched()
        return {"fed": len(data), "queued": queued + len(data)}

    def forget_sink(self, sink: Sink) -> None:
        """``sink`` is gone (a data connection closed): records still due to it go to ``read``'s buffer. Loop thread only."""
        self.records.forget(sink)

    def io_status(self) -> dict[str, Any]:
        """``status``'s ``io``: the unit and the counts (only the unit, None, for a family without input)."""
        return self.records.counts(int(self.runtime.queued()) if self.records.unit is not None else 0)

    def save(self, why: str) -> str:
        """Write the state to the cache now, on this thread (see :meth:`Saver.save`)."""
        return self.saver.save(why)

    # -- the pace ---------------------------------------------------------------------------------

    def set_pace(self, pace: paces.Pace) -> None:
        """Keep ``pace`` from now on; refused (:class:`hera.pace.PaceError`) if this family cannot keep it."""
        self.pacer = Pacer(pace.rate(self.runtime.seconds_per_iteration, self.family))
        self.pace = pace
        self.saver.touched()  # saved with the agent: a down and up keeps it

    # -- status -----------------------------------------------------------------------------------

    def status(self, connection: Any = None) -> dict[str, Any]:
        """What the agent says of itself; with ``connection``, whether that one holds the prompt."""
        answer = {
            **self.info,
            "state": self.state.value,
            "iteration": self.runtime.iteration,
            "rate": round(self.rate, 1) if self.moving else 0.0,
            "pace": self.pace.text,
            "stopped_on": self.stopped_on,
            "breakpoints": [bp.describe() for bp in self.breakpoints],
            "io": self.io_status(),
            "learning": self.learning.summary() if self.learning is not None else None,
            "stats": self.runtime.stats(),
            **self.server.presence(),
        }
        if connection is not None:
            answer["you_hold"] = self.server.holding() is connection
        return answer

    def publish(self) -> None:
        """The snapshot ``status`` answers from, and the status file when something a listing shows changed."""
        snapshot = self.status()
        self.server.snapshot = snapshot
        if self.status_file is not None:
            self.status_file.publish(snapshot, moving=self.moving)

    def handle(self, call: Call) -> None:
        op = call.request.op
        try:
            handler = getattr(self.handlers, f"op_{op}")
        except AttributeError:
            call.fail(f"operation {op!r} is not supported")
            return
        # The reply waits until the snapshot that `status` answers from is current: a controller
        # that got "running" back from `run` must not then read "paused" from a `status`.
        held: list[Any] = []
        respond, call.respond = call.respond, held.append
        was = self.state
        try:
            handler(call, call.request.parsed)
        except Exit:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            call.fail(f"{op}: {exc}")
        except Exception as exc:  # a request must never take the agent down with it
            log.exception("%s failed", op)
            call.fail(f"{op} failed: {type(exc).__name__}: {exc}")
        finally:
            source = call.connection
            who = "SIGSTOP" if op == "signal" else source.who if source is not None else "a request"
            self.changed(was, who, source)
            self.publish()
            call.respond = respond  # a step's call is answered later, directly
            for reply in held:
                respond(reply)
