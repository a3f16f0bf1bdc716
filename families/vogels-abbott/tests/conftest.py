"""Shared set-up for vogels-abbott's tests: Taichi on the CPU once per process, networks from layouts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from va_helpers import SMALL, params_for
from vogels_abbott import VogelsAbbott


@pytest.fixture(scope="session")
def taichi() -> None:
    from hera.kernels import init

    init("cpu")


@pytest.fixture
def network(taichi: None) -> Callable[..., Any]:
    """``network(overrides=SMALL, seed=3, fused=None, arrays=None)``: a runtime (and the arrays it was built from)."""

    def make(
        overrides: Mapping[str, Any] | None = None, seed: int = 3, fused: bool | None = None, arrays: Any = None
    ) -> Any:
        from vogels_abbott.runtime import CubaRuntime

        params = params_for("example", dict(SMALL) if overrides is None else overrides)
        built = VogelsAbbott().build(params, seed).arrays if arrays is None else arrays
        return CubaRuntime(params, seed, dict(built), "cpu", fused=fused), params, built

    return make
