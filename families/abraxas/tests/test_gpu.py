"""On a CUDA GPU abraxas computes what the CPU computes, bit for bit; skipped where there is no CUDA GPU.

Why bit for bit can hold: the current rings are fixed-point integers, so the
GPU's racing scatter-adds sum the same in any order; the noise is a
counter-based hash, not a generator's sequence; and although Taichi's CUDA
backend fuses ``a * b + c`` into an FMA and flushes float32 subnormals even
without fast math, every product abraxas adds is wrapped in the driver's
``rounded`` and every value it keeps in ``flushed`` (see
:mod:`hera.kernels.driver`), so the float operations are the CPU's. Not yet
run on a GPU: no GPU was lent while this was written. Each test runs Taichi on
CUDA in a child process (one arch per process) and compares with the CPU here.
Taichi on a GPU runs the per-iteration path (batched launches, read once per batch).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_resume import FIRST, SECOND, STREAM, assert_identical

from conftest import HERE, fingerprint, header_for, params_for
from hera import instance
from hera.runtime import dynamic_header

pytestmark = pytest.mark.gpu  # the repository's conftest skips these, with the reason, where no CUDA GPU is usable


def test_n_iterations_on_cuda_equal_the_cpu_and_stop_at_the_same_breakpoints(brain: Callable[..., Any]) -> None:
    child = subprocess.run(
        [sys.executable, str(HERE / "paths_child.py"), "cuda", "1", "parallel"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    on_gpu = json.loads(child.stdout.splitlines()[-1])["parallel"]
    on_cpu = fingerprint(brain())
    assert on_gpu["stops"] == on_cpu["stops"]  # the same iteration, the same probe named, the same spike counts
    assert on_gpu["arrays"] == on_cpu["arrays"]
    assert on_gpu == on_cpu


def test_a_brain_saved_on_the_cpu_resumes_on_cuda_exactly(brain: Callable[..., Any], tmp_path: Path) -> None:
    straight = brain()
    straight.feed(STREAM)
    straight.step(FIRST + SECOND)
    first = brain()
    first.feed(STREAM)
    first.step(FIRST)
    instance.save(tmp_path / "down.json", dynamic_header(header_for(params_for()), first), first.export_state())
    subprocess.run(
        [sys.executable, str(HERE / "resume_child.py"), str(tmp_path / "down.json"), str(tmp_path / "up.json"),
         str(SECOND), "cuda"],
        check=True, timeout=600,
    )
    resumed = instance.load(tmp_path / "up.json")
    assert resumed.header.iteration == FIRST + SECOND
    assert_identical(straight.export_state(), resumed.arrays)
