"""Whose processes are believed: a process of another user titled like an agent is not that agent.

An up agent titles itself ``hera: <callsign> <uuid8> <family>/<layout>``, and
hera finds an agent whose pid-file is gone by that title. Any local user can
title a process so (``exec -a "hera: x 67ffe230 abraxas/example" sleep 900``).
These tests plant such processes as a throwaway local user (``useradd``) and
check that nobody else's commands are blocked, misled or turned against them:
a user believes only their own processes; root believes its own and, for an
agent in another user's cache, that user's (the owner of the cached file),
and never signals a process because of its title alone.

Skipped unless the tests run as root (making users and acting as them needs it).
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from collections.abc import Iterator

import psutil
import pytest

from agent_helpers import alive, build, reap_agents, tick_world, up_daemon, wait_for, wait_gone
from cachekit import (
    OtherUser,
    make_instance,
    other_user_python,
    read_head,
    throwaway_user as make_throwaway_user,
    with_private_system_dir,
)
from herakit import World, one_error_line

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users")


@pytest.fixture(scope="module")
def mallory() -> Iterator[pwd.struct_passwd]:
    """The attacker: a local user with no rights over anyone's agents."""
    yield from make_throwaway_user(home=False)


@pytest.fixture(scope="module")
def alice() -> Iterator[pwd.struct_passwd]:
    """A user with a home, whose cache root lists."""
    yield from make_throwaway_user(home=True)


@pytest.fixture
def titled() -> Iterator:
    """``titled(user, title)``: a process of ``user`` titled ``title``, as ``exec -a`` makes one; all killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(user: pwd.struct_passwd, title: str) -> int:
        process = subprocess.Popen(
            ["bash", "-c", 'exec -a "$0" sleep 300', title], user=user.pw_uid, group=user.pw_gid, extra_groups=[]
        )
        started.append(process)
        wait_for(lambda: " ".join(_cmdline(process.pid)).startswith(title), 10, "the titled process")
        return process.pid

    yield start
    for process in started:
        process.kill()
        process.wait()


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def listed(world: World, *args: str) -> dict[str, dict]:
    result = world("agents", *args, "--json")
    assert result.rc == 0, str(result)
    return {row["uuid"]: row for row in json.loads(result.out)}


def test_another_users_process_titled_as_roots_agents_blocks_nothing_and_is_never_signalled(hera, mallory, titled):
    with_private_system_dir(hera)
    heads = {}
    for name in ("destroyed", "uninstalled", "signalled"):
        make_instance(hera.workdir, f"{name}.json", callsign=name)
        hera("install", f"{name}.json", check=True)
        heads[name] = read_head(hera.workdir / f"{name}.json")
    fakes = {name: titled(mallory, f"hera: {name} {head['uuid'][:8]} abraxas/example") for name, head in heads.items()}

    rows = listed(hera)
    assert {(row["callsign"], row["state"], row["pid"]) for row in rows.values()} == {
        (name, "built", None) for name in heads
    }
    refused = hera("--callsign", "signalled", "signal", "SIGTERM")
    one_error_line(refused, "is not up", rc=4)
    assert hera("--callsign", "destroyed", "destroy", "--yes").rc == 0
    assert hera("--callsign", "uninstalled", "uninstall").rc == 0
    assert (hera.workdir / f"{heads['uninstalled']['uuid']}.json").exists()
    assert all(alive(pid) for pid in fakes.values())  # root signalled none of mallory's processes


def test_up_and_down_are_not_blocked_by_another_users_process_titled_as_the_agent(hera, mallory, titled):
    tick_world(hera)
    try:
        brain = build(hera)
        fake = titled(mallory, f"hera: {brain.callsign} {brain.uuid[:8]} tick/example")
        up = up_daemon(hera, "t.json")
        assert up.pid != fake
        assert listed(hera)[brain.uuid]["pid"] == up.pid
        assert hera("--uuid", brain.uuid[:8], "down").rc == 0
        wait_gone(up.pid)
        assert listed(hera)[brain.uuid]["state"] == "down"
        assert alive(fake)
    finally:
        reap_agents(hera)


def test_a_users_signal_ignores_another_users_titled_process_without_a_traceback(scratch, mallory, titled):
    python = other_user_python("nobody", scratch)
    with OtherUser(scratch / "nobody-signal", "nobody", python=python) as nobody:
        with_private_system_dir(nobody)
        make_instance(nobody.workdir, "mine.json", callsign="mine")
        (nobody.workdir / "mine.json").chmod(0o644)
        assert nobody("install", "mine.json").rc == 0, "nobody could not install"
        uuid = read_head(nobody.workdir / "mine.json")["uuid"]
        fake = titled(mallory, f"hera: mine {uuid[:8]} abraxas/example")

        one_error_line(nobody("--callsign", "mine", "signal", "SIGTERM"), "is not up", rc=4)
        assert listed(nobody)[uuid]["state"] == "built"
        assert nobody("--callsign", "mine", "destroy", "--yes").rc == 0
        assert alive(fake)


def test_root_lists_another_users_agent_by_that_users_process_not_by_an_impostors(hera, alice, mallory, titled):
    with_private_system_dir(hera)
    make_instance(hera.workdir, "hers.json", callsign="hers")
    hera("install", "--user", alice.pw_name, "hers.json", check=True)
    uuid = read_head(hera.workdir / "hers.json")["uuid"]
    title = f"hera: hers {uuid[:8]} abraxas/example"
    hers = titled(alice, title)  # stands in for her running agent
    impostor = titled(mallory, title)  # started later: a higher pid, met later by a scan

    row = listed(hera, "--user", alice.pw_name)[uuid]

    assert (row["owner"], row["state"], row["pid"]) == (alice.pw_name, "up", hers)
    assert alive(impostor) and alive(hers)
