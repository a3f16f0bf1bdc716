"""Helpers for vogels-abbott's tests (a unique module name: tests/ has a conftest of its own)."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from typing import Any

from hera.instance import Header
from vogels_abbott import CubaParams, VogelsAbbott

#: Small enough for the numpy reference, busy enough to spike every few iterations.
SMALL = {"neurons": 300, "fan_in": 30}


def params_for(layout: str = "example", overrides: Mapping[str, Any] | None = None) -> CubaParams:
    return VogelsAbbott().resolve(layout, [("test", overrides)] if overrides else [])  # type: ignore[return-value]


def header_for(params: CubaParams, seed: int, layout: str = "example") -> Header:
    return VogelsAbbott().new_header(layout, params, seed, uuid=str(uuidlib.UUID(int=seed + 1)), callsign="test-cuba")
