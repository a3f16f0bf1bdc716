"""Set-up shared by every test directory (tests/ and each family's tests/): GPU-only tests skip cleanly.

A test marked ``gpu`` runs only where hera itself finds a CUDA GPU it could
use (``hera.devices.gpus()``, asked once and only when such a test was
collected); elsewhere it is skipped with the reason, never failed.
"""

from __future__ import annotations

import pytest


def _cuda_missing() -> str | None:
    from hera.devices import gpus

    try:
        found = [device for device in gpus() if device.usable and "cuda" in device.backends]
    except Exception as exc:  # a broken driver is a reason to skip, not an error of the suite
        return f"no usable CUDA GPU ({exc})"
    return None if found else "no usable CUDA GPU on this host"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not marked:
        return
    reason = _cuda_missing()
    if reason is not None:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))
