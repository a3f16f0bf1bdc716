"""Shared set-up for abraxas's tests: Taichi on the CPU, once per process, and brains from layouts."""

from __future__ import annotations

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


def init_taichi() -> None:
    """hera.kernels.init where it exists (the one place hera initialises Taichi), else ti.init on one CPU thread."""
    try:
        from hera.kernels import init  # type: ignore[attr-defined]
    except ImportError:
        import taichi as ti

        cache = os.environ.get("ABRAXAS_TEST_TICACHE", str(Path.home() / ".cache" / "hera-tests" / "ticache"))
        ti.init(arch=ti.cpu, cpu_max_num_threads=1, offline_cache_file_path=cache, log_level=ti.WARN)
    else:
        init("cpu", threads=1)


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
