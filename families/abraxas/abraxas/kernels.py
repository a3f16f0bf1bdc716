"""The Taichi kernels of one abraxas brain: its fields and one iteration, which hera's driver runs.

Imported only inside :meth:`abraxas.Abraxas.runtime`, after Taichi is
initialised. Every kernel is compiled for one brain: the sheet and projection
geometry are Python constants baked into the code, so the inner loops do no
look-ups of their own shape.

One iteration, in order (each phase is one loop over neurons, so on a GPU
each is one parallel task and the phases are separated by barriers):

1. ``integrate``: every neuron takes the current its ring slot holds for now
   (then clears it), leaks, adds counter-based noise and fires at threshold.
   The input sheet instead fires the neuron of the byte presented on this
   byte-clock tick. Output neurons only integrate; on a byte-clock tick they
   bid for the winner-take-all.
2. ``decide``: on a byte-clock tick, the strongest output neuron over
   threshold fires; its cell decodes to the predicted byte.
3. ``learn_output``: the third factor. The byte the input sheet was just given
   is the truth the previous bytes should have predicted. Synapses onto the
   output sheet whose spike arrives now (the eligible ones: tap k carries the
   byte k positions back) are potentiated onto the true neuron if it was not
   confidently over threshold, and depressed onto every other neuron that
   fired or came within ``margin`` of firing. A correct, confident prediction
   changes nothing: an error-correcting (perceptron-like) rule, not Hebbian
   growth, which plateaus lower (≈ 0.78 against ≈ 0.96 on the test sentence:
   docs/abraxas.md).
4. ``learn_hidden``: a hidden neuron that fired moves the weights of its
   field towards the spikes that just arrived (a competitive, instar rule);
   with its adaptive threshold this makes hidden cells detectors of
   conjunctions of bytes at several lags.
5. ``push``: every spike is scattered along its projections into the current
   rings of its targets, one slot per delay tap.

The current rings hold fixed-point integers, so parallel scatter-adds on a GPU
sum the same whatever their order: bit-exact resume holds on every arch.

The iteration is handed to :class:`hera.kernels.driver.Driver`, which runs
it fused (thousands of iterations per launch on a CPU) or as batches of
launches (a GPU), arms the breakpoints, names the probe that fired and counts
spikes per sheet. Every phase asks ``live()`` inside its loop (and around the
serial statements that change state), so a launch the driver queued after a
breakpoint changes nothing; spikes are reported with ``spiked(i, area)`` and a
byte produced by the output sheet with ``event(OUTPUT)``.
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

from collections.abc import Mapping
from typing import Any

import numpy as np
import taichi as ti

from abraxas.structure import BYTE_SIDE, AbraxasParams, Structure
from hera.kernels import rng
from hera.kernels.driver import Area, ColumnReader, Driver
from hera.kernels.io import presented
from hera.kernels.template import Template

#: Fixed-point scale of the current rings (weights are clipped well below 2**31 / FIXED).
FIXED = 65536.0
#: Winner-take-all keys pack the potential's bits above the cell index.
KEY_SHIFT = 1 << 24
#: The driver's event number of "the output sheet produced a byte" (the probe ``output``).
OUTPUT = 0


class Engine:
    """Fields and compiled kernels for one brain; the runtime drives it."""

    def __init__(
        self, structure: Structure, params: AbraxasParams, seed: int, *, launch_iterations: int, fused: bool
    ) -> None:
        """``fused``: one launch runs many iterations (CPUs); else one launch per iteration (GPUs)."""
        self.structure = structure
        s, p = structure, params
        n, slots = s.neurons, s.ring_slots
        ticks = p.ticks_per_byte
        self.launch_iterations = launch_iterations
        #: byte-clock ticks that can fall in one launch
        self.clock_capacity = launch_iterations // ticks + 2

        self.potential = ti.field(ti.f32, n)
        self.threshold = ti.field(ti.f32, n)
        self.refractory = ti.field(ti.i32, n)
        self.spikes = ti.field(ti.u8, (n, slots))
        self.current = ti.field(ti.i32, (n, slots))
        self.rng_key = ti.field(ti.u32, 2)
        self.weights = [ti.field(ti.f32, proj.shape) for proj in s.projections]
        # Per launch: the byte presented on each clock tick (-1: none), and what the output decided.
        self.schedule = ti.field(ti.i32, self.clock_capacity)
        self.log_iteration = ti.field(ti.i64, self.clock_capacity)
        self.log_predicted = ti.field(ti.i32, self.clock_capacity)
        self.log_actual = ti.field(ti.i32, self.clock_capacity)
        self.log_count = ti.field(ti.i32, ())
        self.winner_key = ti.field(ti.i64, ())
        self.rng_key.from_numpy(np.array(rng.seed_words(seed), np.uint32))
        # Launches, breakpoints, "which probe fired" and spikes per sheet: the driver's.
        self.driver = Driver(
            fused=fused,
            neurons=n,
            areas=[Area(a.name, a.offset, a.size, f"any neuron of sheet {a.name} ({a.width}×{a.height}) spiked")
                   for a in s.areas],
            events=[("output", "the output sheet produced a byte")],
        )
        #: The shell's raster reads one slot of the spike ring, not the ring.
        self.spike_column = ColumnReader(self.spikes)
        self._compile(s, p)

    # The kernels are closures over this brain's constants, so Taichi bakes them in.
    def _compile(self, s: Structure, p: AbraxasParams) -> None:  # noqa: C901 (one iteration, phase by phase)
        n, slots, ticks = s.neurons, s.ring_slots, p.ticks_per_byte
        inp, out = s.areas[0], s.areas[-1]
        hidden_start, output_start = inp.size, out.offset
        area_bounds = [(a.offset, a.offset + a.size) for a in s.areas]
        leak, threshold = p.neuron.leak, p.neuron.threshold
        refractory, sigma = p.neuron.refractory, p.neuron.noise
        rate, margin = p.plasticity.rate, p.plasticity.margin
        hidden_rate = p.plasticity.hidden_rate
        adaptation, adaptation_decay = p.plasticity.adaptation, p.plasticity.adaptation_decay
        limit = p.plasticity.weight_limit
        # (pre offset, pre w, pre h, post offset, post w, post h, field w, field h, taps, delay step)
        geo = [
            (
                q.pre.offset, q.pre.width, q.pre.height, q.post.offset, q.post.width, q.post.height,
                q.field_width, q.field_height, q.taps, q.delay_step,
            )
            for q in s.projections
        ]
        onto_output = [i for i, q in enumerate(s.projections) if q.post.name == "output"]
        onto_hidden = [i for i, q in enumerate(s.projections) if q.post.name != "output"]
        nproj = len(geo)
        weights = self.weights
        potential, thresh, refr = self.potential, self.threshold, self.refractory
        spikes, current, key = self.spikes, self.current, self.rng_key
        schedule, log_n = self.schedule, self.log_count
        log_it, log_pred, log_act = self.log_iteration, self.log_predicted, self.log_actual
        winner_key = self.winner_key
        driver = self.driver
        live, spiked, event = driver.live, driver.spiked, driver.event
        rounded, flushed = driver.rounded, driver.flushed  # the CPU's float bits on a GPU too (see hera.kernels.driver)

        @ti.func
        def area_of(i: ti.i32) -> ti.i32:
            found = 0
            for a in ti.static(range(len(area_bounds))):
                if area_bounds[a][0] <= i < area_bounds[a][1]:
                    found = a
            return found

        @ti.func
        def fired(i: ti.i32):
            """Neuron i spiked: the driver counts it per sheet and stops the run if it is watched."""
            spiked(i, area_of(i))

        @ti.func
        def pre_of(g: Template, post_local: ti.i32, fx: ti.i32, fy: ti.i32) -> ti.i32:
            """Global index of the pre neuron at field position (fx, fy) of a post cell (see Projection.pre_cell)."""
            px = post_local % g[4]
            py = post_local // g[4]
            cx = px * g[1] // g[4]
            cy = py * g[2] // g[5]
            ax = (cx - g[6] // 2 + fx + g[1]) % g[1]
            ay = (cy - g[7] // 2 + fy + g[2]) % g[2]
            return g[0] + ay * g[1] + ax

        @ti.func
        def integrate(t: ti.i64, byte: ti.i32):
            slot = ti.cast(t % slots, ti.i32)
            clock = t % ticks == 0
            for i in range(n):
                if live():
                    arriving = ti.cast(current[i, slot], ti.f32) * (1.0 / FIXED)
                    current[i, slot] = 0
                    spike = 0
                    if i < hidden_start:
                        if byte >= 0 and i == byte % BYTE_SIDE + (byte // BYTE_SIDE) * inp.width:
                            spike = 1
                    else:
                        noise = rounded(sigma * rounded(rng.normal_clt(rng.bits(key[0], key[1], t, i, ti.u32(0)))))
                        x = rounded(potential[i] * leak) + arriving + noise
                        if i < output_start:
                            extra = rounded(thresh[i] * adaptation_decay)
                            if refr[i] > 0:
                                refr[i] -= 1
                                x = 0.0
                            elif x >= threshold + extra:
                                spike = 1
                                x = 0.0
                                refr[i] = refractory
                                extra += adaptation
                            thresh[i] = flushed(extra)
                        elif clock and x >= threshold:
                            # Positive floats order like their bits; the lower cell wins a tie.
                            bits = ti.cast(ti.bit_cast(x, ti.i32), ti.i64)
                            ti.atomic_max(winner_key[None], bits * KEY_SHIFT + (KEY_SHIFT - 1 - (i - output_start)))
                        potential[i] = flushed(x)
                    spikes[i, slot] = ti.cast(spike, ti.u8)
                    if spike:
                        fired(i)

        @ti.func
        def decide(t: ti.i64, byte: ti.i32):
            slot = ti.cast(t % slots, ti.i32)
            if live() and t % ticks == 0:
                predicted = -1
                best = winner_key[None]
                if best >= 0:
                    cell = ti.cast(KEY_SHIFT - 1 - best % KEY_SHIFT, ti.i32)
                    spikes[output_start + cell, slot] = ti.cast(1, ti.u8)
                    fired(output_start + cell)
                    cx, cy = cell % out.width, cell // out.width
                    if cx < BYTE_SIDE and cy < BYTE_SIDE:
                        predicted = cy * BYTE_SIDE + cx
                        event(OUTPUT)
                if predicted >= 0 or byte >= 0:
                    k = log_n[None]
                    log_it[k] = t
                    log_pred[k] = predicted
                    log_act[k] = byte
                    log_n[None] = k + 1

        @ti.func
        def learn_output(t: ti.i64, byte: ti.i32):
            slot = ti.cast(t % slots, ti.i32)
            true_cell = -1
            if byte >= 0:
                true_cell = byte % BYTE_SIDE + (byte // BYTE_SIDE) * out.width
            for cell in range(out.size):
                if live():
                    i = output_start + cell
                    x = potential[i]
                    if t % ticks == 0:
                        delta = 0.0
                        if true_cell >= 0:
                            if cell == true_cell:
                                if x < threshold + margin:
                                    delta = rate
                            elif x > threshold - margin:
                                delta = -rate
                        if delta != 0.0:
                            for q in ti.static(onto_output):
                                g = ti.static(geo[q])
                                for fy, fx, k in ti.ndrange(g[7], g[6], g[8]):
                                    pre = pre_of(g, cell, fx, fy)
                                    back = ti.cast((t - (k + 1) * g[9]) % slots, ti.i32)
                                    if spikes[pre, back] != 0:
                                        w = weights[q][cell, fy, fx, k] + delta
                                        weights[q][cell, fy, fx, k] = ti.min(ti.max(w, -limit), limit)
                        if spikes[i, slot] != 0:
                            potential[i] = 0.0  # the winner resets, after the rule has read its potential

        @ti.func
        def learn_hidden(t: ti.i64):
            slot = ti.cast(t % slots, ti.i32)
            for i in range(hidden_start, output_start):
                if live():
                    if spikes[i, slot] != 0:
                        for q in ti.static(onto_hidden):
                            g = ti.static(geo[q])
                            if g[3] <= i < g[3] + g[4] * g[5]:
                                cell = i - g[3]
                                for fy, fx, k in ti.ndrange(g[7], g[6], g[8]):
                                    pre = pre_of(g, cell, fx, fy)
                                    back = ti.cast((t - (k + 1) * g[9]) % slots, ti.i32)
                                    arrived = ti.cast(spikes[pre, back], ti.f32)
                                    w = weights[q][cell, fy, fx, k]
                                    weights[q][cell, fy, fx, k] = flushed(w + rounded(hidden_rate * (arrived - w)))

        @ti.func
        def push(t: ti.i64):
            slot = ti.cast(t % slots, ti.i32)
            for j in range(output_start):
                if live():
                    if spikes[j, slot] != 0:
                        for q in ti.static(range(nproj)):
                            g = ti.static(geo[q])
                            if g[0] <= j < g[0] + g[1] * g[2]:
                                local = j - g[0]
                                ax, ay = local % g[1], local // g[1]
                                for fy, fx in ti.ndrange(g[7], g[6]):
                                    # centres whose field puts this cell at (fx, fy), then the posts with that centre
                                    cy = (ay + g[7] // 2 - fy + g[2]) % g[2]
                                    cx = (ax + g[6] // 2 - fx + g[1]) % g[1]
                                    py0 = (cy * g[5] + g[2] - 1) // g[2]
                                    py1 = ((cy + 1) * g[5] + g[2] - 1) // g[2]
                                    px0 = (cx * g[4] + g[1] - 1) // g[1]
                                    px1 = ((cx + 1) * g[4] + g[1] - 1) // g[1]
                                    for py, px in ti.ndrange((py0, py1), (px0, px1)):
                                        post = py * g[4] + px
                                        for k in ti.static(range(g[8])):
                                            w = weights[q][post, fy, fx, k]
                                            if w != 0.0:
                                                at = ti.cast((t + (k + 1) * g[9]) % slots, ti.i32)
                                                amount = ti.cast(ti.round(w * FIXED), ti.i32)
                                                ti.atomic_add(current[g[3] + post, at], amount)

        @ti.func
        def iterate(t: ti.i64, first_clock: ti.i64):
            """One iteration; ``first_clock`` is the byte-clock tick ``schedule[0]`` presents."""
            byte = presented(schedule, t, first_clock, ticks)
            if live():
                winner_key[None] = -1
            integrate(t, byte)
            decide(t, byte)
            learn_output(t, byte)
            learn_hidden(t)
            push(t)

        driver.compile(iterate)

    # -- state in and out --------------------------------------------------------------------------

    def load(self, arrays: Mapping[str, np.ndarray], dynamic: bool) -> None:
        """Weights always; the dynamic state when the header says there is one (else the brain starts at rest)."""
        for proj, field in zip(self.structure.projections, self.weights, strict=True):
            field.from_numpy(np.ascontiguousarray(arrays[f"weights.{proj.name}"], dtype=np.float32))
        # Zero everything explicitly: a field can reuse memory a collected brain freed, and
        # Taichi does not promise it is cleared.
        for field in (self.potential, self.threshold, self.refractory, self.spikes, self.current, self.schedule):
            field.fill(0)
        if dynamic:  # the header decides, never the arrays: see Structure.check_arrays
            self.potential.from_numpy(arrays["state.potential"])
            self.threshold.from_numpy(arrays["state.threshold"])
            self.refractory.from_numpy(arrays["state.refractory"])
            self.spikes.from_numpy(arrays["state.spikes"])
            self.current.from_numpy(arrays["state.current"])
            self.rng_key.from_numpy(arrays["state.rng_key"])

    def fields(self) -> dict[str, Any]:
        """The fields the state is exported from, by array name (one at a time for ``down``: see ``export_array``)."""
        fields: dict[str, Any] = {
            f"weights.{proj.name}": field for proj, field in zip(self.structure.projections, self.weights, strict=True)
        }
        fields["state.potential"] = self.potential
        fields["state.threshold"] = self.threshold
        fields["state.refractory"] = self.refractory
        fields["state.spikes"] = self.spikes
        fields["state.current"] = self.current
        fields["state.rng_key"] = self.rng_key
        return fields

    def export(self) -> dict[str, Any]:
        return {name: field.to_numpy() for name, field in self.fields().items()}
