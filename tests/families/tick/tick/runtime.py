"""tick's runtime: one fused Taichi kernel per step call, exact stops, exact resume."""

# no "from __future__ import annotations": Taichi reads annotations as objects

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import taichi as ti

from hera.runtime import IOContract, Probe, Runtime, StepResult, check_arrays

OUT_CAP = 4096


@ti.func
def mix(a: ti.u32, b: ti.u32, c: ti.u32) -> ti.u32:
    h = a * ti.u32(0x9E3779B1) ^ b * ti.u32(0x85EBCA77) ^ c * ti.u32(0xC2B2AE3D)
    h ^= h >> 16
    h *= ti.u32(0x7FEB352D)
    h ^= h >> 15
    h *= ti.u32(0x846CA68B)
    h ^= h >> 16
    return h


@ti.kernel
def advance(
    n: ti.i32,
    start: ti.i64,
    seed: ti.u32,
    threshold: ti.u32,
    watch_any: ti.i32,
    watch_neuron: ti.i32,
    watch_output: ti.i32,
    counts: ti.template(),
    ring: ti.template(),
    weights: ti.template(),
    inbox: ti.template(),
    inbox_len: ti.i32,
    inbox_pos: ti.template(),
    quiet: ti.i32,
    spiked: ti.template(),
    last_spikes: ti.template(),
) -> ti.i32:
    done = 0
    code = 0
    ti.loop_config(serialize=True)
    for step in range(n):
        it = start + step
        slot = ti.i32(it % ring.shape[0])
        fired = 0
        spikes = 0
        neuron_hit = 0
        for i in range(counts.shape[0]):
            arriving = ring[slot, i]
            ring[slot, i] = 0
            spike = 0
            if mix(seed, ti.u32(it), ti.u32(i)) < threshold:
                spike = 1
            if spike + arriving > 0:
                counts[i] += 1
                weights[i] += 0.5 * ti.f32(spike) + 0.25 * ti.f32(arriving)
                fired += 1
                if i == watch_neuron:
                    neuron_hit = 1
            spiked[i] = spike
            spikes += spike
            if spike == 1:
                ring[(slot + ring.shape[0] - 1) % ring.shape[0], i] += 1
        produced = 0
        if inbox_pos[None] < inbox_len:  # one byte presented per iteration, echoed unless it is the quiet one
            if ti.i32(inbox[inbox_pos[None]]) != quiet:
                produced = 1
            inbox_pos[None] += 1
        done = step + 1
        last_spikes[None] = spikes
        if watch_any == 1 and fired > 0:
            code = 1
        elif neuron_hit == 1:
            code = 2
        elif watch_output == 1 and produced == 1:
            code = 3
        if code > 0:
            break
    return done * 4 + code


def check_instance(arrays: dict[str, np.ndarray], n: int, delay: int, *, dynamic: bool) -> None:
    """A dynamic instance has its whole state, a fresh one none; else one line naming the array.

    Even a test double must not take a damaged agent for a fresh one: the
    whole-life tests rename a state array in the cached file and expect a refusal.
    """
    check_arrays(
        arrays,
        structure={"weights": ("float32", (n,))},
        state={"counts": ("int32", (n,)), "ring": ("int32", (delay, n)), "pending": ("uint8", None)},
        dynamic=dynamic,
        family="tick",
        hint="its cached file is damaged or was edited",
    )


class TickRuntime(Runtime):
    io = IOContract("byte", "one byte per iteration while fed, echoed as the output (the quiet byte gets none)")

    def __init__(self, header: Any, arrays: dict[str, np.ndarray]) -> None:
        self.params = header.params
        n = int(self.params["neurons"])
        delay = int(self.params["delay"])
        check_instance(arrays, n, delay, dynamic=bool(header.dynamic))  # before any field is allocated
        self.seed = header.seed & 0xFFFFFFFF
        self.threshold = min(int(float(self.params["rate"]) * 2**32), 2**32 - 1)
        self.pause = float(self.params["seconds_per_iteration"])
        self.counts = ti.field(ti.i32, n)
        self.ring = ti.field(ti.i32, (delay, n))
        self.weights = ti.field(ti.f32, n)
        self.spiked = ti.field(ti.i32, n)
        self.last_spikes = ti.field(ti.i32, ())  # so stats() reads one number, not n
        self.quiet = int(self.params.get("quiet", -1))
        self.records = np.zeros((0, 3), np.int64)
        self.inbox_pos = ti.field(ti.i32, ())
        self.pending = b""
        self.inbox = ti.field(ti.u8, OUT_CAP)
        self.weights.from_numpy(arrays["weights"])
        self.iteration = int(header.iteration)
        if header.dynamic:
            self.counts.from_numpy(arrays["counts"])
            self.ring.from_numpy(arrays["ring"])
            self.pending = arrays["pending"].tobytes()

    def probes(self) -> list[Probe]:
        return [Probe("area:all", "area", self.counts.shape[0], "any neuron spiked"), Probe("output", "output")]

    def step(self, n: int, stop_on: Sequence[str] = ()) -> StepResult:
        watch_neuron = -1
        for name in stop_on:
            if name.startswith("neuron:"):
                watch_neuron = int(name.split(":", 1)[1])
        waiting = self.pending[:OUT_CAP]
        if waiting:
            data = np.zeros(OUT_CAP, np.uint8)
            data[: len(waiting)] = np.frombuffer(waiting, dtype=np.uint8)
            self.inbox.from_numpy(data)
        self.inbox_pos[None] = 0
        packed = advance(
            n, self.iteration, self.seed, self.threshold,
            int("area:all" in stop_on), watch_neuron, int("output" in stop_on),
            self.counts, self.ring, self.weights, self.inbox, len(waiting), self.inbox_pos,
            self.quiet, self.spiked, self.last_spikes,
        )
        done, code = divmod(packed, 4)
        taken = int(self.inbox_pos[None])
        if taken:  # byte k of this call was presented at iteration start + k
            units = np.frombuffer(self.pending[:taken], np.uint8).astype(np.int64)
            rows = np.stack([self.iteration + np.arange(taken, dtype=np.int64), units, np.where(units == self.quiet, -1, units)], axis=1)
            self.records = np.concatenate([self.records, rows])
        self.pending = self.pending[taken:]
        self.iteration += done
        if self.pause:
            time.sleep(self.pause * done)
        stopped = {0: None, 1: "area:all", 2: f"neuron:{watch_neuron}", 3: "output"}[code]
        return StepResult(done, self.iteration, stopped)

    def export_state(self) -> dict[str, np.ndarray]:
        return {name: self.export_array(name) for name in self.state_names()}

    def state_names(self) -> list[str]:
        return ["weights", "counts", "ring", "pending"]

    def export_array(self, name: str) -> np.ndarray:
        """One array off the device: ``down`` writes a stopped brain one array at a time."""
        if name == "pending":
            return np.frombuffer(self.pending, dtype=np.uint8).copy()
        return {"weights": self.weights, "counts": self.counts, "ring": self.ring}[name].to_numpy()

    def feed(self, data: bytes) -> None:
        self.pending += data

    def queued(self) -> int:
        return len(self.pending)

    def take_records(self) -> np.ndarray:
        rows, self.records = self.records, np.zeros((0, 3), np.int64)
        return rows

    def spikes(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.spiked.to_numpy())]

    def stats(self) -> dict[str, Any]:
        return {"spikes": int(self.last_spikes[None])}
