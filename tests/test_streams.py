"""Byte-exact streams through the controller (issue 13): ``hera signal SIGTTIN`` in, ``SIGTTOU`` out.

Every agent is a real ``hera up --daemon`` process of the tick test family,
which echoes each byte it is presented, one a iteration: its record for a
unit is ``(iteration, unit, unit)``. What is checked is what a user sees: the
bytes and records that come back, the lines hera prints, and, on a real
terminal (a pty), that an agent's control bytes never reach the screen raw.
"""

from __future__ import annotations

import json
import random
import re
import subprocess

import pytest

from agent_helpers import build, reap_agents, request, snapshot, tick_world, up_daemon, wait_for
from herakit import World, one_error_line
from terminalkit import TIMEOUT, pexpect, plain


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """One world and one running tick agent for the module's tests (each reads what it fed)."""
    with World(tmp_path_factory.mktemp("streams")) as world:
        tick_world(world)
        build(world)
        up = up_daemon(world, "t.json")
        world.up = up  # type: ignore[attr-defined]
        yield world
        reap_agents(world)


def hera_bytes(world: World, *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``hera ARGS`` with ``data`` on standard input, its output kept as bytes (a pipe: never a terminal)."""
    return subprocess.run(
        world.command(*args), env=world.env, cwd=world.workdir, input=data, capture_output=True, timeout=120
    )


def presented(world: World) -> int:
    return int(request(world, world.up.uuid, "status")["io"]["presented"])


def feed_all(world: World, data: bytes) -> None:
    """SIGTTIN ``data`` and wait until the agent has presented every unit of it."""
    before = presented(world)
    fed = hera_bytes(world, "--uuid", world.up.uuid, "signal", "SIGTTIN", data=data)
    assert fed.returncode == 0 and fed.stderr.decode() == f"fed {len(data):,} byte(s) to {world.up.callsign}\n", fed
    wait_for(lambda: presented(world) >= before + len(data), what="every unit presented")


def test_any_bytes_go_in_and_come_back_exactly_raw_and_as_one_record_per_unit(world: World) -> None:
    # Every byte value, in an order no line splitting or text decoding survives, over several chunks.
    rng = random.Random(13)
    data = bytes(range(256)) + rng.randbytes(150_000) + b"\xc3"  # more than two 64 KiB chunks, no newline at the end
    feed_all(world, data)
    out = hera_bytes(world, "--uuid", world.up.uuid, "signal", "SIGTTOU", "--raw")
    assert out.returncode == 0 and out.stdout == data
    assert hera_bytes(world, "--uuid", world.up.uuid, "signal", "SIGTTOU", "--raw").stdout == b""  # read once

    # --jsonl: one record per unit presented, in the order fed, each with its iteration.
    data = rng.randbytes(5000)
    feed_all(world, data)
    records = read_records(world)
    assert bytes(r["unit"] for r in records) == data
    assert all(set(r) == {"iteration", "unit", "output"} and r["output"] == r["unit"] for r in records)
    iterations = [r["iteration"] for r in records]
    assert iterations == sorted(set(iterations))  # one unit per iteration, rising


def test_on_a_terminal_output_is_text_with_control_bytes_escaped(world: World) -> None:
    data = "café ".encode() + b"\x0e\x1b[2J\\ \xff\r\x9b\xc2\x9b ok\n"
    feed_all(world, data)
    child = pexpect.spawn(
        world.python, ["-m", "hera", "--uuid", world.up.uuid, "signal", "SIGTTOU"],
        env=dict(world.env, TERM="dumb"), cwd=str(world.workdir), encoding="utf-8", timeout=TIMEOUT,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert child.before.replace("\r\n", "\n") == "café \\x0e\\x1b[2J\\\\ \\xff\\x0d\\x9b\\xc2\\x9b ok\n"
    assert plain(child.before) == child.before.replace("\r\n", "\n")  # no escape sequence reached the screen


def test_stream_options_belong_to_sigttou(world: World) -> None:
    for flag in ("--raw", "--jsonl", "--follow"):
        one_error_line(world("--uuid", world.up.uuid, "signal", "SIGTTIN", flag), f"{flag} is for SIGTTOU", rc=2)
    one_error_line(world("--uuid", world.up.uuid, "signal", "SIGTTOU", "--raw", "--jsonl"), "not allowed with", rc=2)


def test_a_down_in_the_middle_of_a_feed_loses_nothing_that_went_in(world: World) -> None:
    """More than the agent's input queue holds, at a pace that keeps it full; ``down`` while hera waits.

    Standard error is a terminal, so hera shows its progress. It says how
    much went in; after the next up every unit of it is the agent's, in
    order: the records a ``SIGTTOU --follow`` got until the down (which ends
    it, as a stopped container ends ``docker logs --follow``), those read
    after the next up, then what still waits in its input queue.
    """
    uuid, callsign = world.up.uuid, world.up.callsign
    start = request(world, uuid, "status")["io"]
    request(world, uuid, "pace", pace="50000/s")
    data = random.Random(14).randbytes(1_300_000)
    (world.workdir / "stream.bin").write_bytes(data)
    follower = subprocess.Popen(
        world.command("--uuid", uuid, "signal", "SIGTTOU", "--jsonl", "--follow"),
        env=world.env, cwd=world.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    feeder = pexpect.spawn(
        "sh", ["-c", f"exec {world.python} -m hera --uuid {uuid} signal SIGTTIN < stream.bin"],
        env=world.env, cwd=str(world.workdir), encoding="utf-8", timeout=TIMEOUT,
    )
    feeder.expect(rf"feeding {callsign}: [\d,]+ of 1,300,000 \(\d+%\) bytes, [\d,]+ KiB/s")
    wait_for(lambda: request(world, uuid, "status")["io"]["pending"] > 900_000, what="the input queue to fill")
    world("--uuid", uuid, "down", check=True)
    out, err = follower.communicate(timeout=60)
    assert (follower.returncode, err.decode()) == (0, f"{callsign} went down; no more output until it is up again\n")
    before = [json.loads(line) for line in out.splitlines()]
    feeder.expect(pexpect.EOF)
    feeder.close()
    said = re.split(r"[\r\n]+", feeder.before.strip())[-1]  # after the progress line, redrawn in place
    found = re.fullmatch(rf"hera: .*; fed ([\d,]+) byte\(s\) to {callsign} before that", said)
    assert feeder.exitstatus != 0 and found, said
    fed = int(found[1].replace(",", ""))
    assert 900_000 < fed < len(data)

    up_daemon(world, "t.json", "--paused")  # nothing presented after the up: what waits is in its queue
    units = bytes(r["unit"] for r in before + read_records(world))
    pending = snapshot(world, uuid)[1]["pending"].tobytes()
    assert units + pending == data[:fed]
    assert request(world, uuid, "status")["io"]["fed"] == start["fed"] + fed
    request(world, uuid, "pace", pace="max")
    request(world, uuid, "run")


def read_records(world: World) -> list[dict]:
    """``hera signal SIGTTOU --jsonl``: the records not read yet."""
    out = hera_bytes(world, "--uuid", world.up.uuid, "signal", "SIGTTOU", "--jsonl")
    assert out.returncode == 0, out
    return [json.loads(line) for line in out.stdout.splitlines()]
