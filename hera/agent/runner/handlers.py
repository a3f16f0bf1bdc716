"""The agent's request handlers: one ``op_NAME(call, args)`` per operation of the control protocol.

Each receives its arguments already validated as the operation's model
(:data:`hera.agent.protocol.ARGS`: names, strict types, ranges), so nothing
here re-parses a raw dict; what is left to check here is what only the
running brain knows (a probe's name, whether the family keeps a real-time
pace). Handlers run on the loop's thread, between batches, and may touch the
brain. A ``ValueError`` becomes an error reply naming the operation
(:meth:`Runner.handle`).
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from hera.agent import protocol
from hera.agent.protocol import (
    Args,
    AttachArgs,
    BreakpointAddArgs,
    BreakpointRemoveArgs,
    FeedArgs,
    HistogramArgs,
    LearningArgs,
    PaceArgs,
    ReadArgs,
    RecordArgs,
    SignalArgs,
    StateArgs,
    StepArgs,
)
from hera.agent.runner.machine import Breakpoint, Exit, State
from hera.agent.runner.records import Busy, NoInput, as_dicts, outputs
from hera.agent.runner.saver import save_failure

if TYPE_CHECKING:
    from hera.agent.runner.machine import Runner
    from hera.agent.server import Call

log = logging.getLogger("hera.agent")

#: The most bytes one ``feed`` request may carry.
LINE_LIMIT = protocol.FEED_LIMIT
#: How the copies the agent writes for ``hera copy`` are named: ``.hera-copy.<uuid>.<iteration>.<random>``.
COPY_PREFIX = ".hera-copy."


class Handlers:
    """The operations, each on the runner it steers."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def _status(self, call: Call) -> None:
        call.ok(self.runner.status(call.connection))

    def op_run(self, call: Call, args: Args) -> None:
        self.runner.stop(State.RUNNING)
        self.runner.stopped_on = None
        self._status(call)

    def op_pause(self, call: Call, args: Args) -> None:
        self.runner.stop(State.PAUSED)
        self._status(call)

    def op_standby(self, call: Call, args: Args) -> None:
        self.runner.stop(State.STANDBY)
        self._status(call)

    def op_step(self, call: Call, args: StepArgs) -> None:
        self.runner.start_steps(args.n)
        self.runner.step_waiters.append(call)

    def op_pace(self, call: Call, args: PaceArgs) -> None:
        """Keep a pace from now on (see :mod:`hera.pace`); a factor needs the family's time step."""
        from hera.pace import parse

        self.runner.set_pace(parse(args.pace))
        self._status(call)

    def op_breakpoint_add(self, call: Call, args: BreakpointAddArgs) -> None:
        runner = self.runner
        if args.kind == "probe":
            value = str(args.value)
            if value not in runner.probe_names and not self._valid_neuron(value):
                raise ValueError(f"no probe {value!r}; probes: {', '.join(sorted(runner.probe_names))}")
        bp = Breakpoint(runner.next_breakpoint_id, args.kind, args.value)
        runner.next_breakpoint_id += 1
        runner.breakpoints.append(bp)
        call.ok(bp.describe())

    def _valid_neuron(self, value: str) -> bool:
        if not value.startswith("neuron:"):
            return False
        try:
            index = int(value.split(":", 1)[1])
        except ValueError:
            return False
        neurons = self.runner.info.get("neurons")
        return 0 <= index and (neurons is None or index < neurons)

    def op_breakpoint_remove(self, call: Call, args: BreakpointRemoveArgs) -> None:
        runner = self.runner
        before = len(runner.breakpoints)
        runner.breakpoints = [bp for bp in runner.breakpoints if args.id not in (bp.id, "all")]
        if len(runner.breakpoints) == before:
            raise ValueError(f"no breakpoint {args.id!r}")
        call.ok([bp.describe() for bp in runner.breakpoints])

    def op_breakpoints(self, call: Call, args: Args) -> None:
        call.ok([bp.describe() for bp in self.runner.breakpoints])

    def op_probes(self, call: Call, args: Args) -> None:
        call.ok(
            [{"name": p.name, "kind": p.kind, "size": p.size, "description": p.description} for p in self.runner.runtime.probes()]
        )

    def op_feed(self, call: Call, args: FeedArgs) -> None:
        """Queue input, all of it or none: with the input queue full the caller is told it is busy.

        The refusal is the back-pressure: ``hera signal SIGTTIN`` waits and
        sends the same bytes again, so nothing is dropped, and what waits (and
        is saved with every checkpoint) never grows past ``INPUT_LIMIT``. The
        records of these units go to ``read``'s buffer.
        """
        data = protocol.decode_data(args.data) if args.data is not None else (args.text or "").encode("utf-8", "replace")
        if len(data) > LINE_LIMIT:
            raise ValueError(f"more than {LINE_LIMIT} bytes in one request")
        try:
            call.ok(self.runner.feed_units(data))
        except Busy as busy:
            call.fail(f"{protocol.BUSY} {busy}")
        except NoInput as refused:
            call.fail(str(refused))

    def op_read(self, call: Call, args: ReadArgs) -> None:
        """The oldest unread records (at most ``limit``): their outputs as bytes, the records themselves if asked."""
        runner = self.runner
        runner.collect_records()
        rows, dropped = runner.records.take(args.limit)
        reply = {"data": protocol.encode_data(outputs(rows)), "dropped": dropped}
        if args.records:
            reply["records"] = as_dicts(rows)
        call.ok(reply)

    def op_record(self, call: Call, args: RecordArgs) -> None:
        """Step ``n`` single iterations, recording who spiked in the window (for rasters); then stay paused.

        ``spikes`` lists, per iteration, the neurons of ``first`` … ``end - 1``
        that spiked, ``limit`` indices in all at most (then ``truncated``);
        ``counts`` has every iteration's spikes in the window, listed or not.
        """
        import numpy as np

        runner = self.runner
        runner.stop(State.PAUSED)
        runner.saver.touched()
        start = runner.runtime.iteration
        neurons = runner.info.get("neurons")
        end = args.end if args.end is not None else neurons if neurons is not None else 2**62
        rows: list[list[int]] = []
        counts: list[int] = []
        room = args.limit
        for _ in range(args.n):
            runner.runtime.step(1)
            spiked = runner.runtime.spikes()
            if spiked is None:
                raise ValueError("this family does not report spikes")
            indices = np.asarray(spiked, dtype=np.int64)
            indices = indices[(indices >= args.first) & (indices < end)]
            counts.append(int(indices.size))
            listed = indices[:room].tolist()
            room -= len(listed)
            rows.append(listed)
        runner.collect_records()
        call.ok(
            {
                "start": start,
                "spikes": rows,
                "counts": counts,
                "truncated": sum(counts) > args.limit,
                "first": args.first,
                "end": end,
                "neurons": neurons,
            }
        )

    def op_histogram(self, call: Call, args: HistogramArgs) -> None:
        """Histograms of the arrays asked for, counted here in chunks: the brain never leaves the agent."""
        from hera.agent.histogram import arrays, histogram

        runtime = self.runner.runtime
        result = {name: histogram(array, args.bins, args.nonzero) for name, array in arrays(runtime, args.names, args.match)}
        call.ok({"iteration": runtime.iteration, "arrays": result})

    def op_learning(self, call: Call, args: LearningArgs) -> None:
        """How well the brain predicts what it was fed: the rolling figures, the last decisions, the curve."""
        runner = self.runner
        learning = runner.learning
        if learning is None:
            raise ValueError(
                f"family {runner.family} does not predict its input, so nothing is scored: {runner.runtime.io.description}"
            )
        runner.collect_records()  # anything made since the last batch is scored before the answer
        reply = {"iteration": runner.runtime.iteration, **learning.summary(), "decisions": learning.decisions(args.decisions)}
        if args.curve:
            reply["curve"] = learning.curve()
        call.ok(reply)

    def op_state(self, call: Call, args: StateArgs) -> None:
        from hera.agent.snapshot import write_snapshot

        info = self.runner.info
        call.ok({"path": str(write_snapshot(self.runner.runtime, args.names, info["runtime_dir"], info["uuid"]))})

    def op_checkpoint(self, call: Call, args: Args) -> None:
        """Answered by the writer thread once the state is written and verified; the loop runs on meanwhile."""
        try:
            self.runner.saver.start("checkpoint", waiter=call)
        except OSError:
            pass  # already answered with the reason

    def op_copy(self, call: Call, args: Args) -> None:
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
        info = self.runner.info
        directory = info.get("copy_dir") or info.get("runtime_dir")
        if not directory:
            raise ValueError("this agent has no private directory to write a copy into")
        name = f"{COPY_PREFIX}{info['uuid']}.{self.runner.runtime.iteration}.{secrets.token_hex(4)}"
        try:
            self.runner.saver.start("copy", target=Path(directory) / name, waiter=call)
        except OSError:
            pass  # already answered with the reason

    def op_attach(self, call: Call, args: AttachArgs) -> None:
        """The server made this connection the holder already; ``pause`` pauses too."""
        if args.pause:
            self.runner.stop(State.PAUSED)
        self._status(call)

    def op_detach(self, call: Call, args: Args) -> None:
        self._status(call)

    def op_signal(self, call: Call, args: SignalArgs) -> None:
        """A signal carried through the control plane: SIGSTOP cannot be caught, so it pauses the loop this way."""
        self.runner.stop(State.PAUSED)
        self._status(call)

    def op_down(self, call: Call, args: Args) -> None:
        """Save and leave; a save that fails leaves the agent up in the state it was in."""
        runner = self.runner
        was, steps = runner.state, runner.steps_left
        runner.stop(State.PAUSED)
        try:
            path = runner.saver.save("down")
        except OSError as exc:
            runner.state, runner.steps_left = was, steps
            message = save_failure("down", exc, runner.saver.saved_iteration)
            log.error(message)
            call.fail(message)
            return
        call.ok({"path": path, "iteration": runner.runtime.iteration})
        raise Exit(save=False, reason="down")
