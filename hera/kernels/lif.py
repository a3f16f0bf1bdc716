"""Leaky integrate-and-fire neurons: exact exponential integration, refractory counters, adaptive thresholds.

Why exact integration: between spikes a LIF neuron with exponentially decaying
synaptic currents is a linear system, so one step of length dt is solved
exactly by multiplying with precomputed factors ``exp(-dt/tau)``. That is
cheaper than Euler (no small dt needed for stability) and it is what Brian2's
``method='linear'`` does, so hera's benchmark network matches Brian2's
dynamics rather than an approximation of them.

The factors are computed on the host in float64 (:class:`CubaFactors`) and
baked into kernels as float32 constants; the numpy twins do the same float32
operations in the same order, so a numpy reference matches a kernel bit for
bit (with ``fast_math`` off, as :func:`hera.kernels.init` sets it).

Kernel API (``@ti.func``). Every function is branch-free and takes scalars or
*lane vectors* (``ti.Vector`` of a few neurons): state stored as
``ti.Vector.field(lanes, ...)`` lets LLVM vectorise a serial loop over
neuron groups, which measured about 3× faster per neuron than a scalar loop on
this CPU; a GPU uses one lane per thread.

* ``leak(x, rest, decay) -> f32``: ``rest + (x - rest) * decay`` (one exact step of a leaky variable);
* ``cuba_membrane(v, ge, gi, f) -> f32``: one exact step of ``tau_m dv/dt = El - v + ge + gi`` with
  ``ge``, ``gi`` decaying with ``tau_e``, ``tau_i`` over the step (``f`` a :class:`CubaFactors`);
* ``refractory_tick(count) -> (free, count)``: whether the neuron integrates this step, and the counter after it;
* ``hold(free, v_new, v)``: the integrated potential where free, the held one where refractory;
* ``fire(v, free, threshold, reset, count, refractory_steps) -> (spiked, v, count)``: threshold, reset,
  refractory start;
* ``adapt(extra, spiked, decay, increment) -> f32``: an adaptive threshold's extra part, decaying to 0 and
  jumping by ``increment`` at each spike (Diehl & Cook 2015: keeps a neuron's rate bounded under STDP).
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

import math
from dataclasses import dataclass

import numpy as np
import taichi as ti

from hera.kernels.template import Template


def decay_factor(dt: float, tau: float) -> float:
    """``exp(-dt/tau)``: how much of a leaky variable is left after one step (0 when tau is 0)."""
    return math.exp(-dt / tau) if tau > 0 else 0.0


def current_to_voltage(dt: float, tau_m: float, tau_s: float) -> float:
    """How much a unit synaptic current at the start of a step moves the membrane by its end.

    The exact solution of ``tau_m du/dt = -u + g``, ``tau_s dg/dt = -g`` over one
    step: ``u += g0 * tau_s / (tau_s - tau_m) * (exp(-dt/tau_s) - exp(-dt/tau_m))``,
    with the limit ``g0 * dt / tau_m * exp(-dt/tau_m)`` when the time constants are equal.
    """
    if tau_s <= 0:
        return 0.0
    if abs(tau_s - tau_m) < 1e-12 * tau_m:
        return dt / tau_m * math.exp(-dt / tau_m)
    return tau_s / (tau_s - tau_m) * (math.exp(-dt / tau_s) - math.exp(-dt / tau_m))


@dataclass(frozen=True)
class CubaFactors:
    """Constants of one exact CUBA step (hashable, so a kernel can take it as a ``ti.template()``)."""

    rest: float  # El: the potential the membrane relaxes to
    decay_m: float  # exp(-dt/tau_m)
    decay_e: float  # exp(-dt/tau_e)
    decay_i: float  # exp(-dt/tau_i)
    coef_e: float  # current_to_voltage(dt, tau_m, tau_e)
    coef_i: float  # current_to_voltage(dt, tau_m, tau_i)

    @classmethod
    def from_times(cls, dt: float, tau_m: float, tau_e: float, tau_i: float, rest: float) -> "CubaFactors":
        return cls(
            rest=float(np.float32(rest)),
            decay_m=float(np.float32(decay_factor(dt, tau_m))),
            decay_e=float(np.float32(decay_factor(dt, tau_e))),
            decay_i=float(np.float32(decay_factor(dt, tau_i))),
            coef_e=float(np.float32(current_to_voltage(dt, tau_m, tau_e))),
            coef_i=float(np.float32(current_to_voltage(dt, tau_m, tau_i))),
        )

    def f32(self) -> dict[str, np.float32]:
        """The factors as numpy float32 scalars, for host references doing the kernel's arithmetic."""
        return {name: np.float32(getattr(self, name)) for name in self.__dataclass_fields__}


@ti.func
def leak(x, rest, decay):
    """``rest + (x - rest) * decay``: one exact step of a leaky variable (scalar or lane vector)."""
    return rest + (x - rest) * decay


@ti.func
def cuba_membrane(v, ge, gi, f: Template):
    """``v`` one exact step later, given the currents ``ge``, ``gi`` at the step's start (scalars or lane vectors)."""
    return f.rest + (v - f.rest) * f.decay_m + ge * f.coef_e + gi * f.coef_i


def cuba_membrane_np(v: np.ndarray, ge: np.ndarray, gi: np.ndarray, f: CubaFactors) -> np.ndarray:
    """:func:`cuba_membrane` on the host, the same float32 operations in the same order."""
    c = f.f32()
    return ((c["rest"] + (v - c["rest"]) * c["decay_m"]) + ge * c["coef_e"]) + gi * c["coef_i"]


def brian2_refractory_steps(refractory: float, dt: float) -> int:
    """Brian2's ``refractory=T`` as hera's count: a neuron spiking at step s integrates again at s + T/dt."""
    return max(0, round(refractory / dt) - 1)


@ti.func
def refractory_tick(count):
    """``(free, count)``: a neuron integrates this step iff its count is 0; a positive count goes down by one.

    Branch-free (``max``), so it works on lane vectors and lets the compiler vectorise.
    """
    free = count == 0
    return free, ti.max(count - 1, 0)


@ti.func
def hold(free, v_new, v):
    """The new potential where the neuron is free, the held one where it is refractory."""
    return ti.select(free, v_new, v)


@ti.func
def fire(v, free, threshold, reset, count, refractory_steps):
    """``(spiked, v, count)``: a free neuron above ``threshold`` spikes, resets, and holds for ``refractory_steps``.

    Brian2's ``refractory=T`` holds the potential for the ``round(T/dt) - 1``
    updates after the spike's own (see :func:`brian2_refractory_steps`).
    """
    spiked = free & (v > threshold)
    return spiked, ti.select(spiked, reset, v), ti.select(spiked, refractory_steps, count)


@ti.func
def adapt(extra, spiked, decay, increment):
    """The adaptive part of a threshold: decays towards zero, jumps at each spike (homeostasis of rate)."""
    return extra * decay + ti.select(spiked, increment, 0.0)
