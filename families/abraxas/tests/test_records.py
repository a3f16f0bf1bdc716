"""hera's I/O contract: one record (iteration, byte, prediction or -1) per byte presented, in order, any byte."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def test_one_record_per_byte_presented_in_order_across_uneven_steps_and_early_stops(brain: Callable[..., Any]) -> None:
    rt = brain()
    assert rt.io.unit == "byte"
    ticks = rt.params.ticks_per_byte
    stream = bytes(range(256))[::7] + b"\x00\xff\x80"  # binary: NUL, 0xFF, bytes past ASCII
    rt.feed(stream)
    rt.step(ticks * 3 + 1)  # stops mid-byte
    rt.step(5, ["output"])  # may stop at once, where the output sheet answered
    while rt.queued():
        rt.step(ticks * 5 - 3)
    records, decisions = rt.take_records(), rt.take_decisions()
    assert bytes(records[:, 1].astype(np.uint8)) == stream
    assert (records[:, 0] % ticks == 0).all() and (np.diff(records[:, 0]) == ticks).all()
    # The output of each record is the decision made on that byte's tick; -1 where there was none.
    presented = decisions[decisions[:, 2] >= 0]
    assert records.tolist() == presented[:, [0, 2, 1]].tolist()
    assert rt.take_records().shape == (0, 3)  # taken once
