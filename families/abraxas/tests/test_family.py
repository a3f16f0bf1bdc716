"""The family's description: cheap to import, dead at build, honest estimates."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

from abraxas import Abraxas
from abraxas.structure import Structure
from conftest import params_for


def test_importing_the_family_imports_neither_taichi_nor_numpy() -> None:
    code = "import sys, abraxas; abraxas.Abraxas().estimate(abraxas.Abraxas().resolve('datacenter')); "
    code += "print('taichi' in sys.modules, 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False",
        "False",
    ]


def test_build_makes_a_dead_brain_of_zero_weights() -> None:
    params = params_for()
    built = Abraxas().build(params, 7)
    structure = Structure(params)
    assert sorted(built.arrays) == sorted(f"weights.{p.name}" for p in structure.projections)
    assert all(not a.any() for a in built.arrays.values())
    assert built.summary["synapses"] == sum(a.size for a in built.arrays.values())


def test_the_estimate_matches_what_the_runtime_allocates_and_exports(brain: Callable[..., Any]) -> None:
    rt = brain()
    estimate = Abraxas().estimate(rt.params)
    exported = sum(a.nbytes for a in rt.export_state().values())
    assert estimate.neurons == rt.structure.neurons and estimate.synapses == rt.structure.synapses
    assert abs(exported - (estimate.file_bytes - 8192) * 3 // 4) < 64
    engine = rt.engine
    # the engine's fields, the driver's (breakpoints, counts) and the raster's one-slot buffer
    holders = [engine, engine.driver, engine.spike_column]
    found = {id(value): value for holder in holders for value in vars(holder).values() if hasattr(value, "snode")}
    fields = [*found.values(), *engine.weights]
    on_device = sum(f.to_numpy().nbytes for f in fields)
    assert on_device <= estimate.device_bytes <= on_device + (1 << 20)


def test_every_layout_validates_and_the_largest_fits_an_80_gb_gpu() -> None:
    family = Abraxas()
    sizes = {name: family.estimate(family.resolve(name)).device_bytes for name in family.layouts}
    assert sizes["example"] < 16 << 20
    assert list(sizes.values()) == sorted(sizes.values())
    assert 60e9 < sizes["datacenter"] < 76e9
