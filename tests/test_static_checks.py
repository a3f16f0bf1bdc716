"""The tree is lint-clean (ruff) and type-clean (mypy) under the settings in pyproject.toml.

Both run as a developer runs them, from the repository root with this
interpreter, so the suite and CI catch what an editor would. They come with
the ``test`` extra; a missing one fails here rather than passing unchecked.
mypy keeps its cache in pytest's cache directory (ignored by git), so a
repeated run re-checks only what changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def check(*command: str) -> None:
    """Run ``python -m <command>`` in the repository root; on failure show everything it printed."""
    result = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}", pytrace=False)


def test_ruff_finds_nothing() -> None:
    check("ruff", "check", "--no-cache", "--output-format", "concise", ".")


def test_mypy_finds_nothing(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    pytest_cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    cache = pytest_cache.mkdir("mypy") if pytest_cache is not None else tmp_path
    check("mypy", "--cache-dir", str(cache))
