"""Helpers for vogels-abbott's tests (a unique module name: tests/ has a conftest of its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hera.instance import Header
from vogels_abbott import CubaParams, VogelsAbbott

HERE = Path(__file__).parent

#: Small enough for the numpy reference, busy enough to spike every few iterations.
SMALL = {"neurons": 300, "fan_in": 30}
#: Pair STDP strong enough to change weights visibly within a few hundred iterations.
STDP = {"stdp": {"a_pre_mv": 0.2, "a_post_mv": -0.21}}


def params_for(layout: str = "example", overrides: Mapping[str, Any] | None = None) -> CubaParams:
    return VogelsAbbott().resolve(layout, [("test", overrides)] if overrides else [])  # type: ignore[return-value]


def header_for(params: CubaParams, seed: int, layout: str = "example") -> Header:
    return VogelsAbbott().new_header(layout, params, seed, uuid=str(uuidlib.UUID(int=seed + 1)), callsign="test-cuba")


# -- networks run in a fresh process (its own Taichi arch and thread count) ---------------------------

#: One ``step`` call: (iterations, the probes to stop on).
Steps = Sequence[tuple[int, Sequence[str]]]


@dataclass(frozen=True)
class Played:
    """What one network did: its export, its spike log, and each ``step``'s (iterations, iteration, stopped_on)."""

    state: dict[str, np.ndarray]
    iterations: np.ndarray
    neurons: np.ndarray
    results: list[tuple[int, int, str | None]]
    fused: bool


def play(runtime: Any, steps: Steps) -> Played:
    """``step`` a runtime as ``steps`` says, recording every spike."""
    runtime.record(True)
    results = []
    for n, stop_on in steps:
        r = runtime.step(n, stop_on=list(stop_on))
        results.append((r.iterations, r.iteration, r.stopped_on))
    its, ids = runtime.take_spikes()
    return Played(runtime.export_state(), its, ids, results, runtime.fused)


def run_child(folder: Path, arch: str, runs: Sequence[Mapping[str, Any]], threads: int | None = None) -> dict[str, Any]:
    """Run ``runs`` in order in a fresh process on ``arch`` (see va_child.py); returns what each played, by name.

    A run: ``name``, ``params`` (a CubaParams' dump), ``seed``, ``fused`` (None: the arch's
    default), ``steps``; ``state``: a file in ``folder`` to resume from (else built fresh),
    which an earlier run of the same child may have written as ``NAME.npz``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.json").write_text(json.dumps({"arch": arch, "threads": threads, "runs": list(runs)}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, str(HERE / "va_child.py"), str(folder)], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((folder / "report.json").read_text())
    played: dict[str, Any] = {"report": report}
    for run in runs:
        name = run["name"]
        with np.load(folder / f"{name}.npz") as state, np.load(folder / f"{name}.log.npz") as log:
            results = [(a, b, c) for a, b, c in report["runs"][name]["results"]]
            played[name] = Played(
                {k: state[k] for k in state.files}, log["iterations"], log["neurons"], results,
                report["runs"][name]["fused"],
            )
    return played


def assert_same(a: Played, b: Played, close: Mapping[str, tuple[float, str]] | None = None) -> None:
    """Same spikes, same stops, every exported array bit for bit (but those in ``close``: within atol, with why)."""
    assert a.results == b.results
    np.testing.assert_array_equal(a.iterations, b.iterations)
    np.testing.assert_array_equal(a.neurons, b.neurons)
    assert_same_state(a.state, b.state, close)


def assert_same_state(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], close: Mapping[str, tuple[float, str]] | None = None
) -> None:
    """The same arrays, bit for bit (but those in ``close``: within an absolute tolerance, for the reason given)."""
    close = close or {}
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        if name in close:
            atol, why = close[name]
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=atol, err_msg=f"{name}: {why}")
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
