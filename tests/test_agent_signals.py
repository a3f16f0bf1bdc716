"""``hera --uuid X signal NAME`` against real agent processes, for every name in the spec's table.

The table (spec, "signal"): SIGCONT continue and detach; SIGSTOP stop the
inner loop and attach; SIGTSTP stop the inner loop; SIGHUP detach; SIGINT
standby; SIGQUIT terminate, update the cache, core dump; SIGABRT terminate
without updating the cache, core dump; SIGKILL terminate without updating the
cache; SIGTERM terminate and update the cache; SIGTTIN pipe standard input
into the input area; SIGTTOU pipe the output area to standard output.

An agent's exit status is only known to its parent, so the core-dumping
signals are sent to an agent in normal mode, whose controller (``hera up`` in
the foreground) is that parent and reports the status. Core files are kept
off with RLIMIT_CORE = 0, inherited from the controller.
"""

from __future__ import annotations

import time

import psutil
import pytest

from agent_helpers import (
    build,
    cache_path,
    cached_arrays,
    cached_header,
    client,
    log_file,
    no_core_dumps,
    pid_file,
    reap_agents,
    request,
    socket_path,
    tick_world,
    up_daemon,
    wait_for,
    wait_gone,
    wait_up,
)
from herakit import one_error_line


@pytest.fixture
def world(hera):
    tick_world(hera)
    yield hera
    reap_agents(hera)


def state(world, uuid: str) -> str:
    return request(world, uuid, "status")["state"]


def test_the_signals_that_steer_the_loop_and_pipe_input_and_output(world):
    brain = build(world)
    up = up_daemon(world, "t.json")
    short = brain.uuid[:8]

    def signal(name: str, **options):
        return world("--uuid", short, "signal", name, **options)

    # SIGSTOP cannot be caught: hera carries it over the control plane, so the loop stops
    # while the process (and its control socket) stays alive.
    stopped = signal("SIGSTOP")
    assert stopped.rc == 0 and stopped.out.startswith(f"{brain.callsign} paused at iteration ")
    assert psutil.Process(up.pid).status() != psutil.STATUS_STOPPED
    assert state(world, brain.uuid) == "paused"

    with client(world, brain.uuid) as controller:
        controller.request("attach")
        assert request(world, brain.uuid, "status")["attached"] is True
        # SIGCONT: continue, and detach whoever held the prompt
        assert signal("SIGCONT").out.startswith(f"sent SIGCONT to {brain.callsign} (pid {up.pid})")
        wait_for(lambda: state(world, brain.uuid) == "running", what="running again")
        assert request(world, brain.uuid, "status")["attached"] is False

    signal("tstp", check=True)  # the SIG prefix is optional, and case does not matter
    wait_for(lambda: state(world, brain.uuid) == "paused", what="SIGTSTP to pause")
    signal("SIGINT", check=True)
    wait_for(lambda: state(world, brain.uuid) == "standby", what="SIGINT to put it in standby")

    with client(world, brain.uuid) as controller:
        controller.request("attach")
        signal("SIGHUP", check=True)  # detach, and nothing else
        wait_for(lambda: not request(world, brain.uuid, "status")["attached"], what="SIGHUP to detach")
        assert state(world, brain.uuid) == "standby"
    signal("SIGCONT", check=True)
    wait_for(lambda: state(world, brain.uuid) == "running", what="running again")

    # SIGTTIN: hera's standard input, as bytes, into the input area (tick echoes it back).
    fed = signal("SIGTTIN", input="hello\nworld\n")
    assert fed.rc == 0 and fed.err == f"fed 12 byte(s) to {brain.callsign}\n"
    # SIGTTOU: what the output area produced, to hera's standard output.
    at = request(world, brain.uuid, "status")["iteration"]
    wait_for(lambda: request(world, brain.uuid, "status")["iteration"] > at + 12, what="the echo")
    out = signal("SIGTTOU", check=True)
    assert out.out == "hello\nworld\n"
    assert signal("SIGTTOU", check=True).out == ""  # read once
    assert state(world, brain.uuid) == "running"

    one_error_line(signal("SIGFOO"), "unknown signal 'SIGFOO'")

    # SIGTERM: normal terminate, and the cache updated.
    last_seen = request(world, brain.uuid, "status")["iteration"]
    assert signal("SIGTERM", check=True).out.startswith(f"sent SIGTERM to {brain.callsign}")
    wait_gone(up.pid)
    assert not pid_file(world, brain.uuid).exists() and not socket_path(world, brain.uuid).exists()
    assert cached_header(world, brain.uuid).iteration > last_seen
    assert "down: SIGTERM at iteration" in log_file(world, brain.uuid).read_text()
    one_error_line(signal("SIGTERM"), "is not up")


def _foreground(world, brain):
    """``hera up FILE`` in normal mode with autosave off; the controller and the agent's pid once it runs."""
    controller = world.popen("up", "t.json", env={"HERA_AUTOSAVE_INTERVAL": "0"}, preexec_fn=no_core_dumps)
    pid = wait_up(world, brain.uuid)["pid"]
    wait_for(lambda: request(world, brain.uuid, "status")["iteration"] > 1000, what="iterations")
    return controller, pid


def test_sigquit_saves_the_state_then_dumps_core(world):
    brain = build(world)
    controller, pid = _foreground(world, brain)
    assert cached_header(world, brain.uuid).iteration == 0  # saved once, at the first up
    last_seen = request(world, brain.uuid, "status")["iteration"]
    world("--uuid", brain.uuid[:8], "signal", "SIGQUIT", check=True)
    out, err = controller.communicate(timeout=30)
    assert controller.returncode == 1
    assert f"agent {brain.callsign} exited with status -3" in err  # killed by SIGQUIT: the core dump
    wait_gone(pid)
    header, arrays = cached_arrays(world, brain.uuid)
    assert header.iteration > last_seen  # saved on the way out
    assert arrays["counts"].sum() > 0
    assert not pid_file(world, brain.uuid).exists()
    assert "down: SIGQUIT at iteration" in log_file(world, brain.uuid).read_text()


def test_sigabrt_dumps_core_without_saving(world):
    brain = build(world)
    controller, pid = _foreground(world, brain)
    world("--uuid", brain.uuid[:8], "signal", "SIGABRT", check=True)
    out, err = controller.communicate(timeout=30)
    assert controller.returncode == 1
    assert f"agent {brain.callsign} exited with status -6" in err
    wait_gone(pid)
    assert cached_header(world, brain.uuid).iteration == 0  # the cache is as the last save left it
    # Its pid-file is left behind, and found stale.
    assert pid_file(world, brain.uuid).exists()
    listed = world("agents")
    assert "removed a stale pid-file" in listed.err and "down" in listed.out
    assert not pid_file(world, brain.uuid).exists()


def test_sigkill_loses_at_most_one_autosave_interval_and_the_agent_comes_back(world):
    interval = 0.5
    brain = build(world)
    up = up_daemon(world, "t.json", env={"HERA_AUTOSAVE_INTERVAL": str(interval)})
    wait_for(lambda: cached_header(world, brain.uuid).iteration > 0, what="a first autosave")
    time.sleep(1.2)
    sent = world("--uuid", brain.uuid[:8], "signal", "SIGKILL", check=True)
    killed_at = time.time()
    assert sent.out.startswith(f"sent SIGKILL to {brain.callsign} (pid {up.pid})")
    wait_gone(up.pid)

    # The cache always loads, and holds a save from within one interval of the kill
    # (plus the time a save takes and the time the kill took to arrive).
    header, arrays = cached_arrays(world, brain.uuid)
    assert header.dynamic and header.iteration > 0
    saved_at = cache_path(world, brain.uuid).stat().st_mtime
    assert killed_at - saved_at < interval + 1.0, killed_at - saved_at
    # The stale pid-file: reported, removed, and the agent is down, not up.
    assert pid_file(world, brain.uuid).exists()
    listed = world("agents")
    assert "removed a stale pid-file" in listed.err and f"process {up.pid} is gone" in listed.err
    assert "down" in listed.out
    assert not pid_file(world, brain.uuid).exists()

    # The next up resumes from that save.
    again = up_daemon(world, "--uuid", brain.uuid[:8], "--paused")
    assert request(world, brain.uuid, "status")["iteration"] == header.iteration
    world("down", check=True)
    wait_gone(again.pid)
