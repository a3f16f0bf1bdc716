"""Plasticity that is always on: trace-based STDP (pair, triplet, reward-modulated), weight bounds, homeostasis.

Why traces: all-to-all STDP needs, for each spike, the summed influence of
every earlier spike of the other side. A trace per neuron (decaying by a
constant factor each step, jumping at each spike) holds exactly that sum, so
a spike costs one look-up per synapse instead of a search through spike
history. Because every synapse of a presynaptic neuron sees the same
presynaptic spikes, traces are kept per *neuron*, not per synapse (Brian2
keeps them per synapse; the numbers are the same, the memory is not).

The pair rule as Brian2's STDP example writes it (``Apost`` increments are
negative, so one addition covers both signs)::

    pre spike:   w = clip(w + a_post[post], w_min, w_max);  a_pre[pre]   += d_pre
    post spike:  w = clip(w + a_pre[pre],   w_min, w_max);  a_post[post] += d_post

Homeostasis keeps a learning brain in range: an adaptive threshold
(:func:`hera.kernels.lif.adapt`) bounds each neuron's rate; synaptic scaling
multiplies a neuron's incoming weights towards a target rate; normalisation
holds their sum; and :func:`nudge_incoming` lets a silent neuron whose
weights are all zero grow them from its active inputs, so that a brain built
with zero weights becomes active (multiplicative rules alone cannot leave 0).

Kernel API (``@ti.func``; weights are fields indexed by synapse ``k``):

* ``clip(w, lo, hi) -> f32``
* ``trace(x, decay, spiked, increment) -> f32``: one step of a spike trace
* ``pair_on_pre(w, k, a_post, lo, hi)``, ``pair_on_post(w, k, a_pre, lo, hi)``: the pair rule above
* ``triplet_on_pre(w, k, o1, r2, a2m, a3m, lo, hi)``, ``triplet_on_post(w, k, r1, o2, a2p, a3p, lo, hi)``:
  Pfister & Gerstner (2006), minimal all-to-all form, traces read before this step's jumps
* ``eligibility_add(e, stamp, k, t, log_decay, delta)``: a reward-modulated rule's per-synapse
  eligibility, decayed lazily (only when touched) from its last stamp
* ``eligibility_apply(w, e, stamp, k, t, log_decay, gain, lo, hi)``: ``w += gain * e`` (gain = rate × reward)
* ``rate(r, spiked, decay) -> f32``: a neuron's rate estimate (a trace normalised to spikes per step)
* ``scale_incoming(w, in_ptr, in_syn, j, factor, lo, hi)``, ``normalise_incoming(w, in_ptr, in_syn, j, total)``,
  ``nudge_incoming(w, in_ptr, in_syn, in_pre, j, pre_trace, amount, lo, hi)``: homeostasis over one neuron's inputs
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

import taichi as ti

from hera.kernels.template import Template


@ti.func
def clip(w: ti.f32, lo: ti.f32, hi: ti.f32) -> ti.f32:
    return ti.min(ti.max(w, lo), hi)


@ti.func
def trace(x: ti.f32, decay: ti.f32, spiked: ti.i32, increment: ti.f32) -> ti.f32:
    """One step of a trace: decay, then jump if the neuron spiked this step."""
    x *= decay
    if spiked:
        x += increment
    return x


@ti.func
def pair_on_pre(w: Template, k: ti.i32, a_post: ti.f32, lo: ti.f32, hi: ti.f32):
    """Synapse ``k``'s presynaptic neuron spiked: depression by the postsynaptic trace (negative)."""
    w[k] = clip(w[k] + a_post, lo, hi)


@ti.func
def pair_on_post(w: Template, k: ti.i32, a_pre: ti.f32, lo: ti.f32, hi: ti.f32):
    """Synapse ``k``'s postsynaptic neuron spiked: potentiation by the presynaptic trace."""
    w[k] = clip(w[k] + a_pre, lo, hi)


@ti.func
def triplet_on_pre(
    w: Template, k: ti.i32, o1: ti.f32, r2: ti.f32, a2m: ti.f32, a3m: ti.f32, lo: ti.f32, hi: ti.f32
):
    """Triplet rule, presynaptic spike: ``w -= o1 * (A2- + A3- * r2)`` (r2: slow presynaptic trace)."""
    w[k] = clip(w[k] - o1 * (a2m + a3m * r2), lo, hi)


@ti.func
def triplet_on_post(
    w: Template, k: ti.i32, r1: ti.f32, o2: ti.f32, a2p: ti.f32, a3p: ti.f32, lo: ti.f32, hi: ti.f32
):
    """Triplet rule, postsynaptic spike: ``w += r1 * (A2+ + A3+ * o2)`` (o2: slow postsynaptic trace)."""
    w[k] = clip(w[k] + r1 * (a2p + a3p * o2), lo, hi)


@ti.func
def _decayed(e: Template, stamp: Template, k: ti.i32, t: ti.i64, log_decay: ti.f32) -> ti.f32:
    steps = ti.cast(t - stamp[k], ti.f32)
    return e[k] * ti.exp(log_decay * steps)


@ti.func
def eligibility_add(e: Template, stamp: Template, k: ti.i32, t: ti.i64, log_decay: ti.f32, delta: ti.f32):
    """Reward-modulated STDP: the STDP change goes into an eligibility trace, not the weight.

    The trace is decayed lazily, from the iteration it was last touched
    (``stamp``), so untouched synapses cost nothing per step.
    """
    e[k] = _decayed(e, stamp, k, t, log_decay) + delta
    stamp[k] = t


@ti.func
def eligibility_apply(
    w: Template,
    e: Template,
    stamp: Template,
    k: ti.i32,
    t: ti.i64,
    log_decay: ti.f32,
    gain: ti.f32,
    lo: ti.f32,
    hi: ti.f32,
):
    """A third factor arrived (reward, surprise): move the weight by ``gain`` × its eligibility now."""
    w[k] = clip(w[k] + gain * _decayed(e, stamp, k, t, log_decay), lo, hi)


@ti.func
def rate(r: ti.f32, spiked: ti.i32, decay: ti.f32) -> ti.f32:
    """A running estimate of spikes per step (an exponential moving average)."""
    r *= decay
    if spiked:
        r += 1.0 - decay
    return r


@ti.func
def scale_incoming(w: Template, in_ptr: Template, in_syn: Template, j: ti.i32, factor: ti.f32,
                   lo: ti.f32, hi: ti.f32):
    """Synaptic scaling: multiply neuron ``j``'s incoming weights by ``factor`` (from its rate vs a target)."""
    for q in range(in_ptr[j], in_ptr[j + 1]):
        k = in_syn[q]
        w[k] = clip(w[k] * factor, lo, hi)


@ti.func
def normalise_incoming(w: Template, in_ptr: Template, in_syn: Template, j: ti.i32, total: ti.f32):
    """Synaptic normalisation: hold the sum of neuron ``j``'s incoming weights at ``total`` (if it is not 0)."""
    s = 0.0
    for q in range(in_ptr[j], in_ptr[j + 1]):
        s += w[in_syn[q]]
    if s > 0.0:
        f = total / s
        for q in range(in_ptr[j], in_ptr[j + 1]):
            w[in_syn[q]] *= f


@ti.func
def nudge_incoming(w: Template, in_ptr: Template, in_syn: Template, in_pre: Template,
                   j: ti.i32, pre_trace: Template, amount: ti.f32, lo: ti.f32, hi: ti.f32):
    """Grow neuron ``j``'s inputs in proportion to their recent activity (when ``j`` is below its target rate).

    This is how a brain whose weights start at zero becomes active: scaling
    multiplies, and zero times anything stays zero; this adds.
    """
    for q in range(in_ptr[j], in_ptr[j + 1]):
        k = in_syn[q]
        w[k] = clip(w[k] + amount * pre_trace[in_pre[q]], lo, hi)
