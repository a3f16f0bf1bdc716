"""An abraxas brain on a device: hera's :class:`hera.runtime.Runtime` over :mod:`abraxas.kernels`.

Imported only inside :meth:`abraxas.Abraxas.runtime` (it imports Taichi).

Input: fed bytes wait on the host in ``pending``; each byte-clock tick
(``iteration % ticks_per_byte == 0``) presents the next one. Because that rule
is deterministic, the host hands each launch the bytes its clock ticks will
present and afterwards drops exactly those the iterations actually run
consumed, so an early stop loses nothing and ``io.pending`` makes the queue
part of the saved state.

Output: the output sheet decides once per byte-clock tick. Every decision is
logged with its iteration, the byte presented on the same tick (the truth
it tried to predict) and ``log2 p`` of that byte under the softmax of the
byte cells' drive (what the output sheet actually gave it, before it saw it).
hera's I/O contract (unit: a byte, a prediction) takes one record per byte
presented from it (:meth:`AbraxasRuntime.take_records`: the byte, and the
prediction made on its tick, -1 where the output sheet did not cross
threshold; :meth:`AbraxasRuntime.take_scored_records` adds each one's
log-loss), and :meth:`AbraxasRuntime.take_decisions` the whole log, idle
ticks included, for learning curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from abraxas.kernels import Engine
from abraxas.structure import PENDING, AbraxasParams, Structure
from hera.kernels import is_cpu
from hera.runtime import IOContract, Probe, Runtime, StepResult

#: Decisions kept for take_decisions when nobody takes them (an agent running for days).
DECISION_LIMIT = 1 << 20
#: The decision log's columns: iteration, predicted, actual, log2 p(actual).
DECISION_COLUMNS = 4
#: Iterations per fused launch on the CPU: bounds the per-launch logs, and is long enough that launch costs vanish.
LAUNCH_ITERATIONS = 4096


class AbraxasRuntime(Runtime):
    """One brain, loaded from an instance's arrays (fresh when they hold no dynamic state)."""

    io = IOContract(
        "byte",
        "one byte presented every ticks_per_byte iterations; its record's output is the byte the output "
        "sheet predicted on that tick, none where it did not cross threshold",
        predicts=True,  # the prediction is made from earlier bytes only: hera scores it (accuracy, log-loss)
    )

    def __init__(
        self, params: AbraxasParams, seed: int, arrays: Mapping[str, np.ndarray], arch: str, *, dynamic: bool
    ) -> None:
        """``dynamic``: the header's word that ``arrays`` hold the state to resume (else a fresh brain)."""
        self.params = params
        self.structure = Structure(params)
        self.structure.check_arrays(arrays, dynamic)  # before any device memory is touched
        self.fused = is_cpu(arch)  # fuse thousands of iterations per launch on a CPU; a GPU wants parallel phases
        self.engine = Engine(self.structure, params, seed, launch_iterations=LAUNCH_ITERATIONS, fused=self.fused)
        self.engine.load(arrays, dynamic)
        self.iteration = int(arrays["state.iteration"][0]) if dynamic else 0
        self.pending = bytearray(arrays[PENDING].tobytes() if dynamic else b"")
        self.records: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.decisions: list[np.ndarray] = []
        self.last_spikes: dict[str, int] = {}

    # -- the Runtime contract --------------------------------------------------------------------

    def probes(self) -> list[Probe]:
        """One probe per sheet (``area:NAME``) and ``output``; ``neuron:N`` is accepted too."""
        return self.engine.driver.probes()

    def step(self, n: int, stop_on: Sequence[str] = ()) -> StepResult:
        driver, engine, ticks = self.engine.driver, self.engine, self.params.ticks_per_byte
        driver.arm(stop_on)  # an unknown probe is refused here, before anything runs
        start, stopped = self.iteration, None
        while self.iteration - start < n:
            count = min(n - (self.iteration - start), LAUNCH_ITERATIONS)
            first_clock = -(-self.iteration // ticks)  # ceil: the first byte-clock tick at or after now
            clocks = (self.iteration + count - 1) // ticks - first_clock + 1
            schedule = np.full(engine.clock_capacity, -1, np.int32)
            fed = min(clocks, len(self.pending))
            schedule[:fed] = np.frombuffer(bytes(self.pending[:fed]), np.uint8)
            engine.schedule.from_numpy(schedule)
            engine.log_count[None] = 0
            outcome = driver.run(count, self.iteration, first_clock, fresh=self.iteration == start)
            ran = outcome.iterations
            consumed = max(0, (self.iteration + ran - 1) // ticks - first_clock + 1) if ran else 0
            del self.pending[: min(consumed, fed)]
            self.iteration += ran
            self._collect()
            if outcome.hit:
                stopped = driver.which(stop_on)
                break
        # a step of no iterations ran no launch, so the driver still holds the counts of the one before
        names = (area.name for area in self.structure.areas)
        self.last_spikes = driver.area_counts() if self.iteration > start else dict.fromkeys(names, 0)
        return StepResult(iterations=self.iteration - start, iteration=self.iteration, stopped_on=stopped)

    def _collect(self) -> None:
        """Move this launch's decisions to the host: to the log, and those of presented bytes to the records."""
        count = int(self.engine.log_count[None])
        if not count:
            return
        log = np.empty((count, DECISION_COLUMNS), np.float64)
        log[:, 0] = self.engine.log_iteration.to_numpy()[:count]
        log[:, 1] = self.engine.log_predicted.to_numpy()[:count]
        log[:, 2] = self.engine.log_actual.to_numpy()[:count]
        log[:, 3] = self.engine.log_logp.to_numpy()[:count]
        # One record per byte presented: (iteration, byte, prediction or -1). An idle
        # agent's noise-driven guesses are kept in the decision log only.
        presented = log[log[:, 2] >= 0]
        if len(presented):
            self.records.append(presented[:, [0, 2, 1]].astype(np.int64))
            self.scores.append(-presented[:, 3])
        self.decisions.append(log)
        while len(self.decisions) > 1 and sum(len(d) for d in self.decisions) > DECISION_LIMIT:
            self.decisions.pop(0)

    def export_state(self) -> dict[str, np.ndarray]:
        arrays = self.engine.export()
        arrays["state.iteration"] = np.array([self.iteration], np.int64)
        arrays[PENDING] = np.frombuffer(bytes(self.pending), np.uint8).copy()
        return arrays

    def state_names(self) -> list[str]:
        return [*self.engine.fields(), "state.iteration", PENDING]

    def export_array(self, name: str) -> np.ndarray:
        """One array of ``export_state``: ``down`` writes a stopped brain one array at a time."""
        if name == "state.iteration":
            return np.array([self.iteration], np.int64)
        if name == PENDING:
            return np.frombuffer(bytes(self.pending), np.uint8).copy()
        return np.asarray(self.engine.fields()[name].to_numpy())

    def feed(self, data: bytes) -> None:
        self.pending += data

    def queued(self) -> int:
        return len(self.pending)

    def take_records(self) -> np.ndarray:
        """Rows (iteration, byte presented, byte predicted or -1), one per byte presented since the last call."""
        return self.take_scored_records()[0]

    def take_scored_records(self) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`take_records`, and each record's log-loss in bits: ``-log2 p(byte)`` under the output's softmax."""
        rows = np.concatenate(self.records) if self.records else np.zeros((0, 3), np.int64)
        bits = np.concatenate(self.scores) if self.scores else np.zeros(0, np.float64)
        self.records, self.scores = [], []
        return rows, bits

    def take_decisions(self) -> np.ndarray:
        """Every byte-clock decision since the last call: float64 rows (iteration, predicted, actual, log2 p).

        ``predicted`` and ``actual`` are byte values, -1 for none (all three
        first columns are whole numbers, exact in float64). ``actual`` is the
        byte presented on the same tick: what the output, made from earlier
        bytes only (every delay is at least one iteration), tried to predict;
        ``log2 p`` is its log-probability under the softmax of the output
        sheet's byte cells (their drive before the tick's noise, natural
        units, temperature 1), NaN where no byte was presented.
        """
        log = np.concatenate(self.decisions) if self.decisions else np.zeros((0, DECISION_COLUMNS), np.float64)
        self.decisions = []
        return log

    def spikes(self) -> list[int]:
        """Neurons that spiked in the last iteration (the shell's raster): one slot of the ring is read, not the ring."""
        if self.iteration == 0:
            return []
        slot = (self.iteration - 1) % self.structure.ring_slots
        return np.flatnonzero(self.engine.spike_column.read(slot)).tolist()

    def stats(self) -> dict[str, Any]:
        return {"spikes": self.last_spikes, "pending_input": len(self.pending)}
