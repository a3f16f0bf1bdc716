"""Shared set-up for abraxas's tests: Taichi on the CPU, once per process, brains from layouts, and one run to compare.

:func:`fingerprint` runs the same fed stream with breakpoints of every kind
on a brain and sums up everything it produced (each exported array's hash,
the decision log's, where each step stopped): what the fused and the
per-iteration path, one thread and two, a CPU and a GPU must all agree on.
Child processes (another arch or thread count: Taichi is started once per
process) import it from here and print it as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid as uuidlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from abraxas import Abraxas, AbraxasParams
from hera.instance import Header

HERE = Path(__file__).parent


def init_taichi(arch: str = "cpu", threads: int = 1) -> None:
    """hera.kernels.init where it exists (the one place hera initialises Taichi), else ti.init on one CPU thread."""
    try:
        from hera.kernels import init  # type: ignore[attr-defined]
    except ImportError:
        import taichi as ti

        cache = os.environ.get("ABRAXAS_TEST_TICACHE", str(Path.home() / ".cache" / "hera-tests" / "ticache"))
        ti.init(arch=getattr(ti, arch), cpu_max_num_threads=threads, offline_cache_file_path=cache, log_level=ti.WARN)
    else:
        init(arch, threads=threads)


def header_for(params: AbraxasParams, seed: int = 7, layout: str = "example") -> Header:
    return Abraxas().new_header(layout, params, seed, uuid=str(uuidlib.UUID(int=seed + 1)), callsign="test-brain")


def params_for(layout: str = "example", overrides: Mapping[str, Any] | None = None) -> AbraxasParams:
    return Abraxas().resolve(layout, [("test", overrides)] if overrides else [])  # type: ignore[return-value]


@pytest.fixture(scope="session")
def taichi() -> None:
    init_taichi()


@pytest.fixture
def brain(taichi: None) -> Callable[..., Any]:
    """A fresh runtime: ``brain(layout="example", seed=7, overrides=None)``."""

    def make(layout: str = "example", seed: int = 7, overrides: Mapping[str, Any] | None = None) -> Any:
        family = Abraxas()
        params = params_for(layout, overrides)
        built = family.build(params, seed)
        return family.runtime(header_for(params, seed, layout), built.arrays, "cpu")

    return make


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def fingerprint(rt: Any, iterations: int = 3000) -> dict[str, Any]:
    """Feed the repeated sentence, run ``iterations`` in steps that stop on every kind of probe; sum it all up.

    Steps of 1000 (none armed), then up to 500 each stopping on ``area:output``,
    ``output``, the input neuron of the sentence's third byte, ``area:hidden0``
    or ``output`` (both armed), then the rest with nothing armed.
    """
    from abraxas.streams import SENTENCE, repeated

    rt.feed(repeated(SENTENCE, iterations // rt.params.ticks_per_byte + 2))
    third_byte = rt.structure.area("input").byte_cell(SENTENCE[2])
    stops = []
    start = rt.iteration
    for n, probes in [(1000, []), (500, ["area:output"]), (500, ["output"]), (500, [f"neuron:{third_byte}"]),
                      (500, ["area:hidden0", "output"])]:
        result = rt.step(n, probes)
        stops.append([result.iteration, result.stopped_on, rt.stats()["spikes"]])
    rt.step(iterations - (rt.iteration - start))
    state = rt.export_state()
    return {
        "iteration": rt.iteration,
        "stops": stops,
        "arrays": {name: hashlib.sha256(array.tobytes()).hexdigest() for name, array in sorted(state.items())},
        "decisions": hashlib.sha256(rt.take_decisions().tobytes()).hexdigest(),
        "raster": rt.spikes(),
    }
