"""The Taichi kernels of one abraxas brain: its fields and one iteration, which hera's driver runs.

Imported only inside :meth:`abraxas.Abraxas.runtime`, after Taichi is
initialised. Every kernel is compiled for one brain: the sheet and projection
geometry are Python constants baked into the code, so the inner loops do no
look-ups of their own shape.

One iteration, in order (each phase is one loop, so on a GPU each is one
parallel task and the phases are separated by barriers):

1. ``integrate``: every neuron takes the current its ring slot holds for now
   (then clears it). The input sheet fires the neuron of the byte presented
   on this byte-clock tick. A hidden sheet competes one iteration after the
   stage below it fired (``state.clocked``): each of its cells bids what
   arrived, minus its adaptive threshold, plus a little counter-based noise
   that breaks ties, for its group's winner-take-all (an integer key, so the
   atomic max is the same on every backend). Output neurons leak, integrate
   and take noise; on a byte-clock tick they bid for the output's
   winner-take-all, and the byte cells' drive before this tick's noise is
   kept for the softmax.
2. ``compete``: each hidden group's best bidder fires, and its threshold
   rises by ``adaptation`` (Diehl & Cook 2015), so every cell gets its turn
   and a group's cells come to stand for different conjunctions.
3. ``decide``: on a byte-clock tick, the strongest output neuron over
   threshold fires; its cell decodes to the predicted byte. The softmax of the
   byte cells' drive is normalised here in a fixed order (one thread, the
   same bits everywhere), and ``log2 p(byte presented)`` is logged with the
   decision.
4. ``eligible`` and ``learn_output``: the third factor. The byte the input
   sheet was just given is the truth the previous bytes should have
   predicted. The synapses onto the output sheet whose spike arrives now (an
   input tap carrying a byte k back, a hidden winner) are listed, and every
   byte cell moves their weights by ``rate · (target - p) / listed``: the
   softmax delta rule, normalised by its input (NLMS) so that a brain with
   ten times the winners takes the same step; calibrated by construction, it
   changes little once ``p`` is right. Surprise modulates it
   (neuromodulation): the output's log-loss is averaged over the last few
   dozen bytes and the last thousand (``state.surprise``); where the recent
   average is clearly the higher (the source changed), the step is boosted and the
   synapses it moves first forget a little of what they held, so a changed
   source is relearned faster than it was first learned. First learning,
   where both averages fall together, runs the plain rule.
5. ``learn_hidden``: a hidden winner moves the weights of its field towards
   the spikes that just arrived at its two taps (a clock-gated instar rule:
   it runs only when input arrives), so it becomes the detector of one
   conjunction of the byte just presented and one ``lag`` bytes back.
6. ``push``: every spike is scattered along its projections into the current
   rings of its targets, one slot per delay.
7. ``advance``: which stages fired, so which hidden sheet competes next.

The current rings hold fixed-point integers, so parallel scatter-adds on a GPU
sum the same whatever their order; the exponentials and logarithm are written
in additions and (``rounded``) products, not a maths library's, whose last
bits differ between devices: bit-exact resume holds on every arch.

The iteration is handed to :class:`hera.kernels.driver.Driver`, which runs
it fused (thousands of iterations per launch on a CPU) or as batches of
launches (a GPU), arms the breakpoints, names the probe that fired and counts
spikes per sheet. Every phase asks ``live()`` inside its loop (and around the
serial statements that change state), so a launch the driver queued after a
breakpoint changes nothing; spikes are reported with ``spiked(i, area)`` and a
byte produced by the output sheet with ``event(OUTPUT)``.
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import taichi as ti

from abraxas.structure import BYTE_SIDE, BYTE_VALUES, AbraxasParams, Structure
from hera.kernels import rng
from hera.kernels.driver import Area, ColumnReader, Driver
from hera.kernels.io import presented
from hera.kernels.template import Template

#: Fixed-point scale of the current rings (weights are clipped well below 2**31 / FIXED).
FIXED = 65536.0
#: Winner-take-all keys pack a non-negative float's bits above the cell's index (24 bits) in its group.
KEY_SHIFT = 1 << 24
#: Added to a hidden bid so that it stays positive (a threshold far above it silences nobody for good).
BID_BIAS = 64.0
#: The driver's event number of "the output sheet produced a byte" (the probe ``output``).
OUTPUT = 0
LOG2E = 1.0 / math.log(2.0)
LN2 = math.log(2.0)
SQRT2 = math.sqrt(2.0)
#: log2 p of a decision with no byte presented (nothing to score).
NAN = float("nan")


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
        self.spikes = ti.field(ti.u8, (n, slots))
        self.current = ti.field(ti.i32, (n, slots))
        self.clocked = ti.field(ti.i32, p.hidden.depth + 1)
        self.rng_key = ti.field(ti.u32, 2)
        self.weights = [ti.field(ti.f32, proj.shape) for proj in s.projections]
        # Per launch: the byte presented on each clock tick (-1: none), and what the output decided.
        self.schedule = ti.field(ti.i32, self.clock_capacity)
        self.log_iteration = ti.field(ti.i64, self.clock_capacity)
        self.log_predicted = ti.field(ti.i32, self.clock_capacity)
        self.log_actual = ti.field(ti.i32, self.clock_capacity)
        self.log_logp = ti.field(ti.f32, self.clock_capacity)
        self.log_count = ti.field(ti.i32, ())
        # Within one iteration: the winner-take-all keys, the softmax, and the synapses the output rule moves.
        self.winner_key = ti.field(ti.i64, ())
        self.group_key = ti.field(ti.i64, max(1, s.groups))
        #: Each group's winner in this iteration (-1: none): what the instar rule moves.
        self.winner = ti.field(ti.i32, max(1, s.groups))
        #: The input cell that fired at each ring slot (-1: none), so rules read one cell, not the sheet's ring
        #: column. Not state of its own: :meth:`load` derives it from the spike ring.
        self.input_ring = ti.field(ti.i32, slots)
        self.lag_table = ti.field(ti.i32, len(s.lags))
        self.drive = ti.field(ti.f32, BYTE_VALUES)
        self.softmax = ti.field(ti.f32, 3)  # the largest drive, log2 of the normaliser, the output rule's boost
        #: The output's log-loss (bits per byte presented) averaged recently and over the long run, and the bytes
        #: scored (up to ``surprise_slow``): the surprise.
        self.surprise = ti.field(ti.f32, 3)
        #: 1 / n for n bytes scored (0 for none): the averages' rate while they have seen fewer bytes than they
        #: span (made on the host, so the same float32 on every device).
        self.mean_rate = ti.field(ti.f32, p.plasticity.surprise_slow + 1)
        #: One entry per synapse onto the output whose spike arrives now: every input tap, one winner per group.
        self.eligible_capacity = s.taps + s.groups
        self.eligible = ti.field(ti.i32, (self.eligible_capacity, 3))  # projection, pre cell, tap
        self.eligible_count = ti.field(ti.i32, ())
        #: The output rule's step per synapse when k synapses are eligible: rate / k (made on the host, so the
        #: same float32 on every device; a GPU's division need not round like a CPU's).
        self.step_for = ti.field(ti.f32, self.eligible_capacity + 1)
        self.rng_key.from_numpy(np.array(rng.seed_words(seed), np.uint32))
        self.lag_table.from_numpy(np.array(s.lags, np.int32))
        counts = np.arange(self.eligible_capacity + 1, dtype=np.float64)
        self.step_for.from_numpy(np.where(counts > 0, p.plasticity.rate / np.maximum(counts, 1), 0).astype(np.float32))
        seen = np.arange(p.plasticity.surprise_slow + 1, dtype=np.float64)
        self.mean_rate.from_numpy(np.where(seen > 0, 1.0 / np.maximum(seen, 1), 0).astype(np.float32))
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
    def _compile(self, s: Structure, p: AbraxasParams) -> None:  # noqa: C901, PLR0915 (one iteration, phase by phase)
        n, slots, ticks = s.neurons, s.ring_slots, p.ticks_per_byte
        inp, out = s.areas[0], s.areas[-1]
        depth = p.hidden.depth
        hidden_start, output_start = inp.size, out.offset
        hw, hh = p.hidden.width, p.hidden.height
        sheet_size = hw * hh
        group_rows, per_sheet, groups = p.hidden.group_rows, s.groups_per_sheet, s.groups
        group_cells = hw * group_rows
        taps, step = s.taps, p.delay_step
        area_bounds = [(a.offset, a.offset + a.size) for a in s.areas]
        leak, threshold, sigma = p.neuron.leak, p.neuron.threshold, p.neuron.noise
        hidden_sigma = p.neuron.hidden_noise
        rate, hidden_rate = p.plasticity.rate, p.plasticity.hidden_rate
        adaptation, adaptation_decay = p.plasticity.adaptation, p.plasticity.adaptation_decay
        limit = p.plasticity.weight_limit
        gain, boost_limit = p.plasticity.surprise, p.plasticity.surprise_limit - 1.0
        margin = p.plasticity.surprise_margin
        fast_span, slow_span = p.plasticity.surprise_fast, p.plasticity.surprise_slow
        surprise, mean_rate = self.surprise, self.mean_rate
        forget = p.plasticity.surprise_decay
        index = {q.name: k for k, q in enumerate(s.projections)}
        into_hidden = [index[f"{'input' if i == 0 else f'hidden{i - 1}'}-hidden{i}"] for i in range(depth)]
        hidden_out = [index[f"hidden{i}-output"] for i in range(depth)]
        input_out = index["input-output"]
        # hidden sheet i -> hidden i+1 (a window): (pre offset, pre w, pre h, post w, post h, field w, field h)
        window = [
            (q.pre.offset, q.pre.width, q.pre.height, q.post.width, q.post.height, q.field_width, q.field_height)
            for q in (s.projections[into_hidden[i]] for i in range(1, depth))
        ]
        out_delay = [s.projections[hidden_out[i]].first for i in range(depth)]
        capacity = self.eligible_capacity
        #: The projections onto the output, with their pre sheet's width (an eligible entry's pre cell is y·w + x).
        read_out = [(q, s.projections[q].pre.width) for q in [input_out, *hidden_out]]
        weights = self.weights
        potential, thresh, clocked = self.potential, self.threshold, self.clocked
        spikes, current, key = self.spikes, self.current, self.rng_key
        schedule, log_n = self.schedule, self.log_count
        log_it, log_pred, log_act, log_logp = self.log_iteration, self.log_predicted, self.log_actual, self.log_logp
        winner_key, group_key, lag_table = self.winner_key, self.group_key, self.lag_table
        winner, input_ring = self.winner, self.input_ring
        drive, softmax, eligible, eligible_n = self.drive, self.softmax, self.eligible, self.eligible_count
        step_for = self.step_for
        driver = self.driver
        fused = driver.fused
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
        def exp2(y: ti.f32) -> ti.f32:
            """2**y for y <= 0 (0 below 2**-126), in additions and rounded products: the same bits on every device.

            2**floor(y) is made from its exponent bits; 2**f (0 <= f < 1) is
            sqrt(2) · e**((f - 1/2) ln 2), a Taylor polynomial of degree 7 there
            (relative error below 1e-7).
            """
            result = 0.0
            if y > -126.0:
                whole = ti.floor(y)
                v = rounded((y - whole - 0.5) * LN2)
                poly = 1.0 / 5040.0
                for c in ti.static([1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0]):
                    poly = rounded(poly * v) + c
                scale = ti.bit_cast((ti.cast(whole, ti.i32) + 127) << 23, ti.f32)
                result = rounded(rounded(poly * SQRT2) * scale)
            return result

        @ti.func
        def log2_of(total: ti.f32) -> ti.f32:
            """log2 of ``total`` >= 1 by Newton's method on :func:`exp2` from its exponent and mantissa bits."""
            bits = ti.bit_cast(total, ti.i32)
            y = ti.cast((bits >> 23) - 127, ti.f32) + (ti.bit_cast((bits & 0x7FFFFF) | 0x3F800000, ti.f32) - 1.0)
            for _ in ti.static(range(3)):
                y = y + rounded((rounded(total * exp2(-y)) - 1.0) * LOG2E)
            return y

        @ti.func
        def pre_window(g: Template, post_local: ti.i32, fx: ti.i32, fy: ti.i32) -> ti.i32:
            """Global index of the pre neuron at window position (fx, fy) of a post cell (see Projection.pre_cell)."""
            px = post_local % g[3]
            py = post_local // g[3]
            cx = px * g[1] // g[3]
            cy = py * g[2] // g[4]
            ax = (cx - g[5] // 2 + fx + g[1]) % g[1]
            ay = (cy - g[6] // 2 + fy + g[2]) % g[2]
            return g[0] + ay * g[1] + ax

        @ti.func
        def lag_of(cell: ti.i32) -> ti.i32:
            """The partner lag of a hidden cell (index within its sheet): its group's, rows never change group."""
            return lag_table[((cell // hw) // group_rows) % lag_table.shape[0]]

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
                        if i == 0:
                            input_ring[slot] = -1 if byte < 0 else byte % BYTE_SIDE + (byte // BYTE_SIDE) * inp.width
                    elif i < output_start:
                        local = i - hidden_start
                        sheet = local // sheet_size
                        cell = local % sheet_size
                        x = arriving
                        kept = flushed(rounded(thresh[i] * adaptation_decay))
                        if clocked[sheet] != 0:
                            noise = rounded(hidden_sigma * rounded(rng.normal_clt(rng.bits(key[0], key[1], t, i, ti.u32(0)))))
                            x = arriving + noise
                            bid = ti.max(x - kept + BID_BIAS, 0.0)
                            # Non-negative floats order like their bits; the lower cell wins a tie.
                            bits = ti.cast(ti.bit_cast(bid, ti.i32), ti.i64)
                            group = sheet * per_sheet + cell // group_cells
                            within = cell % group_cells
                            ti.atomic_max(group_key[group], bits * KEY_SHIFT + (KEY_SHIFT - 1 - within))
                        thresh[i] = kept
                        potential[i] = flushed(x)
                    else:
                        noise = rounded(sigma * rounded(rng.normal_clt(rng.bits(key[0], key[1], t, i, ti.u32(0)))))
                        driven = rounded(potential[i] * leak) + arriving
                        x = driven + noise
                        if clock:
                            cell = i - output_start
                            cx, cy = cell % out.width, cell // out.width
                            if cx < BYTE_SIDE and cy < BYTE_SIDE:
                                drive[cy * BYTE_SIDE + cx] = driven
                            if x >= threshold:
                                bits = ti.cast(ti.bit_cast(x, ti.i32), ti.i64)
                                ti.atomic_max(winner_key[None], bits * KEY_SHIFT + (KEY_SHIFT - 1 - cell))
                        potential[i] = flushed(x)
                    spikes[i, slot] = ti.cast(spike, ti.u8)
                    if spike:
                        fired(i)

        @ti.func
        def compete(t: ti.i64):
            slot = ti.cast(t % slots, ti.i32)
            for g in range(groups):
                if live():
                    sheet = g // per_sheet
                    won = -1
                    if clocked[sheet] != 0:
                        best = group_key[g]
                        if best >= 0:
                            within = ti.cast(KEY_SHIFT - 1 - best % KEY_SHIFT, ti.i32)
                            i = hidden_start + sheet * sheet_size + (g % per_sheet) * group_cells + within
                            spikes[i, slot] = ti.cast(1, ti.u8)
                            thresh[i] = flushed(thresh[i] + adaptation)
                            fired(i)
                            won = i
                        group_key[g] = -1
                    winner[g] = won

        @ti.func
        def surprised(loss: ti.f32) -> ti.f32:
            """Average the output's log-loss (bits) recently and over the long run; the output rule's boost.

            Neuromodulation: while the recent loss is no higher than the
            long-run one (first learning, where both fall together, or a source
            already learned) the boost is 1 and the rule is the plain one; when
            the recent loss rises above it (the source changed), the rule's step
            grows by ``gain`` per bit of the excess over ``surprise_margin``
            (the recent average's own jitter on a noisy source), up to
            ``surprise_limit``.

            Each is a running mean until it has seen the bytes it spans, then
            an exponential average over them: a fresh brain's long-run average
            starts at its first byte, not at a guess that would take thousands
            of bytes to wash out.
            """
            seen = ti.min(ti.max(ti.cast(surprise[2], ti.i32) + 1, 1), slow_span)
            fast = flushed(surprise[0] + rounded(mean_rate[ti.min(seen, fast_span)] * (loss - surprise[0])))
            slow = flushed(surprise[1] + rounded(mean_rate[seen] * (loss - surprise[1])))
            surprise[0] = fast
            surprise[1] = slow
            surprise[2] = ti.cast(seen, ti.f32)
            return 1.0 + ti.min(rounded(gain * ti.max(fast - slow - margin, 0.0)), boost_limit)

        @ti.func
        def decide(t: ti.i64, byte: ti.i32):
            slot = ti.cast(t % slots, ti.i32)
            if live() and t % ticks == 0:
                predicted = -1
                best = winner_key[None]
                if best >= 0:
                    cell = ti.cast(KEY_SHIFT - 1 - best % KEY_SHIFT, ti.i32)
                    spikes[output_start + cell, slot] = ti.cast(1, ti.u8)
                    potential[output_start + cell] = 0.0  # the winner resets
                    fired(output_start + cell)
                    cx, cy = cell % out.width, cell // out.width
                    if cx < BYTE_SIDE and cy < BYTE_SIDE:
                        predicted = cy * BYTE_SIDE + cx
                        event(OUTPUT)
                # The softmax of the byte cells' drive, in log2 units, summed in one fixed order.
                top = drive[0]
                for c in range(1, BYTE_VALUES):
                    top = ti.max(top, drive[c])
                total = 0.0
                for c in range(BYTE_VALUES):
                    total += exp2(rounded((drive[c] - top) * LOG2E))
                norm = log2_of(total)
                softmax[0] = top
                softmax[1] = norm
                logp = NAN
                if byte >= 0:
                    logp = rounded((drive[byte] - top) * LOG2E) - norm
                if predicted >= 0 or byte >= 0:
                    k = log_n[None]
                    log_it[k] = t
                    log_pred[k] = predicted
                    log_act[k] = byte
                    log_logp[k] = logp
                    log_n[None] = k + 1
                softmax[2] = 1.0
                if byte >= 0:
                    softmax[2] = surprised(-logp)

        @ti.func
        def listed(q: ti.i32, pre: ti.i32, tap: ti.i32):
            e = ti.atomic_add(eligible_n[None], 1)
            if e < capacity:
                eligible[e, 0] = q
                eligible[e, 1] = pre
                eligible[e, 2] = tap

        @ti.func
        def eligible_from(j: ti.i32, t: ti.i64):
            if j < hidden_start:
                for k in range(taps):
                    if input_ring[ti.cast((t - (k + 1) * step) % slots, ti.i32)] == j:
                        listed(input_out, j, k)
            else:
                local = j - hidden_start
                sheet = local // sheet_size
                for h in ti.static(range(depth)):
                    if sheet == h and spikes[j, ti.cast((t - out_delay[h]) % slots, ti.i32)] != 0:
                        listed(hidden_out[h], local % sheet_size, 0)

        @ti.func
        def gather_eligible(t: ti.i64, byte: ti.i32):
            """The synapses onto the output whose spike arrives now (in any order: each is one distinct weight)."""
            if ti.static(fused):  # one thread: skip the loop on the ticks that learn nothing
                if t % ticks == 0 and byte >= 0 and rate > 0:
                    for j in range(output_start):
                        eligible_from(j, t)
            else:
                for j in range(output_start):
                    if live() and t % ticks == 0 and byte >= 0 and rate > 0:
                        eligible_from(j, t)

        @ti.func
        def learn_cell(c: ti.i32, byte: ti.i32):
            """The softmax delta rule onto byte cell ``c``: every listed synapse moves by rate · (target - p) / listed.

            Both scaled by the surprise (:func:`surprised`): the step by the
            boost, and a listed weight first loses ``surprise_decay`` of itself
            per unit of boost above 1, so what a changed source contradicts is
            unlearned in a few bytes, not outvoted over many.
            """
            cell = c % BYTE_SIDE + (c // BYTE_SIDE) * out.width
            p = exp2(rounded((drive[c] - softmax[0]) * LOG2E) - softmax[1])
            target = 0.0
            if c == byte:
                target = 1.0
            count = ti.min(eligible_n[None], capacity)
            delta = rounded(rounded(step_for[count] * softmax[2]) * (target - p))
            kept = 1.0 - rounded(forget * (softmax[2] - 1.0))
            for e in range(count):
                q, pre, tap = eligible[e, 0], eligible[e, 1], eligible[e, 2]
                for r, width in ti.static(read_out):
                    if q == r:
                        w = rounded(weights[r][cell, pre // width, pre % width, tap] * kept) + delta
                        weights[r][cell, pre // width, pre % width, tap] = flushed(ti.min(ti.max(w, -limit), limit))

        @ti.func
        def learn_output(t: ti.i64, byte: ti.i32):
            if ti.static(fused):
                if t % ticks == 0 and byte >= 0 and eligible_n[None] > 0:
                    for c in range(BYTE_VALUES):
                        learn_cell(c, byte)
            else:
                for c in range(BYTE_VALUES):
                    if live() and t % ticks == 0 and byte >= 0:
                        learn_cell(c, byte)

        @ti.func
        def learn_hidden(t: ti.i64):
            for g in range(groups):
                if live() and hidden_rate > 0 and winner[g] >= 0:
                    instar(winner[g], t)

        @ti.func
        def instar(i: ti.i32, t: ti.i64):
            """Hidden cell i won just now: it moves its field's weights towards what arrived at its two taps."""
            local = i - hidden_start
            sheet = local // sheet_size
            cell = local % sheet_size
            partner = 1 + (lag_of(cell) - 1) * step
            if sheet == 0:
                q = ti.static(into_hidden[0] if depth > 0 else 0)
                for tap in ti.static(range(2)):
                    delay = 1 if tap == 0 else partner
                    hot = input_ring[ti.cast((t - delay) % slots, ti.i32)]  # the one input cell that fired then
                    for ay, ax in ti.ndrange(inp.height, inp.width):
                        arrived = 1.0 if ay * inp.width + ax == hot else 0.0
                        w = weights[q][cell, ay, ax, tap]
                        weights[q][cell, ay, ax, tap] = flushed(w + rounded(hidden_rate * (arrived - w)))
            for h in ti.static(range(1, depth)):
                if sheet == h:
                    g = ti.static(window[h - 1])
                    for fy, fx, tap in ti.ndrange(g[6], g[5], 2):
                        pre = pre_window(g, cell, fx, fy)
                        delay = 1 if tap == 0 else partner
                        arrived = ti.cast(spikes[pre, ti.cast((t - delay) % slots, ti.i32)], ti.f32)
                        w = weights[into_hidden[h]][cell, fy, fx, tap]
                        weights[into_hidden[h]][cell, fy, fx, tap] = flushed(w + rounded(hidden_rate * (arrived - w)))

        @ti.func
        def add(post: ti.i32, t: ti.i64, delay: ti.i32, w: ti.f32):
            if w != 0.0:
                ti.atomic_add(current[post, ti.cast((t + delay) % slots, ti.i32)], ti.cast(ti.round(w * FIXED), ti.i32))

        @ti.func
        def push_input(t: ti.i64, byte: ti.i32):
            """The presented byte's spike (the input sheet's only one) to every hidden0 cell, at its group's lags."""
            if ti.static(fused):
                if byte >= 0:
                    for post in range(sheet_size):
                        push_to(post, t, byte)
            else:
                for post in range(sheet_size):
                    if live() and byte >= 0:
                        push_to(post, t, byte)

        @ti.func
        def push_to(post: ti.i32, t: ti.i64, byte: ti.i32):
            ax, ay = byte % BYTE_SIDE, byte // BYTE_SIDE
            add(hidden_start + post, t, 1, weights[into_hidden[0]][post, ay, ax, 0])
            add(hidden_start + post, t, 1 + (lag_of(post) - 1) * step, weights[into_hidden[0]][post, ay, ax, 1])

        @ti.func
        def push(t: ti.i64, byte: ti.i32):
            slot = ti.cast(t % slots, ti.i32)
            for j in range(output_start):
                if live() and spikes[j, slot] != 0:
                    if j < hidden_start:
                        for post, k in ti.ndrange(out.size, taps):
                            add(output_start + post, t, (k + 1) * step, weights[input_out][post, j // inp.width, j % inp.width, k])
                    else:
                        local = j - hidden_start
                        sheet = local // sheet_size
                        cell = local % sheet_size
                        for h in ti.static(range(depth)):
                            if sheet == h:
                                for post in range(out.size):
                                    add(output_start + post, t, out_delay[h], weights[hidden_out[h]][post, cell // hw, cell % hw, 0])
                                if ti.static(h + 1 < depth):
                                    g = ti.static(window[h])
                                    ax, ay = cell % g[1], cell // g[1]
                                    for fy, fx in ti.ndrange(g[6], g[5]):
                                        # centres whose window puts this cell at (fx, fy), then the posts with that centre
                                        cy = (ay + g[6] // 2 - fy + g[2]) % g[2]
                                        cx = (ax + g[5] // 2 - fx + g[1]) % g[1]
                                        py0 = (cy * g[4] + g[2] - 1) // g[2]
                                        py1 = ((cy + 1) * g[4] + g[2] - 1) // g[2]
                                        px0 = (cx * g[3] + g[1] - 1) // g[1]
                                        px1 = ((cx + 1) * g[3] + g[1] - 1) // g[1]
                                        for py, px in ti.ndrange((py0, py1), (px0, px1)):
                                            post = py * g[3] + px
                                            target = hidden_start + (h + 1) * sheet_size + post
                                            add(target, t, 1, weights[into_hidden[h + 1]][post, fy, fx, 0])
                                            partner = 1 + (lag_of(post) - 1) * step
                                            add(target, t, partner, weights[into_hidden[h + 1]][post, fy, fx, 1])

        @ti.func
        def advance(byte: ti.i32):
            """Stage 0 fired if a byte was presented; hidden sheet s fired if it competed (it was clocked)."""
            if live():
                for k in range(depth):
                    clocked[depth - k] = clocked[depth - k - 1]
                clocked[0] = 1 if byte >= 0 else 0

        @ti.func
        def iterate(t: ti.i64, first_clock: ti.i64):
            """One iteration; ``first_clock`` is the byte-clock tick ``schedule[0]`` presents."""
            byte = presented(schedule, t, first_clock, ticks)
            if live():
                winner_key[None] = -1
                eligible_n[None] = 0
            integrate(t, byte)
            if ti.static(depth > 0):
                compete(t)
            decide(t, byte)
            gather_eligible(t, byte)
            learn_output(t, byte)
            if ti.static(depth > 0):
                learn_hidden(t)
                push_input(t, byte)
            push(t, byte)
            advance(byte)

        driver.compile(iterate)

    # -- state in and out --------------------------------------------------------------------------

    def load(self, arrays: Mapping[str, np.ndarray], dynamic: bool) -> None:
        """Weights always; the dynamic state when the header says there is one (else the brain starts at rest)."""
        for proj, field in zip(self.structure.projections, self.weights, strict=True):
            field.from_numpy(np.ascontiguousarray(arrays[f"weights.{proj.name}"], dtype=np.float32))
        # Zero everything explicitly: a field can reuse memory a collected brain freed, and
        # Taichi does not promise it is cleared.
        for field in (self.potential, self.threshold, self.spikes, self.current, self.schedule, self.clocked,
                      self.drive, self.softmax):
            field.fill(0)
        self.group_key.fill(-1)
        self.winner.fill(-1)
        if dynamic:  # the header decides, never the arrays: see Structure.check_arrays
            self.potential.from_numpy(arrays["state.potential"])
            self.threshold.from_numpy(arrays["state.threshold"])
            spikes = arrays["state.spikes"]  # looked up once: an agent's arrays are decoded on each lookup
            self.spikes.from_numpy(spikes)
            self.input_ring.from_numpy(self._input_ring(spikes))
            del spikes
            self.current.from_numpy(arrays["state.current"])
            self.clocked.from_numpy(arrays["state.clocked"])
            self.rng_key.from_numpy(arrays["state.rng_key"])
            self.surprise.from_numpy(arrays["state.surprise"])
        else:
            self.surprise.fill(0)
            self.input_ring.from_numpy(self._input_ring(None))

    def _input_ring(self, spikes: np.ndarray | None) -> np.ndarray:
        """Per ring slot, the input cell that fired then (-1: none): read off the spike ring's input rows."""
        ring = np.full(self.structure.ring_slots, -1, np.int32)
        if spikes is not None:
            rows = np.asarray(spikes[: self.structure.areas[0].size])
            fired = rows.any(axis=0)
            ring[fired] = rows.argmax(axis=0)[fired]
        return ring

    def fields(self) -> dict[str, Any]:
        """The fields the state is exported from, by array name (one at a time for ``down``: see ``export_array``)."""
        fields: dict[str, Any] = {
            f"weights.{proj.name}": field for proj, field in zip(self.structure.projections, self.weights, strict=True)
        }
        fields["state.potential"] = self.potential
        fields["state.threshold"] = self.threshold
        fields["state.spikes"] = self.spikes
        fields["state.current"] = self.current
        fields["state.clocked"] = self.clocked
        fields["state.rng_key"] = self.rng_key
        fields["state.surprise"] = self.surprise
        return fields

    def export(self) -> dict[str, Any]:
        return {name: field.to_numpy() for name, field in self.fields().items()}
