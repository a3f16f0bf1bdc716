"""A CUBA network on a device: hera's :class:`hera.runtime.Runtime` over :mod:`vogels_abbott.engine`.

Imported only inside :meth:`vogels_abbott.VogelsAbbott.runtime` (it imports Taichi).

The state an instance file holds to resume exactly (``export_state``): the
whole agent, since hera saves exactly the export and loads exactly that on
the next ``up``. The structure ``build`` made (``syn.ptr``, ``syn.post``,
never changed, exported as they were loaded), ``syn.weight`` (changed by
STDP), ``state.v``, ``state.ge``, ``state.gi``, ``state.refractory``,
``state.ring`` (pending input, fixed point, its head is ``iteration %
slots``), ``state.a_pre``/``state.a_post`` (STDP traces), ``state.iteration``
and ``state.rng_key`` (the counter generator's key words). What an instance
must hold is checked by :mod:`vogels_abbott.state` before anything is allocated.

A fresh instance starts as Brian2's example does: ``v = Vr + rand() * (Vt - Vr)``
(drawn from the counter generator keyed by the seed), everything else zero.

Breakpoints: ``area:excitatory``, ``area:inhibitory`` and ``neuron:INDEX``,
armed, checked and told apart by :class:`hera.kernels.driver.Driver` (the
engine's driver, which also runs the iteration). This network has no input
or output area (``feed`` refuses, ``read`` is empty).
Beyond the contract, ``record(True)`` logs every spike and ``take_spikes()``
returns them, for rates, ISI statistics and the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import taichi as ti

from hera.kernels import initialised_arch, is_cpu
from hera.kernels.connectivity import incoming
from hera.kernels.rng import bits_np, uniform_np
from hera.runtime import IOContract, Probe, Runtime, StepResult
from vogels_abbott import CubaParams, log_capacity as default_log_capacity, state
from vogels_abbott.engine import CPU_LANES, RING_SCALE, STREAM_INITIAL_V, Engine, Model

AREAS = ("excitatory", "inhibitory")


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only view: every save hands the same structure to a writer thread, so nothing may change it."""
    view = array.view()
    view.flags.writeable = False
    return view


def _kept(array: np.ndarray) -> Callable[[], np.ndarray]:
    """The export of an array the runtime keeps on the host (the structure): the array itself."""
    return lambda: array


class CubaRuntime(Runtime):
    """One CUBA network, loaded from an instance's arrays (fresh when they hold no dynamic state)."""

    #: A balanced network driven by its own activity: nothing to feed it, no output area to read.
    io = IOContract(None, "a self-sustained balanced network, it takes no input (its activity is its own)")

    def __init__(
        self,
        params: CubaParams,
        seed: int,
        arrays: Mapping[str, np.ndarray],
        arch: str,
        *,
        dynamic: bool = False,
        iteration: int | None = None,
        fused: bool | None = None,
        log_capacity: int | None = None,
    ) -> None:
        """``dynamic`` and ``iteration`` are what the header says: a dynamic instance must hold its whole state."""
        self.params = params
        self.seed = seed
        self.model = model = Model.from_params(params)
        self.seconds_per_iteration = params.dt_ms / 1000.0  # what a real-time pace (1x) is measured by
        self.arch = arch
        #: one launch for many iterations (CPU), or one launch per iteration with parallel phases (GPU)
        self.fused = is_cpu(initialised_arch() or arch) if fused is None else fused
        n, ne = model.neurons, model.excitatory
        self.synapses = synapses = state.check(params, seed, arrays, dynamic=dynamic, iteration=iteration)
        #: the structure, exported with every save as it was loaded (the cached file is the whole agent);
        #: looked up once: in an agent every lookup decodes the array again
        self._structure = {name: _frozen(arrays[name]) for name in ("syn.ptr", "syn.post")}
        ptr, post = self._structure["syn.ptr"], self._structure["syn.post"]
        plastic = int(ptr[ne]) if model.stdp else 0
        capacity = log_capacity if log_capacity is not None else default_log_capacity(n)
        self.engine = e = Engine(
            model,
            synapses,
            plastic,
            capacity,
            fused=self.fused,
            direct=self.fused,
            lanes=CPU_LANES if self.fused else 1,
        )
        self.driver = e.driver
        e.ptr.from_numpy(ptr.astype(np.int32))
        if synapses:
            e.post.from_numpy(np.ascontiguousarray(post))
            e.weight.from_numpy(np.ascontiguousarray(arrays["syn.weight"]))
        if model.stdp:
            in_ptr, in_syn, in_pre = incoming(ptr, post, n, 0, ne)
            e.in_ptr.from_numpy(in_ptr.astype(np.int32))
            if plastic:
                e.in_syn.from_numpy(in_syn.astype(np.int32))
                e.in_pre.from_numpy(in_pre)
        self._load_state(arrays, dynamic)
        self._recording = False
        self._log: list[tuple[np.ndarray, np.ndarray]] = []
        self.last_spikes = {a: 0 for a in AREAS}
        self._stats_stale = False

    # -- state --------------------------------------------------------------------------------------

    def _load_state(self, arrays: Mapping[str, np.ndarray], dynamic: bool) -> None:
        """The saved state onto the device (checked already), or Brian2's initial conditions for a fresh one."""
        e, m = self.engine, self.model
        if not dynamic:  # a freshly built instance (state.check refused any state array in it)
            self.iteration = 0
            u = uniform_np(bits_np(self.seed, 0, np.arange(m.neurons), STREAM_INITIAL_V))
            vr, vt = np.float32(m.v_reset), np.float32(m.v_threshold)
            self._put(e.v, vr + u * (vt - vr))
            for f in (e.ge, e.gi, e.refractory, e.ring):
                f.fill(0)
            if m.stdp:
                e.a_pre.fill(0)
                e.a_post.fill(0)
            return
        self._put(e.v, arrays["state.v"])
        ring = arrays["state.ring"]
        if e.direct and ring.any():
            # input pending in a ring (exported by the per-iteration path) joins ge/gi now, as its take would
            slot = self.iteration_of(arrays) % m.delay_steps
            scale = np.float32(1.0 / RING_SCALE)
            self._put(e.ge, arrays["state.ge"] + ring[0, slot].astype(np.float32) * scale)
            self._put(e.gi, arrays["state.gi"] + ring[1, slot].astype(np.float32) * scale)
            ring = np.zeros_like(ring)
        else:
            self._put(e.ge, arrays["state.ge"])
            self._put(e.gi, arrays["state.gi"])
        self._put(e.refractory, arrays["state.refractory"])
        self._put(e.ring, ring)
        if m.stdp:
            self._put(e.a_pre, arrays["state.a_pre"])
            self._put(e.a_post, arrays["state.a_post"])
        self.iteration = self.iteration_of(arrays)

    @staticmethod
    def iteration_of(arrays: Mapping[str, np.ndarray]) -> int:
        return int(arrays["state.iteration"][0])

    def export_state(self) -> dict[str, np.ndarray]:
        return {name: take() for name, take in self._exports().items()}

    def state_names(self) -> list[str]:
        return list(self._exports())

    def export_array(self, name: str) -> np.ndarray:
        """One array of ``export_state``: ``down`` writes a stopped brain one array at a time."""
        return self._exports()[name]()

    def _exports(self) -> dict[str, Callable[[], np.ndarray]]:
        """How each exported array is taken off the device, by name, in the order of ``export_state``."""
        e, m = self.engine, self.model
        takes: dict[str, Callable[[], np.ndarray]] = {name: _kept(array) for name, array in self._structure.items()}
        takes |= {
            "syn.weight": lambda: np.ascontiguousarray(e.weight.to_numpy()[: self.synapses]),
            "state.v": lambda: self._get(e.v),
            "state.ge": lambda: self._get(e.ge),
            "state.gi": lambda: self._get(e.gi),
            "state.refractory": lambda: self._get(e.refractory),
            "state.ring": lambda: self._get(e.ring),
            "state.iteration": lambda: np.array([self.iteration], np.int64),
            "state.rng_key": lambda: np.array([self.seed & 0xFFFFFFFF, self.seed >> 32], np.uint32),
        }
        if m.stdp:
            takes["state.a_pre"] = lambda: self._get(e.a_pre)
            takes["state.a_post"] = lambda: self._get(e.a_post)
        return takes

    def _put(self, field: Any, values: np.ndarray) -> None:
        """Neuron arrays (last axis: neurons) into a lane-vector field (last axes: groups, lanes), padded."""
        values = np.asarray(values)
        e = self.engine
        padded = np.zeros((*values.shape[:-1], e.groups * e.lanes), values.dtype)
        padded[..., : values.shape[-1]] = values
        if field is e.v:  # padding neurons: their spikes never reach the spike list (the kernel checks i < n)
            padded[..., values.shape[-1] :] = np.float32(self.model.v_reset)
        if not isinstance(field, ti.MatrixField):  # a scalar field padded to whole lane vectors
            field.from_numpy(padded)
        else:
            field.from_numpy(padded.reshape(*values.shape[:-1], e.groups, e.lanes))

    def _get(self, field: Any) -> np.ndarray:
        """A lane-vector field back as neuron arrays (padding dropped)."""
        data = field.to_numpy()
        if isinstance(field, ti.MatrixField):  # merge groups and lanes
            data = data.reshape(*data.shape[:-2], -1)
        return np.ascontiguousarray(data[..., : self.model.neurons])

    # -- breakpoints --------------------------------------------------------------------------------

    def probes(self) -> list[Probe]:
        return self.driver.probes()

    # -- running ------------------------------------------------------------------------------------

    def step(self, n: int, stop_on: Sequence[str] = ()) -> StepResult:
        driver = self.driver
        driver.arm(stop_on)  # an unknown probe is refused here, before anything runs
        start, fresh, hit = self.iteration, True, False
        while self.iteration - start < n and not hit:
            outcome = driver.run(n - (self.iteration - start), self.iteration, fresh=fresh)
            fresh, hit = False, outcome.hit
            self.iteration += outcome.iterations
            if outcome.blocked:  # the spike log is full: empty it and run on
                self._drain()
            elif not hit and outcome.iterations == 0:  # never: a run goes on until done, a hit or a full log
                raise RuntimeError("the driver ran no iteration and said no reason")
        self._stats_stale = not fresh
        if fresh:  # step(0): nothing ran, so no spike either
            self.last_spikes = dict.fromkeys(AREAS, 0)
        stopped = driver.which(stop_on) if hit else None
        return StepResult(iterations=self.iteration - start, iteration=self.iteration, stopped_on=stopped)

    # -- recording ----------------------------------------------------------------------------------

    def record(self, enabled: bool = True) -> None:
        """Log every spike from now on (for statistics and tests); off by default."""
        self._recording = enabled
        self.engine.record[None] = int(enabled)

    def _drain(self) -> None:
        e = self.engine
        count = int(e.log_count[None])
        if count:
            its = e.log_iteration.to_numpy()[:count]
            ids = e.log_neuron.to_numpy()[:count]
            self._log.append((its, ids))
        e.log_count[None] = 0

    def take_spikes(self) -> tuple[np.ndarray, np.ndarray]:
        """Every spike recorded since the last call: (iterations, neurons), sorted by iteration then neuron."""
        self._drain()
        if not self._log:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        its = np.concatenate([a for a, _ in self._log])
        ids = np.concatenate([b for _, b in self._log])
        self._log = []
        order = np.lexsort((ids, its))
        return its[order], ids[order]

    def stats(self) -> dict[str, Any]:
        """Spikes per area in the last ``step`` call (read from the device only when asked)."""
        if self._stats_stale:
            self.last_spikes = self.driver.area_counts()
            self._stats_stale = False
        return {"spikes": dict(self.last_spikes), "iteration": self.iteration}
