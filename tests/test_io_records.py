"""The family I/O contract through a real agent: one record per unit presented, counts, and what a save keeps.

tick's unit is a byte, presented one per iteration and echoed, except its
``quiet`` layout's ``.``, which gets no answer: so every record's place,
iteration and output (none included) is known exactly. One agent, up paused
for the module, is stepped by each test; a test reads what it fed.
"""

from __future__ import annotations

import base64
import json

import pytest

from agent_helpers import (
    build,
    cache_path,
    cached_arrays,
    module_tick_world,
    request,
    up_daemon,
)
from herakit import World, one_error_line

EVERY_BYTE = bytes(range(256))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from module_tick_world(tmp_path_factory, "io")


@pytest.fixture(scope="module")
def agent(world):
    """A paused tick agent whose ``.`` gets no answer; each test leaves it paused with nothing unread."""
    built = build(world, "q.json", layout="quiet")
    up_daemon(world, "q.json", "--paused")
    return built.uuid


def feed(world: World, uuid: str, data: bytes) -> dict:
    return request(world, uuid, "feed", data=base64.b64encode(data).decode())


def io(world: World, uuid: str) -> dict:
    return request(world, uuid, "status")["io"]


def test_every_byte_presented_has_one_record_in_order_with_none_where_nothing_was_answered(world, agent):
    before = io(world, agent)
    start = request(world, agent, "status")["iteration"]
    assert feed(world, agent, EVERY_BYTE) == {"fed": 256, "queued": 256}
    assert io(world, agent) == {**before, "fed": before["fed"] + 256, "pending": 256}

    request(world, agent, "step", n=300)  # 256 bytes presented, then 44 idle iterations with nothing to present
    got = request(world, agent, "read", records=True)

    assert [r["unit"] for r in got["records"]] == list(EVERY_BYTE)
    assert [r["iteration"] for r in got["records"]] == list(range(start, start + 256))
    assert [r["output"] for r in got["records"]] == [None if b == ord(".") else b for b in EVERY_BYTE]
    assert base64.b64decode(got["data"]) == EVERY_BYTE.replace(b".", b"")  # binary-safe, nones skipped
    assert got["dropped"] == 0
    assert io(world, agent) == {
        "unit": "byte",
        "fed": before["fed"] + 256,
        "presented": before["presented"] + 256,
        "pending": 0,
        "answered": before["answered"] + 255,
        "dropped": 0,
    }
    assert request(world, agent, "read") == {"data": "", "dropped": 0}  # taken once


def test_read_takes_at_most_its_limit_oldest_first(world, agent):
    feed(world, agent, b"abcdef")
    request(world, agent, "step", n=6)
    first = request(world, agent, "read", records=True, limit=4)
    rest = request(world, agent, "read", limit=10)
    assert [r["unit"] for r in first["records"]] == list(b"abcd")
    assert (base64.b64decode(first["data"]), base64.b64decode(rest["data"])) == (b"abcd", b"ef")
    assert "records" not in rest


def test_counts_and_unread_records_are_saved_with_the_state_and_shown_by_inspect_and_agents(world, agent):
    feed(world, agent, b"x.yz")
    request(world, agent, "step", n=2)  # "x" and "." presented, "yz" still queued
    counts = io(world, agent)
    assert counts["pending"] == 2
    listed = json.loads(world("agents", "--json", check=True).out)
    assert next(a for a in listed if a["uuid"] == agent)["io"] == counts  # the live status file

    world("down", agent, check=True)
    _, arrays = cached_arrays(world, agent)
    assert arrays["hera.io"].tolist() == [counts["fed"], counts["presented"], counts["answered"]]
    assert [row[1:] for row in arrays["hera.records"].tolist()] == [[ord("x"), ord("x")], [ord("."), -1]]
    shown = json.loads(world("inspect", agent, "--json", check=True).out)
    assert shown["io"] == {k: counts[k] for k in ("fed", "presented", "pending", "answered")} | {"unread": 2}
    assert f"io          fed {counts['fed']:,}, presented {counts['presented']:,} (2 pending)" in world("inspect", agent, check=True).out

    up_daemon(world, agent, "--paused")
    assert io(world, agent) == counts
    request(world, agent, "step", n=2)
    got = request(world, agent, "read", records=True)
    assert [(r["unit"], r["output"]) for r in got["records"]] == [(120, 120), (46, None), (121, 121), (122, 122)]
    assert io(world, agent)["presented"] == counts["presented"] + 2


def test_an_older_files_unread_output_bytes_still_load_and_are_read(world, agent):
    """hera used to save unread output as bytes, ``hera.output``: they come back from ``read``, of no known unit."""
    import numpy as np

    from hera.instance import load, save

    world("down", agent, check=True)
    path = cache_path(world, agent)
    instance = load(path)
    arrays = {name: array for name, array in instance.arrays.items() if name not in ("hera.io", "hera.records")}
    save(path, instance.header, {**arrays, "hera.output": np.frombuffer(b"\x00hi\xff", np.uint8).copy()}, mode=0o600)
    up_daemon(world, agent, "--paused")
    got = request(world, agent, "read", records=True)
    assert base64.b64decode(got["data"]) == b"\x00hi\xff"
    assert got["records"][0] == {"iteration": -1, "unit": -1, "output": 0}


def test_a_family_without_an_input_area_refuses_feed_in_one_line(world):
    world("--family", "vogels-abbott", "build", "-o", "va.json", check=True)
    up = up_daemon(world, "va.json", "--paused")
    assert request(world, up.uuid, "status")["io"] == {"unit": None}
    result = world("--uuid", up.uuid, "signal", "SIGTTIN", input="hello\n")
    line = one_error_line(result, "family vogels-abbott has no input area")
    assert "NotImplementedError" not in line
    world("down", up.uuid, check=True)
