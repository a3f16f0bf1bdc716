"""Loading a brain onto the device in bounded memory: arrays decoded one at a time, as the family asks for them.

(And :class:`Measured`: a save's progress counted against sizes that a lazy
export learns only as it takes each array off the device.)

Decoding the whole instance into a dict and then uploading it held every
array twice (the host copies and the device's), so a 94 GB brain needed
188 GB of host memory on a CPU device. Here the family's runtime gets a
:class:`hera.instance.format.LazyArrays` mapping instead: each lookup decodes that one array from
the memory-mapped file (checksum verified) and keeps nothing, so once it is
uploaded the host copy is garbage. The agent's peak is then the device's
copy plus the largest array.

``describe`` gives an array's dtype and shape without decoding it, so the
families' checks (:func:`hera.runtime.check_arrays`) cost nothing; a family
that looks an array up twice decodes it twice, which costs time, never memory.

A damaged array is found only when it is decoded, that is while the runtime
is being built: :func:`open_brain` and :func:`build_runtime` then fall back to
the previous good save (``<file>.prev``) as :func:`hera.instance.load_or_previous`
does for a whole load, with the same warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hera.instance.format import InstanceFile, InstanceFileError, LazyArrays, previous_warning

if TYPE_CHECKING:
    import numpy as np

    from hera.agent.status import PhaseReport

#: Called with each chunk's bytes as arrays are decoded (a progress phase).
OnBytes = Callable[[int], None]


def release() -> None:
    """Free the host copies the device is done with: Taichi's ``from_numpy`` and ``to_numpy`` leave them in reference cycles.

    Measured: after ``field.from_numpy(a); del a`` a 768 MiB array stays
    resident until the cycle collector runs, which counts objects, not
    bytes, so it may not run for the rest of the load; the arrays of a whole
    brain then pile up exactly as if they were kept. A collection between
    arrays costs milliseconds; a brain has tens of arrays.
    """
    import gc

    gc.collect()


def split(opened: InstanceFile, prefix: str) -> tuple[dict[str, np.ndarray], LazyArrays]:
    """The arrays named ``prefix*`` (hera's own bookkeeping, small) decoded now, and the family's, lazily."""
    own = {name: opened.array(name) for name in opened.entries if name.startswith(prefix)}
    family = [name for name in opened.entries if not name.startswith(prefix)]
    return own, opened.lazy_arrays(names=family, before_each=release)


def open_brain(path: Path) -> tuple[InstanceFile, str | None]:
    """The cached file opened (header and array entries checked), or the previous good save's with a warning."""
    from hera.instance.atomic import previous_path

    try:
        return InstanceFile(path, follow=False), None  # the cache's own files, never links
    except InstanceFileError as damaged:
        previous = previous_path(path)
        if not previous.exists():
            raise
        opened = InstanceFile(previous, follow=False)
        return opened, previous_warning(path, damaged, opened.header)


class Measured(Mapping[str, "np.ndarray"]):
    """``parts`` (mappings of arrays, in order) as one, as a save sees them: each array's true size goes into the phase's total as it is taken.

    ``sizes`` holds what the agent last knew of each array (its cached file's
    entries) and is kept up to date here: a fresh brain's first save meets its
    state arrays for the first time, and a later one writes what it learned.
    """

    def __init__(
        self, parts: Sequence[Mapping[str, np.ndarray]], sizes: dict[str, int], phase: PhaseReport, passes: int = 1
    ) -> None:
        """``passes``: how often the save goes over each array's bytes (written, and read back for the cache)."""
        self._parts = parts
        self._sizes = sizes
        self._phase = phase
        self._passes = passes

    def __getitem__(self, name: str) -> np.ndarray:
        part = next((part for part in self._parts if name in part), None)
        if part is None:
            raise KeyError(name)
        array = part[name]
        known = self._sizes.get(name, 0)
        if array.nbytes != known:
            self._phase.grow((array.nbytes - known) * self._passes)
            self._sizes[name] = array.nbytes
        return array

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for part in self._parts:
            for name in part:
                if name not in seen:
                    seen.add(name)
                    yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)
