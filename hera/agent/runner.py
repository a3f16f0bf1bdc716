"""The inner loop: a state machine around a family's Runtime, on the agent's main thread.

States: ``running`` (iterating continuously), ``paused`` (the debug mode:
stopped at an exact iteration, waiting for commands) and ``standby`` (stopped
by Ctrl-C / SIGINT, idle until told to run). Work is done in batches sized to
about ``BATCH_SECONDS`` so control requests are picked up quickly; single
steps and breakpoints are exact because the batch is bounded by the next
iteration breakpoint and probe breakpoints stop the runtime itself at the
iteration they fire.

A Taichi kernel holds the GIL while it runs, so not even ``status`` is
answered during a batch: the pace therefore starts at one iteration per batch
(the first call compiles; nothing is known of the brain's speed yet) and grows
at most fourfold per batch towards ``BATCH_SECONDS``. A request waits at most
one batch, or one iteration where a single iteration takes longer than that.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hera.agent import protocol
from hera.agent.server import Call, ControlServer
from hera.runtime import Runtime

log = logging.getLogger("hera.agent")

BATCH_SECONDS = 0.04
MAX_BATCH = 1 << 20
#: Bytes of output kept for readers; older output is dropped (and counted).
OUTPUT_LIMIT = 1 << 20
#: Longest line a controller may feed, and the most bytes queued for input.
LINE_LIMIT = protocol.FEED_LIMIT
INPUT_LIMIT = 1 << 20
#: How the copies the agent writes for ``hera copy`` are named: ``.hera-copy.<uuid>.<iteration>.<random>``.
COPY_PREFIX = ".hera-copy."


@dataclass
class Breakpoint:
    id: int
    kind: str  # "iteration" | "every" | "probe"
    value: Any

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "value": self.value}


class Exit(Exception):
    """Leave the loop: ``save`` says whether the state goes to the cache first."""

    def __init__(self, save: bool, reason: str) -> None:
        super().__init__(reason)
        self.save = save
        self.reason = reason


#: What a family's state becomes once taken off the device: a writer to the cache (``None``) or to a copy's path.
Writer = Callable[[Path | None], str]


def save_failure(why: str, exc: OSError, saved_iteration: int) -> str:
    """One clear line for a save that could not be written (full disk, read-only or forbidden directory)."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return (
        f"{why} failed: {exc.strerror or exc}{where}; the agent keeps running and its cached file "
        f"keeps the previous save (iteration {saved_iteration})"
    )


class Runner:
    """Drives the runtime and answers the inbox between batches.

    Checkpoints, autosaves and copies take the state off the device on the
    loop's thread (the only pause) and write and verify it on a thread of
    their own while the loop runs on; one such write is in flight at a time,
    and ``down`` (or any synchronous save) waits for it first.
    """

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
    ) -> None:
        self.runtime = runtime
        self.server = server
        self.save_state = save
        #: Takes the state off the device and returns its writer; without one, saves are synchronous.
        self.export = export
        #: The background write in flight, if any (see :meth:`start_save`).
        self.saving: threading.Thread | None = None
        #: The iteration the cached file holds for sure (named when a save fails).
        self.saved_iteration = runtime.iteration
        self.autosave_interval = autosave_interval
        self.state = start_state
        self.info = info or {}
        self.breakpoints: list[Breakpoint] = []
        self.next_breakpoint_id = 1
        self.steps_left = 0
        self.step_waiters: list[Call] = []
        self.stopped_on: str | None = None
        #: Iterations in the next batch: starts at one, see the module's docstring.
        self.pace = 1
        self.batches = 0
        self.rate = 0.0
        #: Whether the brain changed since the last save (autosave skips an unchanged one).
        self.dirty = True
        self.output: deque[bytes] = deque()
        self.output_bytes = 0
        self.output_dropped = 0
        self.last_save = time.monotonic()
        self.probe_names = {p.name for p in runtime.probes()}
        #: Signal names noted by handlers, acted on by the loop (handlers must not touch queues or locks).
        self.signals: list[str] = [] if signals is None else signals
        self.publish()

    # -- the loop ---------------------------------------------------------------------------------

    def loop(self) -> Exit:
        """Run until told to exit; return how."""
        try:
            while True:
                self.act_on_signals()
                active = self.state == "running" or self.steps_left > 0
                self.drain(block=not active)
                if self.state == "running" or self.steps_left > 0:
                    self.batch()
                    # A kernel holds the GIL for the whole batch and the Python between batches is
                    # shorter than the switch interval, so without this the connection threads (accept,
                    # hello, reading requests) would get the GIL only now and then: a flood of
                    # connections then starved the owner's. sleep(0) hands it over, if anyone waits.
                    time.sleep(0)
                self.maybe_autosave()
        except Exit as leaving:
            self.finish_save(wait=True)
            return leaving

    def act_on_signals(self) -> None:
        """What the spec's signal table asks, done on the loop's own thread."""
        while self.signals:
            name = self.signals.pop(0)
            log.info("received %s at iteration %d in state %s", name, self.runtime.iteration, self.state)
            if name in ("SIGTERM", "SIGQUIT"):
                # Saved here, not after the loop: a save that fails (full disk) keeps the agent
                # running instead of ending it with its newest state lost.
                try:
                    self.save(name)
                except OSError as exc:
                    log.error("%s refused: %s", name, save_failure(name, exc, self.saved_iteration))
                    continue
                raise Exit(save=False, reason=name)
            if name == "SIGINT":
                self.stop("standby")
            elif name == "SIGTSTP":
                self.stop("paused")
            elif name == "SIGCONT":
                self.stop("running")
                self.stopped_on = None
                self.server.holder = None
            elif name == "SIGHUP":
                self.server.holder = None
            self.publish()

    def drain(self, block: bool) -> None:
        timeout = self._idle_timeout() if block else 0
        while True:
            try:
                call = self.server.inbox.get(timeout=timeout) if timeout else self.server.inbox.get_nowait()
            except queue.Empty:
                return
            timeout = 0
            self.handle(call)

    def _idle_timeout(self) -> float:
        if self.autosave_interval <= 0:
            return 0.1
        return max(0.01, min(0.1, self.last_save + self.autosave_interval - time.monotonic()))

    def stop(self, state: str) -> None:
        """Go to ``state``, cancelling steps still to run; whoever asked for them is told where it stopped."""
        self.state, self.steps_left = state, 0
        self.answer_steps()

    def answer_steps(self) -> None:
        if self.steps_left == 0 and self.step_waiters:
            self.publish()  # as in handle(): the snapshot first, then the replies
            status = self.status()
            for waiter in self.step_waiters:
                waiter.ok(status)
            self.step_waiters.clear()

    def batch(self) -> None:
        n = self.pace
        if self.steps_left > 0:
            n = min(n, self.steps_left)
        before = self.runtime.iteration
        limit = self._next_iteration_stop(before)
        if limit is not None:
            n = min(n, limit - before)
        probes = [bp.value for bp in self.breakpoints if bp.kind == "probe"]
        started = time.perf_counter()
        result = self.runtime.step(n, probes)
        elapsed = time.perf_counter() - started
        if result.iterations:
            self.dirty = True
            if self.batches > 0:  # the first call compiles kernels: its time says nothing of the pace
                fitting = int(BATCH_SECONDS * result.iterations / max(elapsed, 1e-9))
                # Follow slow-downs at once, speed-ups at most fourfold per batch.
                self.pace = max(1, min(MAX_BATCH, 4 * self.pace, fitting))
            self.rate = result.iterations / max(elapsed, 1e-9)
            self.batches += 1
        self.collect_output()
        if self.steps_left > 0:
            self.steps_left = max(0, self.steps_left - result.iterations)
        hit = result.stopped_on
        if hit is None and limit is not None and self.runtime.iteration == limit:
            hit = f"iteration:{limit}"
        if hit is not None:
            self.stopped_on = hit
            self.state = "paused"
            self.steps_left = 0
            log.info("breakpoint %s at iteration %d", hit, self.runtime.iteration)
        self.answer_steps()
        self.publish()

    def _next_iteration_stop(self, now: int) -> int | None:
        stops = []
        for bp in self.breakpoints:
            if bp.kind == "iteration" and bp.value > now:
                stops.append(bp.value)
            elif bp.kind == "every":
                stops.append((now // bp.value + 1) * bp.value)
        return min(stops) if stops else None

    def collect_output(self) -> None:
        data = self.runtime.read()
        if not data:
            return
        self.output.append(data)
        self.output_bytes += len(data)
        while self.output_bytes > OUTPUT_LIMIT:
            dropped = self.output.popleft()
            self.output_bytes -= len(dropped)
            self.output_dropped += len(dropped)

    def maybe_autosave(self) -> None:
        self.finish_save(wait=False)
        if self.autosave_interval > 0 and time.monotonic() - self.last_save >= self.autosave_interval:
            if self.saving is not None:
                return  # one write at a time; the one in flight is recent enough
            if not self.dirty:  # a paused brain is not written again and again
                self.last_save = time.monotonic()
                return
            try:
                self.start_save("autosave")
            except OSError as exc:  # a full disk must not kill the agent: the previous save stays good
                log.error(save_failure("autosave", exc, self.saved_iteration))
                self.last_save = time.monotonic()

    def save(self, why: str) -> str:
        """Write the state to the cache now, on this thread (down, SIGTERM): after any write in flight."""
        self.finish_save(wait=True)
        started = time.perf_counter()
        iteration = self.runtime.iteration
        path = self.save_state()
        self.last_save = time.monotonic()
        self.dirty = False
        self.saved_iteration = iteration
        log.info("%s: saved iteration %d in %.2f s", why, iteration, time.perf_counter() - started)
        return path

    def start_save(self, why: str, target: Path | None = None, waiter: Call | None = None) -> None:
        """Take the state off the device now and write it on a thread of its own; ``waiter`` is answered when written.

        ``target`` None is the cache (verified, the previous save kept as
        ``.prev``); a path is a point-in-time copy. Without an exporter the
        save is simply synchronous.
        """
        self.finish_save(wait=True)
        iteration = self.runtime.iteration
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
            self.last_save = time.monotonic()
            self.dirty = False

        def work() -> None:
            begun = time.perf_counter()
            try:
                path = write(target)
            except OSError as exc:
                if target is None:
                    self.dirty = True  # the next autosave tries again
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
                self.saved_iteration = max(self.saved_iteration, iteration)
            log.info(
                "%s: iteration %d taken off the device in %.3f s (the loop's pause), written in %.2f s",
                why, iteration, paused, time.perf_counter() - begun,
            )
            if waiter is not None:
                waiter.ok({"path": path, "iteration": iteration})

        self.saving = threading.Thread(target=work, name=f"hera-{why}", daemon=True)
        self.saving.start()

    def finish_save(self, wait: bool) -> None:
        """Forget a background write that has ended (waiting for it with ``wait``)."""
        if self.saving is not None and (wait or not self.saving.is_alive()):
            self.saving.join()
            self.saving = None

    # -- requests ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        moving = self.state == "running" or self.steps_left > 0
        return {
            **self.info,
            "state": self.state,
            "iteration": self.runtime.iteration,
            "rate": round(self.rate, 1) if moving else 0.0,
            "stopped_on": self.stopped_on,
            "breakpoints": [bp.describe() for bp in self.breakpoints],
            "output_bytes": self.output_bytes,
            "stats": self.runtime.stats(),
        }

    def publish(self) -> None:
        self.server.snapshot = self.status()

    def handle(self, call: Call) -> None:
        op, args = call.request.op, call.request.args
        try:
            handler = getattr(self, f"op_{op}")
        except AttributeError:
            call.fail(f"operation {op!r} is not supported")
            return
        # The reply waits until the snapshot that `status` answers from is current: a controller
        # that got "running" back from `run` must not then read "paused" from a `status`.
        held: list[Any] = []
        respond, call.respond = call.respond, held.append
        try:
            handler(call, args)
        except Exit:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            call.fail(f"{op}: {exc}")
        except Exception as exc:  # a request must never take the agent down with it
            log.exception("%s failed", op)
            call.fail(f"{op} failed: {type(exc).__name__}: {exc}")
        finally:
            self.publish()
            call.respond = respond  # a step's call is answered later, directly
            for reply in held:
                respond(reply)

    def op_run(self, call: Call, args: dict[str, Any]) -> None:
        self.stop("running")
        self.stopped_on = None
        call.ok(self.status())

    def op_pause(self, call: Call, args: dict[str, Any]) -> None:
        self.stop("paused")
        call.ok(self.status())

    def op_standby(self, call: Call, args: dict[str, Any]) -> None:
        self.stop("standby")
        call.ok(self.status())

    def op_step(self, call: Call, args: dict[str, Any]) -> None:
        n = int(args.get("n", 1))
        if n < 1:
            raise ValueError("n must be at least 1")
        self.stop("paused")  # a step asked while others run replaces them
        self.stopped_on = None
        self.steps_left = n
        self.step_waiters.append(call)

    def op_breakpoint_add(self, call: Call, args: dict[str, Any]) -> None:
        kind = args.get("kind")
        value = args.get("value")
        if kind in ("iteration", "every"):
            value = int(value)
            if value < 1:
                raise ValueError(f"{kind} breakpoint needs a positive number")
        elif kind == "probe":
            value = str(value)
            if value not in self.probe_names and not self._valid_neuron(value):
                raise ValueError(f"no probe {value!r}; probes: {', '.join(sorted(self.probe_names))}")
        else:
            raise ValueError("kind must be iteration, every or probe")
        bp = Breakpoint(self.next_breakpoint_id, kind, value)
        self.next_breakpoint_id += 1
        self.breakpoints.append(bp)
        call.ok(bp.describe())

    def _valid_neuron(self, value: str) -> bool:
        if not value.startswith("neuron:"):
            return False
        try:
            index = int(value.split(":", 1)[1])
        except ValueError:
            return False
        neurons = self.info.get("neurons")
        return 0 <= index and (neurons is None or index < neurons)

    def op_breakpoint_remove(self, call: Call, args: dict[str, Any]) -> None:
        wanted = args.get("id")
        before = len(self.breakpoints)
        self.breakpoints = [bp for bp in self.breakpoints if wanted not in (bp.id, "all")]
        if len(self.breakpoints) == before:
            raise ValueError(f"no breakpoint {wanted!r}")
        call.ok([bp.describe() for bp in self.breakpoints])

    def op_breakpoints(self, call: Call, args: dict[str, Any]) -> None:
        call.ok([bp.describe() for bp in self.breakpoints])

    def op_probes(self, call: Call, args: dict[str, Any]) -> None:
        call.ok([{"name": p.name, "kind": p.kind, "size": p.size, "description": p.description} for p in self.runtime.probes()])

    def op_feed(self, call: Call, args: dict[str, Any]) -> None:
        """Queue input, all of it or none: with ``INPUT_LIMIT`` bytes waiting the caller is told it is busy.

        The refusal is the back-pressure: ``hera signal SIGTTIN`` waits and
        sends the same bytes again, so nothing is dropped, and what waits (and
        is saved with every checkpoint) never grows past the limit.
        """
        if args.get("data") is not None:
            data = protocol.decode_data(args["data"])
        elif isinstance(args.get("text"), str):
            data = args["text"].encode("utf-8", "replace")
        else:
            raise ValueError("feed needs text or data")
        if len(data) > LINE_LIMIT:
            raise ValueError(f"line longer than {LINE_LIMIT} bytes")
        queued = self.queued_input()
        if data and queued + len(data) > INPUT_LIMIT:
            call.fail(
                f"{protocol.BUSY} the input queue is full ({queued} of {INPUT_LIMIT} bytes waiting, "
                f"{len(data)} more asked); retry once the agent has taken some in"
            )
            return
        self.runtime.feed(data)
        self.dirty = True
        call.ok({"fed": len(data), "queued": queued + len(data)})

    def queued_input(self) -> int:
        """Bytes fed and not yet taken in by the brain (the family's own count)."""
        return int(self.runtime.queued())

    def op_read(self, call: Call, args: dict[str, Any]) -> None:
        self.collect_output()
        data = b"".join(self.output)
        self.output.clear()
        self.output_bytes = 0
        dropped, self.output_dropped = self.output_dropped, 0
        call.ok({"text": data.decode("utf-8", "replace"), "dropped": dropped})

    def op_record(self, call: Call, args: dict[str, Any]) -> None:
        """Step ``n`` single iterations, recording who spiked (for rasters); then stay paused."""
        n = int(args.get("n", 200))
        if not 1 <= n <= 20000:
            raise ValueError("record takes 1 to 20000 iterations")
        self.stop("paused")
        self.dirty = True
        start = self.runtime.iteration
        rows: list[list[int]] = []
        for _ in range(n):
            self.runtime.step(1)
            spiked = self.runtime.spikes()
            if spiked is None:
                raise ValueError("this family does not report spikes")
            rows.append([int(i) for i in spiked])
        self.collect_output()
        call.ok({"start": start, "spikes": rows, "neurons": self.info.get("neurons")})

    def op_state(self, call: Call, args: dict[str, Any]) -> None:
        from hera.agent.snapshot import write_snapshot

        names = args.get("names")
        call.ok({"path": str(write_snapshot(self.runtime, names, self.info["runtime_dir"], self.info["uuid"]))})

    def op_checkpoint(self, call: Call, args: dict[str, Any]) -> None:
        """Answered by the writer thread once the state is written and verified; the loop runs on meanwhile."""
        try:
            self.start_save("checkpoint", waiter=call)
        except OSError:
            pass  # already answered with the reason

    def op_copy(self, call: Call, args: dict[str, Any]) -> None:
        """A complete point-in-time copy, written where only the owner reaches, under a name the agent makes.

        The request names no path: a path in a message would let whoever can
        send one make the agent write its brain where they like. The copy goes
        to ``info["copy_dir"]`` (the cache directory, where the agent's main
        process says so: on disk, and usually on the same file system as the
        user's files, so ``hera copy`` can hard-link it into place) or else to
        the runtime directory; both are the owner's alone. The name is hidden
        and not ``*.json``, so no listing takes it for an agent. ``hera copy``
        then moves it to where the user asked, resolving that path itself
        without following another user's links.
        """
        directory = self.info.get("copy_dir") or self.info.get("runtime_dir")
        if not directory:
            raise ValueError("this agent has no private directory to write a copy into")
        name = f"{COPY_PREFIX}{self.info['uuid']}.{self.runtime.iteration}.{secrets.token_hex(4)}"
        try:
            self.start_save("copy", target=Path(directory) / name, waiter=call)
        except OSError:
            pass  # already answered with the reason

    def op_attach(self, call: Call, args: dict[str, Any]) -> None:
        if args.get("pause"):
            self.stop("paused")
        call.ok(self.status())

    def op_detach(self, call: Call, args: dict[str, Any]) -> None:
        call.ok(self.status())

    def op_signal(self, call: Call, args: dict[str, Any]) -> None:
        """A signal carried through the control plane (SIGSTOP cannot be caught)."""
        name = args.get("name")
        if name == "SIGSTOP":
            self.stop("paused")
            call.ok(self.status())
            return
        raise ValueError(f"signal {name!r} is sent as a real signal, not through the control plane")

    def op_down(self, call: Call, args: dict[str, Any]) -> None:
        """Save and leave; a save that fails leaves the agent up in the state it was in."""
        was, steps = self.state, self.steps_left
        self.stop("paused")
        try:
            path = self.save("down")
        except OSError as exc:
            self.state, self.steps_left = was, steps
            message = save_failure("down", exc, self.saved_iteration)
            log.error(message)
            call.fail(message)
            return
        call.ok({"path": path, "iteration": self.runtime.iteration})
        raise Exit(save=False, reason="down")
