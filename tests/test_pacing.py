"""A pace bounds how fast an agent iterates, so an idle daemon stops spinning a core; its iterations stay exact.

Two agents hold the same brain (the tick family, one seed): one paced, one
not. Run to the same breakpoint, their complete state is the same bit for
bit: pacing changes only wall-clock time. Running on, the paced one uses a
fraction of the CPU the unpaced one does (a ratio, measured over the same
two seconds, not a time). The pace is set at build, at up and live, and is
saved with the agent.
"""

from __future__ import annotations

import time

import psutil
import pytest
import test_agent_status

from agent_helpers import (
    build,
    cached_header,
    request,
    same_arrays,
    snapshot,
    up_daemon,
    up_daemons,
    wait_for,
)
from hera.instance import read_header
from herakit import one_error_line

#: A tick world of this module's own (module-scoped), and the status file as the agent published it.
world, published = test_agent_status.world, test_agent_status.published


@pytest.fixture(scope="module")
def twins(world):
    """(paced, free): the same brain twice, up and paused at iteration 0; the first paced at 200/s."""
    paced, free = build(world, "paced.json"), build(world, "free.json")
    up_daemons(world, ("paced.json", "--paused", "--pace", "200/s"), ("free.json", "--paused"))
    return paced, free


def run_to(world, uuid: str, iteration: int) -> None:
    request(world, uuid, "breakpoint_add", kind="iteration", value=iteration)
    request(world, uuid, "run")


def test_pacing_changes_only_wall_clock_time(world, twins):
    paced, free = twins
    assert request(world, paced.uuid, "status")["pace"] == "200/s"
    for agent in twins:
        run_to(world, agent.uuid, 120)
    for agent in twins:
        wait_for(lambda a=agent: request(world, a.uuid, "status")["stopped_on"] == "iteration:120", what="the breakpoint")
    (at_paced, paced_arrays), (at_free, free_arrays) = snapshot(world, paced.uuid), snapshot(world, free.uuid)
    assert at_paced == at_free == 120
    same_arrays(paced_arrays, free_arrays)


def test_a_paced_agent_leaves_its_core_idle(world, twins):
    paced, free = twins
    assert world("--uuid", paced.uuid[:8], "pace", "10/s").out.split() == ["pace", paced.callsign, paced.uuid, "10/s"]
    processes = []
    for agent in twins:
        request(world, agent.uuid, "breakpoint_remove", id="all")
        status = request(world, agent.uuid, "run")
        processes.append(psutil.Process(status["pid"]))
    for process in processes:
        process.cpu_percent(None)  # starts the measurement
    time.sleep(2.0)
    used_paced, used_free = (process.cpu_percent(None) for process in processes)
    assert used_paced < 0.25 * used_free, (used_paced, used_free)
    status = request(world, paced.uuid, "status")  # answered at once while it sleeps between iterations
    assert status["state"] == "running" and status["pace"] == "10/s"
    assert published(world, paced.uuid).pace == "10/s"


def test_the_pace_command_shows_sets_and_refuses(world, twins):
    paced, _ = twins
    short = paced.uuid[:8]
    assert world("pace", short, "25").out.split()[-1] == "25/s"
    assert world("--uuid", short, "pace").out.split()[-1] == "25/s"
    assert world("--uuid", short, "pace", "max").out.split()[-1] == "max"
    one_error_line(world("--uuid", short, "pace", "fast"), "fast", "is not one", rc=2)
    one_error_line(world("--uuid", short, "pace", "0/s"), "above 0", rc=2)
    # tick has no time step, so no real-time factor; said in one line naming the family
    one_error_line(world("--uuid", short, "pace", "1x"), "family tick", "100/s", rc=2)
    one_error_line(world("up", "free.json", "--pace", "soon"), "pace", rc=2)
    assert request(world, paced.uuid, "status")["pace"] == "max"


def test_the_pace_is_kept_from_build_through_up_live_and_down(world):
    world("--family", "tick", "--seed", "7", "build", "-o", "kept.json", "--pace", "20/s", check=True)
    brain = read_header(world.workdir / "kept.json")
    assert brain.pace == "20/s"
    up_daemon(world, "kept.json")
    assert request(world, brain.uuid, "status")["pace"] == "20/s"
    world("--uuid", brain.uuid[:8], "pace", "30/s", check=True)
    world("--uuid", brain.uuid[:8], "down", check=True)
    assert cached_header(world, brain.uuid).pace == "30/s"
    # a real-time factor on a family without a time step is refused before the agent is up
    one_error_line(world("--uuid", brain.uuid[:8], "up", "--daemon", "--pace", "1x"), "family tick", "100/s")


def test_the_shell_shows_and_sets_the_pace(world, twins):
    paced, _ = twins
    script = f'attach {paced.uuid[:8]}\nprint("set", agent.pace("40/s"))\nprint("now", agent.pace())\ndetach\n'
    result = world(input=script)
    assert result.rc == 0 and "Traceback" not in result.err, str(result)
    assert "set 40/s" in result.out and "now 40/s" in result.out, str(result)
    assert request(world, paced.uuid, "status")["pace"] == "40/s"


def test_a_real_time_pace_is_checked_at_build_against_the_family(world):
    """``build --pace 1x`` is refused for a family without a time step before any file is written; one with one keeps it."""
    one_error_line(world("--family", "tick", "build", "-o", "rt.json", "--pace", "1x"), "family tick", "100/s", rc=2)
    assert not (world.workdir / "rt.json").exists()
    world("--family", "vogels-abbott", "build", "-o", "va.json", "--pace", "0.5x", check=True)
    assert read_header(world.workdir / "va.json").pace == "0.5x"
