"""Twenty hera processes at the same agent at once: the cache stays consistent.

Each race starts every process before any is waited for. Where only one can
succeed, exactly one does; the rest fail with one clean line; no agent is
lost, duplicated, half written or left in two places.
"""

from __future__ import annotations

import json

import pytest

from cachekit import cache_of, cached, make_instance, read_head, with_private_system_dir
from herakit import leftovers

RACERS = 20


@pytest.fixture
def hera(hera):
    """conftest's world, with a system directory of its own."""
    return with_private_system_dir(hera)


def race(hera, commands):
    """Start every command, then wait for all: [(args, rc, out, err)]."""
    started = [(args, hera.popen(*args)) for args in commands]
    results = []
    for args, process in started:
        out, err = process.communicate(timeout=120)
        results.append((args, process.returncode, out, err))
    return results


def assert_losers_failed_cleanly(results):
    for args, rc, out, err in results:
        assert "Traceback" not in err, (args, err)
        if rc != 0:
            assert rc in (3, 4) and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("hera: "), (args, rc, err)


def test_twenty_destroys_of_one_agent_destroy_it_once(hera):
    make_instance(hera.workdir, "brain.json", callsign="brisk-otter")
    assert hera("install", "brain.json").rc == 0
    uuid = read_head(hera.workdir / "brain.json")["uuid"]

    results = race(hera, [("--uuid", uuid[:8], "destroy")] * RACERS)

    winners = [r for r in results if r[1] == 0]
    assert len(winners) == 1, results
    assert winners[0][2] == f"destroyed brisk-otter {uuid}\n"
    assert_losers_failed_cleanly(results)
    assert cached(hera) == []
    assert not leftovers(cache_of(hera), hera.workdir)


def test_twenty_installs_of_one_file_install_it_once(hera):
    from hera.instance import load

    make_instance(hera.workdir, "brain.json", callsign="brisk-otter")
    uuid = read_head(hera.workdir / "brain.json")["uuid"]

    results = race(hera, [("install", "brain.json")] * RACERS)

    assert sum(rc == 0 for _, rc, _, _ in results) == 1, results
    assert_losers_failed_cleanly(results)
    assert all("already installed" in err for _, rc, _, err in results if rc != 0)
    assert cached(hera) == [cache_of(hera) / f"{uuid}.json"]
    agent = load(cache_of(hera) / f"{uuid}.json")  # complete and verified
    assert agent.header.uuid == uuid and agent.header.callsign == "brisk-otter"
    assert [row["uuid"] for row in json.loads(hera("agents", "--json").out)] == [uuid]
    assert not leftovers(cache_of(hera), hera.workdir)


def test_uninstalls_and_destroys_racing_leave_the_agent_in_at_most_one_place(hera):
    from hera.instance import load

    make_instance(hera.workdir, "brain.json", callsign="brisk-otter")
    assert hera("install", "brain.json").rc == 0
    uuid = read_head(hera.workdir / "brain.json")["uuid"]
    content = (cache_of(hera) / f"{uuid}.json").read_bytes()
    commands = [
        ("--uuid", uuid, "uninstall", "-o", f"out-{n}.json") if n % 2 else ("--uuid", uuid, "destroy")
        for n in range(RACERS)
    ]

    results = race(hera, commands)

    winners = [r for r in results if r[1] == 0]
    assert len(winners) == 1, results
    assert_losers_failed_cleanly(results)
    assert cached(hera) == []
    outputs = sorted(hera.workdir.glob("out-*.json"))
    if winners[0][0][2] == "uninstall":
        # the one uninstall that won moved the agent out, whole
        assert outputs == [hera.workdir / winners[0][0][4]]
        assert outputs[0].read_bytes() == content
        assert load(outputs[0]).header.uuid == uuid
    else:
        assert outputs == []
    assert not leftovers(cache_of(hera), hera.workdir)


def test_installs_racing_an_uninstall_of_the_same_agent_keep_one_copy_in_the_cache(hera):
    """Reinstalls of the agent's file while it is uninstalled: never two cache files, never a torn one."""
    from hera.instance import load

    make_instance(hera.workdir, "brain.json", callsign="brisk-otter")
    assert hera("install", "brain.json").rc == 0
    uuid = read_head(hera.workdir / "brain.json")["uuid"]
    commands = [("--uuid", uuid, "uninstall", "-o", "out.json")] + [("install", "brain.json")] * 5

    results = race(hera, commands)

    assert_losers_failed_cleanly(results)
    assert results[0][1] == 0 and (hera.workdir / "out.json").exists()  # the uninstall always can
    reinstalls = sum(rc == 0 for _, rc, _, _ in results[1:])
    assert reinstalls <= 1  # only an install after the uninstall can succeed, and only one
    in_cache = cached(hera)
    assert len(in_cache) == reinstalls, results
    for path in in_cache:
        assert load(path).header.uuid == uuid
    assert not leftovers(cache_of(hera), hera.workdir)


def test_agents_installed_at_once_under_one_callsign_get_distinct_callsigns(hera):
    for n in range(6):
        make_instance(hera.workdir, f"{n}.json", callsign="brisk-otter")

    results = race(hera, [("install", f"{n}.json") for n in range(6)])

    assert all(rc == 0 for _, rc, _, _ in results), results
    callsigns = sorted(row["callsign"] for row in json.loads(hera("agents", "--json").out))
    assert callsigns == ["brisk-otter"] + [f"brisk-otter-{n}" for n in range(2, 7)]


WRITER = """
import os, signal, sys
from pathlib import Path
from hera.instance.atomic import atomic_write
with atomic_write(Path(sys.argv[1]), 0o600) as out:
    out.write(b'{"half": ')
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    print("writing", flush=True)
    sys.stdin.readline()  # a live writer, mid-write, until the test lets it go
"""


def test_a_listing_sweeps_what_a_killed_writer_left_and_never_a_live_writers_temporary(hera) -> None:
    """A SIGKILLed install or grow leaves its temporary; the next command, even a read-only one, removes it.

    The lock-free sweep takes each temporary's flock: a dead writer's is free,
    a live writer's is held (it must not lose its half-written file).
    """
    import subprocess
    import sys

    directory = cache_of(hera)
    directory.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", WRITER, str(directory / "a.json"), "die"], check=False)
    assert dead.returncode == -9 and len(leftovers(directory)) == 1
    live = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory / "b.json"), "live"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert live.stdout is not None and live.stdout.readline() == "writing\n"
        hera("agents", check=True)
        left = leftovers(directory)
        assert len(left) == 1 and ".hera-tmp-b.json" in left[0].name, left  # the dead one gone, the live one kept
    finally:
        live.communicate("go\n", timeout=30)
    assert live.returncode == 0 and (directory / "b.json").read_bytes() == b'{"half": ' and not leftovers(directory)
