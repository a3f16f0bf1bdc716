"""The per-iteration parallel path (what GPUs run) computes exactly what the fused CPU path does."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import numpy as np
import pytest

from abraxas import Abraxas
from abraxas.streams import SENTENCE, repeated
from conftest import HERE, fingerprint, header_for, params_for


@pytest.mark.parametrize(
    "overrides",
    [None, {"hidden": {"depth": 3, "width": 16, "height": 8}}, {"hidden": {"depth": 0}}],
    ids=["example", "deep", "no-hidden-sheet"],
)
def test_parallel_phases_match_the_fused_loop_bit_for_bit(taichi: None, overrides: dict[str, Any] | None) -> None:
    family = Abraxas()
    params = params_for(overrides=overrides)
    runs = []
    for arch in ("cpu", "cuda"):  # "cuda" only selects the per-iteration path; Taichi itself runs on the CPU here
        rt = family.runtime(header_for(params), family.build(params, 7).arrays, arch)
        assert rt.fused == (arch == "cpu")
        rt.feed(repeated(SENTENCE, 300))
        result = rt.step(1000)
        rt.step(203, ["area:output"])
        runs.append((result, rt.iteration, rt.export_state(), rt.take_decisions()))
    (_, it_a, a, log_a), (_, it_b, b, log_b) = runs
    assert it_a == it_b
    assert np.array_equal(log_a, log_b, equal_nan=True)  # idle ticks score nothing: NaN
    assert all(a[name].tobytes() == b[name].tobytes() for name in a), [n for n in a if a[n].tobytes() != b[n].tobytes()]


def test_both_paths_on_two_threads_match_the_one_thread_fused_run(brain: Callable[..., Any]) -> None:
    """Two CPU threads really run the parallel phases concurrently (scatter-adds racing): still bit for bit."""
    child = subprocess.run(
        [sys.executable, str(HERE / "paths_child.py"), "cpu", "2", "fused", "parallel"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    runs = json.loads(child.stdout.splitlines()[-1])  # after Taichi's banner
    reference = fingerprint(brain())
    assert all(stop[1] for stop in reference["stops"][1:])  # every step with a probe armed stopped on one
    assert runs["fused"] == reference
    assert runs["parallel"] == reference


def test_a_watched_probe_is_read_from_the_device_once_per_batch_not_per_iteration(taichi: None) -> None:
    """The per-iteration path queues launches; with a probe armed it must not wait for each one to ask "hit?"."""
    family, params = Abraxas(), params_for()
    rt = family.runtime(header_for(params), family.build(params, 7).arrays, "cuda")
    rt.feed(SENTENCE)
    rt.step(10, ["neuron:1"])  # compiles everything the measured step calls
    # Every way a value crosses to the host: a field's element or copy, a kernel's return value (it syncs).
    field = importlib.import_module("taichi.lang.field").ScalarField
    sync = importlib.import_module("taichi.lang.runtime_ops").sync
    reads = {field.__getitem__.__wrapped__.__code__, field.to_numpy.__wrapped__.__code__, sync.__code__}
    counted = [0]

    def count(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in reads:
            counted[0] += 1

    sys.setprofile(count)
    try:
        result = rt.step(2048, ["neuron:1"])  # byte 1 is never fed: the probe never fires
    finally:
        sys.setprofile(None)
    assert result.iterations == 2048 and result.stopped_on is None
    assert counted[0] <= 2048 // 64, f"{counted[0]} reads from the device in 2048 iterations"
