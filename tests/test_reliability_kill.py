"""SIGKILL at random moments: the agent always loads, loses at most one autosave interval, and nothing is left behind.

A fixed ``random.Random`` seed makes every run kill at the same moments
(to the scheduler's noise), so a failure reproduces. Two kinds of victim:

* the agent process itself while it runs, autosaves (every 0.3 s here),
  checkpoints and goes down;
* the one-shot ``hera`` command while it installs, uninstalls and grows
  (abraxas, whose grow exists).

After every kill: the cached file loads with every checksum verified, the
iteration never goes back beyond one autosave interval, no temporary is left
once the next command has run, and no lock blocks that next command.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from agent_helpers import build, cache_path, reap_agents, request, tick_world, up_daemon, wait_gone
from herakit import World, leftovers
from reliability_kit import note

SEED = 20261123
AUTOSAVE = 0.3
AGENT_TRIALS = 8
COMMAND_TRIALS = 9


@pytest.fixture
def world(hera: World) -> World:
    tick_world(hera)
    hera.env["HERA_AUTOSAVE_INTERVAL"] = str(AUTOSAVE)
    yield hera
    reap_agents(hera)


def test_sigkill_of_the_agent_during_run_autosave_checkpoint_and_down_never_loses_it(world: World) -> None:
    from hera.instance import load

    rng = random.Random(SEED)
    built = build(world)
    uuid = up_daemon(world, str(built.path)).uuid
    path = cache_path(world, uuid)
    floor = 0  # the iteration the cache must hold at least
    for trial in range(AGENT_TRIALS):
        operation = ("run", "autosave", "checkpoint", "down")[trial % 4]
        if trial:
            up = up_daemon(world, "--uuid", uuid)
        else:
            up = None
        pid = up.pid if up else int((world.runtime_dir / "hera" / f"{uuid}.pid").read_text().split()[0])
        # Samples of (time, iteration): what the agent had reached, and when.
        samples = [(time.monotonic(), request(world, uuid, "status")["iteration"])]
        time.sleep(rng.uniform(0.05, 2 * AUTOSAVE if operation != "autosave" else 0.6))
        samples.append((time.monotonic(), request(world, uuid, "status")["iteration"]))
        command = None
        if operation in ("checkpoint", "down"):
            command = world.popen(operation)
            time.sleep(rng.uniform(0.0, 0.4))
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_gone(pid)
        if command is not None:
            command.communicate(timeout=30)  # it fails or succeeds, but it ends
        instance = load(path)  # every field, every checksum: the agent always loads
        iteration = instance.header.iteration
        assert iteration >= floor, f"trial {trial} ({operation}): iteration went back from {floor} to {iteration}"
        # Anything reached more than an autosave interval (plus a write's time) before the kill is saved.
        reached_long_before = max((it for at, it in samples if at <= killed_at - AUTOSAVE - 1.0), default=0)
        assert iteration >= reached_long_before, f"trial {trial} ({operation}): lost more than one autosave interval"
        floor = iteration
    up = up_daemon(world, "--uuid", uuid)  # the next up starts, sweeping what a killed save left
    assert request(world, uuid, "status")["iteration"] >= floor
    world("down", check=True)
    wait_gone(up.pid)
    assert not leftovers(path.parent, world.runtime_dir)
    note("SIGKILL of the agent", trials=AGENT_TRIALS, faults=AGENT_TRIALS)


def test_sigkill_of_install_uninstall_and_grow_leaves_a_loadable_agent_and_no_stale_lock(world: World) -> None:
    from hera.instance import load

    rng = random.Random(SEED + 1)
    world("--family", "abraxas", "--layout", "example", "build", "-o", "a.json", check=True)
    from hera.instance import read_header

    uuid = read_header(world.workdir / "a.json").uuid
    path = cache_path(world, uuid)
    axon = 20
    kills = 0
    for trial in range(COMMAND_TRIALS):
        # install when it is not installed; otherwise grow or uninstall, in turn
        installed = path.exists()
        operation = "install" if not installed else ("grow", "uninstall")[trial % 2]
        args = {
            "install": ("install", "a.json"),
            "uninstall": ("--uuid", uuid, "uninstall"),
            "grow": ("--uuid", uuid, "grow", "--set", f"axon_length={axon + 1}"),
        }[operation]
        process = world.popen(*args)
        time.sleep(rng.uniform(0.1, 0.9))  # the command's import and work take about 0.7 s
        if process.poll() is None:
            process.kill()
            kills += 1
        process.communicate(timeout=30)
        if operation == "grow" and process.returncode == 0:
            axon += 1
        # The next command is never blocked by a lock the killed one held, and sweeps its temporaries.
        listing = world("agents", "--json", check=True, timeout=30)
        assert "Traceback" not in listing.err
        if path.exists():
            load(path)  # the old file or the new one, whole
            world("--uuid", uuid, "inspect", check=True, timeout=30)
        elif operation == "uninstall":
            # uninstall moves the file back to the working directory; that copy must load
            copies = sorted(world.workdir.glob(f"{uuid}*.json"))
            assert copies, f"trial {trial}: uninstall killed and the agent is nowhere"
            load(copies[-1])
            (world.workdir / "a.json").unlink(missing_ok=True)
            copies[-1].rename(world.workdir / "a.json")
        with_lock = world("install", "--help", check=True)  # any command at all still runs
        assert with_lock.rc == 0
        assert not leftovers(path.parent), f"trial {trial} ({operation}) left {leftovers(path.parent)}"
    note("SIGKILL of hera commands", trials=COMMAND_TRIALS, faults=kills)
