"""Histograms of a brain's arrays, computed where the brain is (for the shell's ``plot``).

The shell used to pull every array to draw a few histograms: a copy of the
whole brain in a process that only needed a few hundred numbers. The agent
counts instead, in chunks of ``CHUNK`` elements in the array's own dtype (no
float64 copy of anything larger than a chunk), and replies with the bin
edges and counts. Arrays come off the device one at a time where the runtime
can export one array alone (``export_array``), so the agent's own extra
memory is its largest array, not its brain.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from hera.runtime import Runtime

#: Elements per chunk: 4 Mi (16 MiB of float32), the most of one array held as a temporary.
CHUNK = 1 << 22


def arrays(runtime: Runtime, names: list[str] | None, match: str | None) -> Iterator[tuple[str, np.ndarray]]:
    """The arrays asked for, in name order, each exported when its turn comes.

    A runtime that lists its ``state_names`` hands them over one at a time
    (``export_array``); otherwise its whole ``export_state`` is taken once (as
    the ``state`` request does). An unknown name is refused before anything is
    counted, naming the arrays there are.
    """
    one = getattr(runtime, "export_array", None)
    listed = getattr(runtime, "state_names", lambda: None)()
    take: Callable[[str], np.ndarray]
    if one is not None and listed is not None:
        known, take = sorted(listed), one
    else:
        everything = runtime.export_state()
        known, take = sorted(everything), everything.__getitem__
    if names is not None:
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(f"no state array {unknown[0]!r}; arrays: {', '.join(known)}")
        chosen = sorted(set(names))
    else:
        chosen = [name for name in known if match is None or fnmatch.fnmatchcase(name, match)]
    for name in chosen:
        yield name, take(name)


def histogram(array: np.ndarray, bins: int, nonzero: bool = True) -> dict[str, Any]:
    """``bins`` equal bins over the array's finite values (non-zero ones with ``nonzero``).

    Two passes over the array, chunk by chunk: the range, then the counts.
    The reply: ``dtype``, ``shape``, ``size``, ``counted`` (values counted),
    ``zeros``, ``nonfinite`` (NaN and ±inf, never counted), ``min`` and
    ``max`` of what was counted (null when nothing was), ``edges`` (bins + 1)
    and ``counts`` (bins; both empty when nothing was counted).
    """
    import numpy as np

    flat = array.reshape(-1)
    floating = flat.dtype.kind == "f"
    chunks = range(0, flat.size, CHUNK) if flat.dtype.kind in "iuf" else range(0)

    def values(chunk: np.ndarray) -> np.ndarray:
        keep = np.isfinite(chunk) if floating else np.ones(chunk.shape, dtype=bool)
        if nonzero:
            keep &= chunk != 0
        return chunk[keep]

    lo: float | None = None
    hi: float | None = None
    counted = zeros = nonfinite = 0
    for start in chunks:
        chunk = flat[start : start + CHUNK]
        zeros += int(np.count_nonzero(chunk == 0))
        if floating:
            nonfinite += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
        kept = values(chunk)
        if kept.size:
            counted += int(kept.size)
            low, high = kept.min().item(), kept.max().item()
            lo = low if lo is None else min(lo, low)
            hi = high if hi is None else max(hi, high)
    edges: list[float] = []
    counts: list[int] = []
    if lo is not None and hi is not None:
        span = (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(hi) + 0.5)
        bounds = np.linspace(*span, bins + 1)
        total = np.zeros(bins, dtype=np.int64)
        for start in chunks:
            total += np.histogram(values(flat[start : start + CHUNK]), bins=bounds)[0]
        edges, counts = bounds.tolist(), total.tolist()
    return {
        "dtype": str(flat.dtype),
        "shape": list(array.shape),
        "size": int(flat.size),
        "counted": counted,
        "zeros": zeros,
        "nonfinite": nonfinite,
        "min": lo,
        "max": hi,
        "edges": edges,
        "counts": counts,
    }
