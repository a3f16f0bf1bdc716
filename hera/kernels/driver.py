"""One driver for every family's iteration: fused on a CPU, batched asynchronous launches on a GPU.

A family writes one iteration as a ``@ti.func`` ``iterate(t, arg)`` whose
phases are loops over neurons or spikes, and reports what happens in it
through the driver's functions (:attr:`Driver.spiked`, :attr:`Driver.event`).
The driver compiles the two ways of running it and everything around them
that every family would otherwise write again:

* **CPU, fused**: one launch runs up to ``count`` iterations in a serial
  outer loop and ``break``\\ s right after the iteration in which a watched
  probe fired (or before one the family is not ``ready`` for). A launch
  costs far more than a small brain's iteration, so this is what wins there.
* **GPU, batched**: one launch per iteration, each phase a parallel task;
  the host queues a batch of launches without waiting, and reads one packed
  outcome per batch, never once per iteration. A launch after a breakpoint
  (or a refusal of ``ready``) does nothing, because every phase of the
  family asks :attr:`Driver.live` first, so the stop is still exact.
* **Breakpoints** (probes ``neuron:N``, ``area:NAME`` and the family's named
  events): armed once per set, checked on the device where the spike
  happens, and the probes that fired are recorded there too, so "which
  probe stopped the run" reads a few integers, not a spike ring.
* **Spike counts per area** over one ``run`` call, for ``stats``.
* **The same float arithmetic on every device** (:attr:`Driver.rounded`,
  :attr:`Driver.flushed`): Taichi 1.7's CUDA backend marks every kernel
  function ``unsafe-fp-math`` and flushes float32 subnormals to zero even
  with fast math off, so LLVM fuses ``a * b + c`` into one FMA (one rounding
  instead of two) and a value below 2**-126 becomes 0 there but not on a
  CPU. A family that wants the CPU's bits on a GPU wraps each product that
  feeds an add in ``rounded`` (the product then is a float32 of its own,
  which no backend can fuse), and each value it keeps in ``flushed`` (zero
  below 2**-64, far above the subnormals, so no product of a kept value and
  a factor above 2**-60 can become one).

Why phases ask ``live()`` instead of the driver wrapping ``iterate`` in an
``if``: Taichi parallelises only the loops at a kernel's top level, and a
loop inside an ``if`` is no longer one. In the fused kernel ``live()`` is
the constant 1 and compiles away.

Usage, in a family's engine (after :func:`hera.kernels.init`)::

    driver = Driver(fused=is_cpu(arch), neurons=n, areas=[("input", 0, 256), ...], events=["output"])
    live, spiked = driver.live, driver.spiked

    @ti.func
    def iterate(t: ti.i64, arg: ti.i64):
        for i in range(n):
            if live():
                ...
                if fires:
                    spiked(i, area_of(i))

    driver.compile(iterate)
    driver.arm(["area:output"])          # raises HeraError for an unknown probe
    outcome = driver.run(4096, start=t0, arg=first_clock, fresh=True)
    outcome.iterations, outcome.hit, outcome.blocked, driver.which(stop_on)
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import taichi as ti

from hera.errors import HeraError
from hera.kernels import initialised_arch
from hera.runtime import Probe

#: Flags packed above the count of iterations in a launch's outcome (so one integer crosses per launch).
HIT = 1 << 30
BLOCKED = 1 << 29
#: The most iterations one fused launch may run (below the flags).
MAX_LAUNCH = BLOCKED - 1
#: Launches the batched (GPU) driver queues before it reads whether the run stopped.
BATCH = 256
#: Kept values smaller than this are zeroed by ``flushed`` (2**-64: see the module's docstring).
FLUSH_BELOW = 2.0**-64
#: Distinct ``neuron:N`` probes armed at once (each has its own "fired" slot on the device).
NEURON_PROBES = 64


@dataclass(frozen=True)
class Area:
    """A contiguous range of neurons with a name: what ``area:NAME`` watches and spike counts are kept for."""

    name: str
    offset: int
    size: int
    description: str = ""


@dataclass(frozen=True)
class Outcome:
    """What one :meth:`Driver.run` did: iterations run, whether a probe fired, whether the family refused more."""

    iterations: int
    hit: bool
    blocked: bool


@ti.func
def _always() -> ti.i32:
    return 1


class Driver:
    """The fields and kernels that run one family's iteration, with breakpoints, on one arch."""

    def __init__(
        self,
        *,
        fused: bool,
        neurons: int,
        areas: Sequence[Area],
        events: Sequence[tuple[str, str]] = (),
        batch: int = BATCH,
    ) -> None:
        """``events``: (name, description) of things other than spikes a probe may stop on (abraxas' "output")."""
        self.fused = fused
        self.neurons = neurons
        self.areas = list(areas)
        self.events = list(events)
        self.batch = batch
        self._armed: tuple[str, ...] | None = None
        self._neuron_slots: dict[int, int] = {}
        n_areas, n_events = max(1, len(self.areas)), max(1, len(self.events))
        # what is watched: neuron i holds 1 + its probe's slot (0: not watched)
        self.watch_neuron = ti.field(ti.i32, max(1, neurons))
        self.watch_area = ti.field(ti.i32, n_areas)
        self.watch_event = ti.field(ti.i32, n_events)
        # what fired in the iteration that stopped the run, and whether anything did
        self.fired_neuron = ti.field(ti.i32, NEURON_PROBES)
        self.fired_area = ti.field(ti.i32, n_areas)
        self.fired_event = ti.field(ti.i32, n_events)
        self.hit = ti.field(ti.i32, ())
        self.area_spikes = ti.field(ti.i64, n_areas)
        # the batched driver's book-keeping: a launch after a stop does nothing
        self.halted = ti.field(ti.i32, ())
        self.blocked = ti.field(ti.i32, ())
        self.ran = ti.field(ti.i32, ())
        # always 0, but only the device knows: an operand no compiler can fold away (see ``rounded``)
        self.zero = ti.field(ti.u32, ())
        self.zero.fill(0)
        self._fused_kernel: Any = None
        self._begin: Any = None
        self._once: Any = None
        self._outcome: Any = None
        self._define_funcs()

    # -- what a family's iteration calls ----------------------------------------------------------

    def _define_funcs(self) -> None:
        watch_neuron, watch_area, watch_event = self.watch_neuron, self.watch_area, self.watch_event
        fired_neuron, fired_area, fired_event = self.fired_neuron, self.fired_area, self.fired_event
        hit, halted, area_spikes, zero = self.hit, self.halted, self.area_spikes, self.zero
        fused = self.fused
        on_cuda = initialised_arch() == "cuda"

        @ti.func
        def spiked(i: ti.i32, area: ti.i32):
            """Neuron ``i`` of area number ``area`` spiked: count it, and stop the run if it is watched."""
            ti.atomic_add(area_spikes[area], 1)
            slot = watch_neuron[i]
            if slot != 0 or watch_area[area] != 0:
                hit[None] = 1
                if slot != 0:
                    fired_neuron[slot - 1] = 1
                if watch_area[area] != 0:
                    fired_area[area] = 1

        @ti.func
        def event(k: ti.i32):
            """The family's event number ``k`` happened (abraxas: the output sheet produced a byte)."""
            if watch_event[k] != 0:
                hit[None] = 1
                fired_event[k] = 1

        @ti.func
        def live() -> ti.i32:
            """Whether this launch runs its iteration (a batched launch after a stop does not)."""
            running = 1
            if ti.static(not fused):
                running = ti.cast(halted[None] == 0, ti.i32)
            return running

        @ti.func
        def rounded(x: ti.f32) -> ti.f32:
            """``x`` (a product) rounded to float32 on its own: passed through an integer xor with a zero
            the compiler cannot see, it can no longer be fused with the add that follows into an FMA."""
            kept = x
            if ti.static(on_cuda):  # Taichi's CPU backend fuses nothing without fast math: nothing to pay there
                kept = ti.bit_cast(ti.bit_cast(x, ti.u32) ^ zero[None], ti.f32)
            return kept

        @ti.func
        def flushed(x: ti.f32) -> ti.f32:
            """``x``, or 0 where it is below 2**-64 in size: what a GPU would flush, zeroed on every device alike."""
            kept = x
            if ti.abs(x) < FLUSH_BELOW:
                kept = 0.0
            return kept

        self.rounded: Callable[..., Any] = rounded
        self.flushed: Callable[..., Any] = flushed
        self.spiked: Callable[..., Any] = spiked
        self.event: Callable[..., Any] = event
        self.live: Callable[..., Any] = live

    # -- the kernels ---------------------------------------------------------------------------------

    def compile(self, iterate: Callable[..., Any], ready: Callable[..., Any] | None = None) -> None:
        """Build the launch kernels around the family's ``iterate(t, arg)``.

        ``ready()`` (a ``@ti.func`` returning non-zero) is asked before each
        iteration: whether the family can take another now (vogels-abbott: its
        spike log has room). A refusal ends the run with ``blocked``; the family
        drains and runs on.
        """
        ready = ready if ready is not None else _always
        hit, halted, blocked, ran = self.hit, self.halted, self.blocked, self.ran
        fired_neuron, fired_area, fired_event = self.fired_neuron, self.fired_area, self.fired_event
        area_spikes = self.area_spikes

        @ti.func
        def clear(fresh: ti.i32):
            """A new run call: nothing has fired and no spike is counted yet."""
            if fresh != 0:
                hit[None] = 0
                for k in range(fired_neuron.shape[0]):
                    fired_neuron[k] = 0
                for a in range(fired_area.shape[0]):
                    fired_area[a] = 0
                    area_spikes[a] = 0
                for e in range(fired_event.shape[0]):
                    fired_event[e] = 0

        if self.fused:

            @ti.kernel
            def fused(count: ti.i32, start: ti.i64, arg: ti.i64, fresh: ti.i32) -> ti.i32:
                """Up to ``count`` iterations on one thread; returns ``done + HIT * hit + BLOCKED * refused``."""
                clear(fresh)
                hit[None] = 0
                done = 0
                refused = 0
                ti.loop_config(serialize=True)
                for s in range(count):
                    if ready() == 0:
                        refused = 1
                        break
                    iterate(start + s, arg)
                    done += 1
                    if hit[None] != 0:
                        break
                return done + HIT * hit[None] + BLOCKED * refused

            self._fused_kernel = fused
            return

        @ti.kernel
        def begin(fresh: ti.i32):
            clear(fresh)
            hit[None] = 0
            halted[None] = 0
            blocked[None] = 0
            ran[None] = 0

        @ti.kernel
        def once(t: ti.i64, arg: ti.i64):
            """One iteration, each of the family's phases a parallel task; nothing once the run stopped."""
            if halted[None] == 0 and ready() == 0:
                blocked[None] = 1
                halted[None] = 1
            iterate(t, arg)
            if halted[None] == 0:
                ran[None] += 1
                if hit[None] != 0:
                    halted[None] = 1

        @ti.kernel
        def outcome() -> ti.i32:
            return ran[None] + HIT * hit[None] + BLOCKED * blocked[None]

        self._begin, self._once, self._outcome = begin, once, outcome

    def run(self, count: int, start: int, arg: int = 0, *, fresh: bool) -> Outcome:
        """Up to ``count`` iterations from ``start``; ``fresh`` for the first run of a ``step`` call.

        ``arg`` is handed to every ``iterate(t, arg)`` of this run as it is
        (abraxas: the first byte-clock tick of the launch's schedule). The
        batched path reads the device once per :data:`BATCH` launches.
        """
        if count <= 0:
            return Outcome(0, False, False)
        if self.fused:
            if self._fused_kernel is None:
                raise RuntimeError("Driver.compile was not called")
            packed = int(self._fused_kernel(min(count, MAX_LAUNCH), start, arg, int(fresh)))
            return Outcome(packed & MAX_LAUNCH, bool(packed & HIT), bool(packed & BLOCKED))
        done, first = 0, True
        while done < count:
            self._begin(int(fresh and first))
            first = False
            todo = min(self.batch, count - done)
            for k in range(todo):
                self._once(start + done + k, arg)
            packed = int(self._outcome())
            ran, hit, blocked = packed & MAX_LAUNCH, bool(packed & HIT), bool(packed & BLOCKED)
            done += ran
            if hit or blocked or ran < todo:
                return Outcome(done, hit, blocked)
        return Outcome(done, False, False)

    # -- breakpoints ---------------------------------------------------------------------------------

    def probes(self) -> list[Probe]:
        """The probes every brain on this driver offers by name: one per area, one per event.

        ``neuron:N`` (any of ``neurons``) is accepted by :meth:`arm` too, but not listed one by one.
        """
        found = [Probe(f"area:{a.name}", "area", a.size, a.description or f"any neuron of {a.name} spiked")
                 for a in self.areas]
        found += [Probe(name, "event", 1, description) for name, description in self.events]
        return found

    def arm(self, stop_on: Sequence[str]) -> None:
        """Watch exactly ``stop_on`` from now on; the device is written only when the set changes."""
        key = tuple(sorted(set(stop_on)))
        if key == self._armed:
            return
        names = [a.name for a in self.areas]
        events = [name for name, _ in self.events]
        areas = np.zeros(self.watch_area.shape[0], np.int32)
        flags = np.zeros(self.watch_event.shape[0], np.int32)
        neurons: dict[int, int] = {}
        for probe in key:
            kind, _, arg = probe.partition(":")
            if probe in events:
                flags[events.index(probe)] = 1
            elif kind == "area" and arg in names:
                areas[names.index(arg)] = 1
            elif kind == "neuron" and arg.isascii() and arg.isdigit() and int(arg) < self.neurons:
                neurons.setdefault(int(arg), len(neurons))
            else:
                listed = ", ".join([*events, f"neuron:0..{self.neurons - 1}", *(f"area:{n}" for n in names)])
                raise HeraError(f"no probe {probe!r} in this brain", hint=f"probes: {listed}")
        if len(neurons) > NEURON_PROBES:
            raise HeraError(
                f"{len(neurons)} neuron probes at once", hint=f"watch at most {NEURON_PROBES} neurons, or an area"
            )
        watch = np.zeros(self.watch_neuron.shape[0], np.int32)
        for neuron, slot in neurons.items():
            watch[neuron] = slot + 1
        self.watch_neuron.from_numpy(watch)
        self.watch_area.from_numpy(areas)
        self.watch_event.from_numpy(flags)
        self._neuron_slots = neurons
        self._armed = key

    def which(self, stop_on: Sequence[str]) -> str | None:
        """The first probe of ``stop_on`` that fired in the iteration that stopped the last run, if any did."""
        if not stop_on:
            return None
        names = [a.name for a in self.areas]
        events = [name for name, _ in self.events]
        neurons = self.fired_neuron.to_numpy()
        areas = self.fired_area.to_numpy()
        flags = self.fired_event.to_numpy()
        for probe in stop_on:
            kind, _, arg = probe.partition(":")
            if probe in events and flags[events.index(probe)]:
                return probe
            if kind == "area" and arg in names and areas[names.index(arg)]:
                return probe
            slot = self._neuron_slots.get(int(arg)) if kind == "neuron" and arg.isascii() and arg.isdigit() else None
            if slot is not None and neurons[slot]:
                return probe
        return None

    def area_counts(self) -> dict[str, int]:
        """Spikes per area since the last ``fresh`` run (one read of a few integers)."""
        counts = self.area_spikes.to_numpy()
        return {area.name: int(counts[k]) for k, area in enumerate(self.areas)}


@ti.kernel
def _copy_column(source: ti.template(), column: ti.i32, target: ti.template()):  # type: ignore[valid-type]
    for i in range(target.shape[0]):
        target[i] = source[i, column]


class ColumnReader:
    """Reads one column of a 2-D field (one slot of a spike ring) to the host, not the whole field.

    The ring of a large brain is hundreds of MB; the shell's raster asks for
    one slot every iteration, which is one neuron-sized copy here.
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        self.buffer = ti.field(source.dtype, source.shape[0])

    def read(self, column: int) -> np.ndarray:
        _copy_column(self.source, column, self.buffer)
        return np.asarray(self.buffer.to_numpy())
