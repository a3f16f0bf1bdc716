"""The runtime half of the family API: a brain on a device, stepping.

A family's :meth:`hera.family.Family.runtime` returns a :class:`Runtime` built
from an instance's header and arrays. It is only ever created inside an agent
process (or a benchmark or test process) after :func:`hera.kernels.init` has
initialised Taichi, never in the controller.

The contract every runtime keeps, which hera's agent process relies on:

* ``step(n, stop_on)`` runs at most ``n`` iterations and stops right after the
  first iteration at which a watched probe fired; ``iteration`` then is exactly
  that iteration. Iteration-count breakpoints are hera's job (it bounds ``n``).
* ``export_state()`` returns every array the instance file must hold to resume
  (weights and all dynamic state, ring buffers and their heads, counters, and
  the structure ``build`` made, such as connectivity: nothing of the built
  file is merged back, so what is not exported is lost), so that N+M
  iterations in one go equal N, export, a fresh process, import, M, bit for
  bit on the same arch.
* A runtime decides between a fresh start and a resume by the header's
  ``dynamic`` flag, never by whether some array is present: with ``dynamic``
  true every state array must be there, and a missing or unknown one is a
  :class:`~hera.errors.HeraError` naming it (hera adds the file), never a
  zero-filled brain. Random numbers must come from a counter-based
  generator keyed by (seed, iteration, index), never Taichi's own RNG.
* The **I/O contract** (:class:`IOContract`, the class attribute ``io``) says
  what one unit of input is (``"byte"``), or that the family has no input
  area (``unit`` None: hera refuses ``feed`` in one line before the runtime
  is touched). ``feed`` queues units and never blocks; they are presented
  in the order fed, and ``take_records`` returns one record per unit
  presented, ``(iteration, unit, output)``, with output -1 where the output
  area produced nothing for it, so answers are aligned with input even
  where a brain stays silent.
* A family whose output is a **prediction** of the unit presented on the
  same tick, made from earlier input only (abraxas), says so with
  ``IOContract(predicts=True)``: the agent then scores each record (a hit
  where output equals unit) and keeps its rolling accuracy
  (docs/agent.md, "Learning you can watch"). Where the family also knows
  how sure it was, :meth:`Runtime.take_scored_records` hands each record's
  log-loss beside it; a family that does not leaves the default, and hera
  shows the log-loss as ``n/a``, never a figure made up from accuracy.

This module imports neither numpy nor Taichi at import time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hera.errors import HeraError

if TYPE_CHECKING:
    import numpy as np

    from hera.instance import Header


@dataclass(frozen=True)
class Probe:
    """Something a breakpoint can watch: ``area:NAME``, ``neuron:INDEX`` or ``output``."""

    name: str
    kind: str  # "area" | "neuron" | "event" (a named happening other than a spike, e.g. abraxas' output)
    size: int = 1
    description: str = ""


@dataclass(frozen=True)
class StepResult:
    """How a call to :meth:`Runtime.step` ended."""

    iterations: int  # iterations actually run by this call
    iteration: int  # the brain's iteration counter afterwards
    stopped_on: str | None = None  # the probe that fired, if the run stopped early


@dataclass(frozen=True)
class IOContract:
    """What a family takes in and answers: ``unit`` is one unit of input (``"byte"``), None for no input area.

    ``predicts``: each record's output is the family's guess at the unit
    presented on the same tick, made before that unit reached the brain, so
    the agent may score it (accuracy, and log-loss where the runtime gives
    it). False (the default) for a family whose output answers its input in
    some other way (tick echoes it): its records are never scored.
    """

    unit: str | None
    description: str
    predicts: bool = False


#: A family with no input area: ``feed`` is refused by hera in one line.
NO_INPUT = IOContract(None, "it runs on its own and takes no input")


class Runtime(ABC):
    """A brain loaded onto a device."""

    #: The family's I/O contract (see the module's docstring); the default: no input area.
    io: ClassVar[IOContract] = NO_INPUT

    #: iterations run since the instance was built
    iteration: int
    #: Simulated seconds one iteration stands for (a family with a time step, dt, says so), or None:
    #: a real-time pace (``hera pace 1x``, :mod:`hera.pace`) needs it, and is refused without it.
    seconds_per_iteration: float | None = None

    @abstractmethod
    def step(self, n: int, stop_on: Sequence[str] = ()) -> StepResult:
        """Run up to ``n`` iterations, stopping right after one where a probe in ``stop_on`` fired."""

    @abstractmethod
    def export_state(self) -> dict[str, np.ndarray]:
        """Every array needed to resume exactly (weights and dynamic state), copied to the host."""

    def state_names(self) -> Sequence[str] | None:
        """The names :meth:`export_state` returns, where :meth:`export_array` can take them one at a time.

        Optional. ``down`` writes a stopped brain array by array when a family
        lists them, so the agent's host memory holds one array at a time
        beside the device's copy, not the whole brain again; None (the
        default) exports everything at once.
        """
        return None

    def export_array(self, name: str) -> np.ndarray:
        """One array of :meth:`export_state`, copied to the host (a family that lists :meth:`state_names` overrides it)."""
        return self.export_state()[name]

    def probes(self) -> list[Probe]:
        """What breakpoints can watch; ``neuron:INDEX`` is always allowed within the brain."""
        return []

    def feed(self, data: bytes) -> None:
        """Queue units (bytes, for a ``"byte"`` unit) for the input area; never blocks."""
        raise HeraError("this family has no input area", hint="its I/O contract says unit None")

    def queued(self) -> int:
        """Units fed and not yet presented to the brain.

        The agent refuses more input while this many are waiting past its
        bound (the controller waits and retries), so what a fast producer
        queues, and what every checkpoint saves of it, stays bounded.
        """
        return 0

    def take_records(self) -> np.ndarray:
        """One row per unit presented since the last call, in order: int64 ``(iteration, unit, output)``.

        ``output`` is -1 where the output area produced nothing for that unit.
        The shape is ``(n, 3)``, ``(0, 3)`` when nothing was presented.
        """
        import numpy as np

        return np.zeros((0, 3), np.int64)

    def take_scored_records(self) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`take_records`, and beside each record the log-loss of its prediction, or None.

        Optional, for a family whose I/O contract ``predicts``: the second
        array is float64 of shape ``(n,)``, one value per row of the first,
        ``-log2 p(unit)`` in bits, where ``p`` is the probability the output
        area actually gave the unit presented (e.g. a softmax of its
        potentials), before it saw it. NaN where it has none for a row. The
        default gives None: the agent then shows the log-loss as ``n/a``.
        Taken once, like :meth:`take_records` (the agent calls one or the other).
        """
        return self.take_records(), None

    def spikes(self) -> Sequence[int] | None:
        """Indices of the neurons that spiked in the last iteration, for rasters; None if not kept."""
        return None

    def stats(self) -> dict[str, Any]:
        """Cheap live figures for status lines (spikes per area in the last step, …)."""
        return {}


class _Exported(Mapping[str, "np.ndarray"]):
    """A runtime's state as a mapping whose every lookup takes that one array off the device (see :func:`exported`)."""

    def __init__(self, runtime: Runtime, names: Sequence[str]) -> None:
        self._runtime = runtime
        self._names = list(names)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        import gc

        gc.collect()  # the array written before: Taichi's to_numpy leaves its copy in a reference cycle
        return self._runtime.export_array(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def exported(runtime: Runtime) -> Mapping[str, np.ndarray]:
    """The runtime's state to be written now, array by array where the family can (see :meth:`Runtime.state_names`).

    Only for a stopped brain, read on the thread that steps it (Taichi is not
    thread-safe): each lookup copies one array off the device.
    """
    names = runtime.state_names()
    return runtime.export_state() if names is None else _Exported(runtime, names)


def dynamic_header(header: Header, runtime: Runtime) -> Header:
    """The header of an exported instance: same agent, now with dynamic state."""
    return header.model_copy(update={"iteration": runtime.iteration, "dynamic": True})


#: What a family expects of one array: its dtype and its shape (None: 1-D, of any length).
ArraySpec = tuple[str, tuple[int, ...] | None]


def check_arrays(
    arrays: Mapping[str, np.ndarray],
    *,
    structure: Mapping[str, ArraySpec],
    state: Mapping[str, ArraySpec],
    dynamic: bool,
    family: str,
    hint: str,
) -> None:
    """Refuse, in one line naming the array, arrays that are not exactly the ones a runtime takes.

    For every family, before any field is allocated. The header's
    ``dynamic`` says which are required: ``structure`` always (weights,
    connectivity: what ``build`` made), and with it every ``state`` array.
    Never inferred from the arrays themselves: a file whose
    ``state.potential`` was renamed by one bit used to pass for a fresh brain
    and come up at its iteration with its state zeroed, and its next save made
    that permanent. Each array must have exactly its dtype (no silent cast: a
    float64 potential would round differently) and shape. Arrays nobody
    expects are refused too, since the next save would drop them silently;
    hera's own (``hera.*``) are hera's business.
    """
    import numpy as np

    expected = {**structure, **(state if dynamic else {})}
    # An agent's arrays are decoded on lookup (hera.agent.loading): their descriptions are checked, not their data.
    describe = getattr(arrays, "describe", None)
    for name, (dtype, shape) in expected.items():
        if name not in arrays:
            why = " though its header says it has run (dynamic: true)" if name in state else ""
            raise HeraError(f"instance has no array {name!r}{why}", hint=hint)
        if describe is not None:
            got_dtype, got_shape = describe(name)
        else:
            got = arrays[name]
            got_dtype, got_shape = got.dtype, tuple(got.shape)
        if got_dtype != np.dtype(dtype) or (tuple(got_shape) != shape if shape is not None else len(got_shape) != 1):
            wanted = f"{dtype}{list(shape)}" if shape is not None else f"a 1-D {dtype} array"
            raise HeraError(f"array {name!r} is {got_dtype}{list(got_shape)}, family {family} needs {wanted}", hint=hint)
    for name in sorted(arrays.keys() - expected.keys()):
        if name.startswith("hera."):
            continue
        if name in state:
            raise HeraError(f"instance has an array {name!r} but its header says it never ran (dynamic: false)", hint=hint)
        raise HeraError(f"instance has an array {name!r} that family {family} does not know", hint=hint)
