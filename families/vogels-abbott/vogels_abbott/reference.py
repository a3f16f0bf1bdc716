"""A numpy reference of the CUBA equations, doing the kernels' float32 operations in the same order.

Why: the kernels are fused, vectorised and parallel; this is the same model
written plainly, one iteration at a time, so a test can check the kernels
step for step (exact spike trains, and potentials bit for bit when Taichi
runs without fast-math, as :func:`hera.kernels.init` sets it). It is slow:
use it on small networks only.

``direct=True`` is the fused CPU path's delivery (delay-one input added
straight into ge/gi, in spike order); ``direct=False`` the ring buffer's
(fixed-point input, any delay), which the per-iteration (GPU) path uses.
"""

from __future__ import annotations

import numpy as np

from hera.kernels.connectivity import incoming
from hera.kernels.lif import cuba_membrane_np
from hera.kernels.rng import bits_np, uniform_np
from hera.kernels.synapses import take_np, to_fixed_np
from vogels_abbott import CubaParams
from vogels_abbott.engine import RING_SCALE, STREAM_INITIAL_V, Model


class Reference:
    """One network, stepped on the host."""

    def __init__(self, params: CubaParams, seed: int, arrays: dict[str, np.ndarray], *, direct: bool) -> None:
        self.m = m = Model.from_params(params)
        self.direct = direct and m.delay_steps == 1
        n = m.neurons
        self.ptr = np.asarray(arrays["syn.ptr"], np.int64)
        self.post = np.asarray(arrays["syn.post"], np.int32)
        self.weight = np.array(arrays["syn.weight"], np.float32)
        u = uniform_np(bits_np(seed, 0, np.arange(n), STREAM_INITIAL_V))
        vr, vt = np.float32(m.v_reset), np.float32(m.v_threshold)
        self.v = vr + u * (vt - vr)
        self.ge = np.zeros(n, np.float32)
        self.gi = np.zeros(n, np.float32)
        self.refractory = np.zeros(n, np.int32)
        self.ring = np.zeros((2, m.delay_steps, n), np.int32)
        self.a_pre = np.zeros(n, np.float32)
        self.a_post = np.zeros(n, np.float32)
        if m.stdp:
            self.in_ptr, self.in_syn, self.in_pre = incoming(self.ptr, self.post, n, 0, m.excitatory)
        self.iteration = 0

    def step(self) -> np.ndarray:
        """One iteration; returns the neurons that spiked, ascending."""
        m, f, t = self.m, self.m.factors, self.iteration
        f32 = np.float32
        ge, gi = self.ge, self.gi
        if not self.direct:
            ge = ge + take_np(self.ring, 0, t, RING_SCALE)
            gi = gi + take_np(self.ring, 1, t, RING_SCALE)
        free = self.refractory == 0
        count = np.maximum(self.refractory - 1, 0)
        v = np.where(free, cuba_membrane_np(self.v, ge, gi, f), self.v)
        spiked = free & (v > f32(m.v_threshold))
        self.v = np.where(spiked, f32(m.v_reset), v).astype(np.float32)
        self.refractory = np.where(spiked, m.refractory_steps, count).astype(np.int32)
        self.ge = ge * f32(f.decay_e)
        self.gi = gi * f32(f.decay_i)
        if m.stdp:
            self.a_pre *= f32(m.decay_pre)
            self.a_post *= f32(m.decay_post)
        fired = np.flatnonzero(spiked)
        for i in fired:
            k = slice(int(self.ptr[i]), int(self.ptr[i + 1]))
            excitatory = i < m.excitatory
            if self.direct:
                np.add.at(self.ge if excitatory else self.gi, self.post[k], self.weight[k])
            else:
                q = to_fixed_np(self.weight[k], RING_SCALE)
                slot = (t + m.delay_steps) % m.delay_steps
                np.add.at(self.ring[0 if excitatory else 1, slot], self.post[k], q)
            if m.stdp and excitatory:
                self.weight[k] = np.minimum(np.maximum(self.weight[k] + self.a_post[self.post[k]], f32(0)), f32(m.w_max))
                self.a_pre[i] += f32(m.a_pre)
        if m.stdp:
            for j in fired:
                self.a_post[j] += f32(m.a_post)
                r = slice(int(self.in_ptr[j]), int(self.in_ptr[j + 1]))
                synapses = self.in_syn[r]
                self.weight[synapses] = np.minimum(np.maximum(self.weight[synapses] + self.a_pre[self.in_pre[r]], f32(0)), f32(m.w_max))
        self.iteration += 1
        return fired
