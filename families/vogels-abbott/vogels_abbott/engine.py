"""The Taichi fields and kernels of one CUBA network, composed from :mod:`hera.kernels`.

Imported only by :mod:`vogels_abbott.runtime` (it imports Taichi). Kernels
are closures over one network's constants, so Taichi bakes them in.

One iteration ``t``, in Brian2's order (state update, threshold, synapses, reset):

1. every neuron (in lane vectors of ``lanes`` neurons, so that the CPU vectorises)
   takes its input arriving at ``t`` from the ring into ``ge``/``gi``,
   integrates exactly over one step (holding ``v`` while refractory), and fires
   above threshold; spikes are appended to this step's spike list;
2. every spiking neuron pushes its CSR row into the ring slot of ``t + delay``
   (excitatory rows into channel 0, inhibitory into 1); with STDP an excitatory
   row is then depressed by the postsynaptic traces and its presynaptic trace jumps;
3. with STDP every spiking neuron's trace jumps and its incoming excitatory
   synapses are potentiated by their presynaptic traces.

One iteration is written once, as ``iterate(t)``, and run by
:class:`hera.kernels.driver.Driver`: fused on a CPU (one launch runs a whole
``step(n)`` in a serial loop, breaking right after the iteration in which a
watched neuron or area fired), one launch per iteration with parallel phases on
a GPU (read once per batch of launches). Each phase asks ``live()`` first, so a
launch queued after a stop does nothing. Spikes are reported to the driver
(``spiked``), which counts them per area and checks the breakpoints on the
device. The spike log is the one thing the driver does not know: its room is
the driver's ``ready()``, so a full log ends a run (``blocked``), the runtime
drains it and runs on.

The ring holds fixed-point input, so phase 2's parallel atomic adds sum to the
same integers in any order: the per-iteration path is deterministic with any
number of threads, and with a delay above one both paths compute the same state
bit for bit (with delay one the fused path adds the input straight into
``ge``/``gi`` in float, so the two paths differ in the last bits).
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

from dataclasses import dataclass

import numpy as np
import taichi as ti

from hera.kernels import lif, plasticity, synapses as syn
from hera.kernels.driver import Area, Driver
from vogels_abbott import CubaParams

#: Fixed-point scale of the ring (mV × 2**20): a neuron's input in one step stays far below 2**31 / scale.
RING_SCALE = float(2**20)
#: Neurons per lane vector on a CPU (one AVX register of float32); a GPU uses 1 (one neuron per thread).
CPU_LANES = 8
#: The counter-based generator's stream for the initial potentials.
STREAM_INITIAL_V = 1


@dataclass(frozen=True)
class Model:
    """The constants of one network, as the kernels and the numpy reference use them."""

    neurons: int
    excitatory: int
    factors: lif.CubaFactors
    v_threshold: float
    v_reset: float
    refractory_steps: int
    delay_steps: int
    stdp: bool
    decay_pre: float = 0.0
    decay_post: float = 0.0
    a_pre: float = 0.0
    a_post: float = 0.0
    w_max: float = 0.0

    @classmethod
    def from_params(cls, p: CubaParams) -> "Model":
        f32 = lambda x: float(np.float32(x))  # noqa: E731 (constants as the kernels see them)
        extra = {}
        if p.stdp is not None:
            extra = dict(
                decay_pre=f32(lif.decay_factor(p.dt_ms, p.stdp.tau_pre_ms)),
                decay_post=f32(lif.decay_factor(p.dt_ms, p.stdp.tau_post_ms)),
                a_pre=f32(p.stdp.a_pre_mv),
                a_post=f32(p.stdp.a_post_mv),
                w_max=f32(p.stdp.w_max_mv),
            )
        return cls(
            neurons=p.neurons,
            excitatory=p.excitatory,
            factors=lif.CubaFactors.from_times(p.dt_ms, p.tau_m_ms, p.tau_e_ms, p.tau_i_ms, p.v_rest_mv),
            v_threshold=f32(p.v_threshold_mv),
            v_reset=f32(p.v_reset_mv),
            refractory_steps=lif.brian2_refractory_steps(p.refractory_ms, p.dt_ms),
            delay_steps=p.delay_steps,
            stdp=p.stdp is not None,
            **extra,
        )


class Engine:
    """Fields and the driver of one network; :class:`vogels_abbott.runtime.CubaRuntime` runs it."""

    def __init__(
        self,
        model: Model,
        synapses: int,
        plastic: int,
        log_capacity: int,
        *,
        fused: bool,
        direct: bool,
        lanes: int,
    ) -> None:
        """``fused``: the CPU's one launch per ``step`` (else one per iteration); ``direct`` needs it."""
        m = model
        n, ne = m.neurons, m.excitatory
        self.model = m
        self.log_capacity = log_capacity
        #: delay-one input added straight into ge/gi (the fused CPU path only) instead of through the ring
        self.direct = direct and fused and m.delay_steps == 1
        #: neurons per lane vector, and lane vectors (the last one padded)
        self.lanes = lanes
        self.groups = groups = -(-n // lanes)
        self.v = ti.Vector.field(lanes, ti.f32, groups)
        self.ge = ti.Vector.field(lanes, ti.f32, groups)
        self.gi = ti.Vector.field(lanes, ti.f32, groups)
        self.refractory = ti.Vector.field(lanes, ti.i32, groups)
        self.ring = ti.Vector.field(lanes, ti.i32, (2, m.delay_steps, groups))
        self.ptr = ti.field(ti.i32, n + 1)
        self.post = ti.field(ti.i32, max(1, synapses))
        self.weight = ti.field(ti.f32, max(1, synapses))
        self.spikes = ti.field(ti.i32, n)
        self.spike_count = ti.field(ti.i32, ())
        if m.stdp:
            # scalar fields (padded to whole lane vectors): read and written per neuron at spikes, and
            # decayed a lane vector at a time (Taichi 1.7 miscompiled lane access into vector fields here)
            self.a_pre = ti.field(ti.f32, groups * lanes)
            self.a_post = ti.field(ti.f32, groups * lanes)
            self.in_ptr = ti.field(ti.i32, n + 1)
            self.in_syn = ti.field(ti.i32, max(1, plastic))
            self.in_pre = ti.field(ti.i32, max(1, plastic))
        # the spike log (beyond the driver: its room is the driver's ready())
        self.record = ti.field(ti.i32, ())
        self.log_count = ti.field(ti.i32, ())
        self.log_iteration = ti.field(ti.i64, log_capacity)
        self.log_neuron = ti.field(ti.i32, log_capacity)
        #: breakpoints, spike counts per area, and the launches of one iteration (fused or per iteration)
        self.driver = Driver(
            fused=fused,
            neurons=n,
            areas=[
                Area("excitatory", 0, ne, "any excitatory neuron spiked"),
                Area("inhibitory", ne, n - ne, "any inhibitory neuron spiked"),
            ],
        )
        self._compile()

    def _compile(self) -> None:  # noqa: C901 (one iteration, phase by phase)
        m = self.model
        n, ne, cap = m.neurons, m.excitatory, self.log_capacity
        f, vt, vr, refr_steps = m.factors, m.v_threshold, m.v_reset, m.refractory_steps
        delay, stdp, direct = m.delay_steps, m.stdp, self.direct
        v, ge, gi, refr, ring = self.v, self.ge, self.gi, self.refractory, self.ring
        lanes, groups = self.lanes, self.groups
        ptr, post, weight = self.ptr, self.post, self.weight
        spikes, spike_count = self.spikes, self.spike_count
        record, log_count = self.record, self.log_count
        log_iteration, log_neuron = self.log_iteration, self.log_neuron
        live, spiked_in = self.driver.live, self.driver.spiked
        decay_pre, decay_post, jump_pre, jump_post, w_max = m.decay_pre, m.decay_post, m.a_pre, m.a_post, m.w_max
        if stdp:
            a_pre, a_post, in_ptr, in_syn, in_pre = self.a_pre, self.a_post, self.in_ptr, self.in_syn, self.in_pre
        else:  # never read (the STDP code is compiled out), but a closure needs every name bound
            a_pre = a_post = in_ptr = in_syn = in_pre = None

        @ti.func
        def fired(i: ti.i32, t: ti.i64):
            spikes[ti.atomic_add(spike_count[None], 1)] = i
            spiked_in(i, 0 if i < ne else 1)
            if record[None] != 0:
                at = ti.atomic_add(log_count[None], 1)
                log_iteration[at] = t
                log_neuron[at] = i

        @ti.func
        def group(g: ti.i32, t: ti.i64, slot: ti.i32):
            """One exact step of the lane vector ``g`` of neurons, branch-free so LLVM vectorises it."""
            ge_g = ge[g]
            gi_g = gi[g]
            if ti.static(not direct):
                ge_g += syn.take(ring, 0, slot, g, RING_SCALE)
                gi_g += syn.take(ring, 1, slot, g, RING_SCALE)
            v_g = v[g]
            free, count = lif.refractory_tick(refr[g])
            v_g = lif.hold(free, lif.cuba_membrane(v_g, ge_g, gi_g, f), v_g)
            spiked, v_g, count = lif.fire(v_g, free, vt, vr, count, refr_steps)
            v[g] = v_g
            refr[g] = count
            ge[g] = ge_g * f.decay_e
            gi[g] = gi_g * f.decay_i
            if ti.static(stdp):
                for lane in ti.static(range(lanes)):
                    a_pre[g * lanes + lane] *= decay_pre
                    a_post[g * lanes + lane] *= decay_post
            if any(spiked):  # rare: the branch costs nothing when not taken
                for lane in ti.static(range(lanes)):
                    if spiked[lane] and g * lanes + lane < n:
                        fired(g * lanes + lane, t)

        @ti.func
        def propagate(q: ti.i32, t: ti.i64):
            i = spikes[q]
            if ti.static(direct):
                if i < ne:
                    syn.add_row(ge, i, ptr, post, weight)
                else:
                    syn.add_row(gi, i, ptr, post, weight)
            else:
                syn.push_row(ring, 0 if i < ne else 1, t, i, ptr, post, weight, delay, RING_SCALE)
            if ti.static(stdp):
                if i < ne:
                    for k in range(ptr[i], ptr[i + 1]):
                        plasticity.pair_on_pre(weight, k, syn.value_at(a_post, post[k]), 0.0, w_max)
                    syn.add_at(a_pre, i, jump_pre)

        @ti.func
        def potentiate(q: ti.i32):
            j = spikes[q]
            syn.add_at(a_post, j, jump_post)
            for r in range(in_ptr[j], in_ptr[j + 1]):
                plasticity.pair_on_post(weight, in_syn[r], syn.value_at(a_pre, in_pre[r]), 0.0, w_max)

        @ti.func
        def iterate(t: ti.i64, arg: ti.i64):
            """Iteration ``t``, phase by phase (each phase a parallel loop where the driver launches one)."""
            if live():
                spike_count[None] = 0
            for g in range(groups):
                if live():
                    group(g, t, syn.slot_of(ring, t))
            for q in range(spike_count[None]):
                if live():
                    propagate(q, t)
            if ti.static(stdp):
                for q in range(spike_count[None]):
                    if live():
                        potentiate(q)

        @ti.func
        def ready() -> ti.i32:
            """Whether the spike log has room for one more iteration (every neuron spiking in it)."""
            room = 1
            if record[None] != 0 and log_count[None] > cap - n:
                room = 0
            return room

        self.driver.compile(iterate, ready)
