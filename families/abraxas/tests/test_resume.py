"""N + M iterations in one go equal N, export, a fresh process, import, M: bit for bit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from abraxas import Abraxas
from abraxas.streams import SENTENCE, repeated
from conftest import HERE, header_for, params_for
from hera import instance
from hera.runtime import dynamic_header

# Neither split falls on a byte-clock tick or a launch boundary, and input is still pending at the split.
FIRST, SECOND = 1001, 1499
STREAM = repeated(SENTENCE, 800)


def assert_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), f"{name} differs"


def test_down_then_up_in_a_fresh_process_resumes_bit_exactly(brain: Callable[..., Any], tmp_path: Path) -> None:
    straight = brain()
    straight.feed(STREAM)
    straight.step(FIRST + SECOND)
    expected = straight.export_state()
    assert expected["state.current"].any() and expected["io.pending"].size  # spikes in flight, input queued

    first = brain()
    first.feed(STREAM)
    first.step(FIRST)
    params = params_for()
    header = dynamic_header(header_for(params), first)
    instance.save(tmp_path / "down.json", header, first.export_state())
    subprocess.run(
        [sys.executable, str(HERE / "resume_child.py"), str(tmp_path / "down.json"), str(tmp_path / "up.json"), str(SECOND)],
        check=True,
        timeout=120,
    )
    resumed = instance.load(tmp_path / "up.json")
    assert resumed.header.iteration == FIRST + SECOND
    assert_identical(expected, resumed.arrays)


def test_resume_in_process_and_split_steps_match_one_step(brain: Callable[..., Any]) -> None:
    whole = brain()
    whole.feed(STREAM)
    whole.step(2000)
    pieces = brain()
    pieces.feed(STREAM)
    for n in (1, 3, 4, 999, 10):
        pieces.step(n)
    pieces.step(2000 - pieces.iteration)
    assert_identical(whole.export_state(), pieces.export_state())
    again = Abraxas().runtime(dynamic_header(header_for(params_for()), pieces), pieces.export_state(), "cpu")
    whole.step(300)
    again.step(300)
    assert_identical(whole.export_state(), again.export_state())


@pytest.mark.parametrize("depth", [0, 2], ids=["no-hidden-sheet", "two-hidden-sheets"])
def test_brains_of_every_depth_resume_bit_exactly(brain: Callable[..., Any], depth: int) -> None:
    """Depth 2 adds a hidden-to-hidden window and a second competing stage (state.clocked) to carry over."""
    overrides = {"hidden": {"depth": depth, "width": 16, "height": 16}}
    straight = brain(overrides=overrides)
    straight.feed(STREAM)
    straight.step(FIRST + SECOND)
    first = brain(overrides=overrides)
    first.feed(STREAM)
    first.step(FIRST)
    header = dynamic_header(header_for(params_for(overrides=overrides)), first)
    resumed = Abraxas().runtime(header, first.export_state(), "cpu")
    resumed.step(SECOND)
    assert_identical(straight.export_state(), resumed.export_state())
    assert np.array_equal(straight.take_decisions()[-50:], resumed.take_decisions()[-50:], equal_nan=True)
