"""What an up agent says of itself: MODE is the truth, the holder hears what others did, the status file.

MODE (``hera agents``) is computed live by the agent: ``attached`` while a
controller's connection holds it, else ``daemon`` (upped with ``--daemon``)
or ``detached``. It must follow the holder's ``detach``, its connection
closing (Ctrl-C Ctrl-C, its terminal killed) and SIGHUP/SIGCONT, which
release the holder. The holder's connection gets, with its next ``status``,
the events that others caused: a signal, a request on another connection,
a forced attach. And each agent publishes its live status in a file of the
runtime directory, so a listing reads it without a round trip.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from agent_helpers import (
    build,
    client,
    module_tick_world,
    request,
    runtime_dir,
    up_daemon,
    wait_for,
    wait_gone,
    wait_up,
)
from hera.cache.paths import RuntimeFiles
from hera.manager.files import LiveStatus


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from module_tick_world(tmp_path_factory, "status")


@pytest.fixture(scope="module")
def daemon(world):
    """One agent up with --daemon for the module's tests; each test leaves it running and unheld."""
    build(world, "d.json")
    return up_daemon(world, "d.json")


def listed(world, uuid: str) -> dict:
    """The agent's row in ``hera agents --json``."""
    rows = json.loads(world("agents", "--json", check=True).out)
    return next(row for row in rows if row["uuid"] == uuid)


def published(world, uuid: str) -> LiveStatus | None:
    return LiveStatus.read(RuntimeFiles(runtime_dir(world), uuid).status)


def test_mode_follows_the_holder_attach_detach_and_a_closed_connection(world, daemon):
    assert listed(world, daemon.uuid)["mode"] == "daemon"
    with client(world, daemon.uuid) as holder:
        held = holder.request("attach")
        assert (held["mode"], held["holder_pid"], held["you_hold"]) == ("attached", os.getpid(), True)
        assert listed(world, daemon.uuid)["mode"] == "attached"
        assert published(world, daemon.uuid).holder_pid == os.getpid()
        # another connection sees who holds it, and that it is not itself
        other = request(world, daemon.uuid, "status")
        assert (other["mode"], other["holder_pid"], other["you_hold"]) == ("attached", os.getpid(), False)
        holder.request("detach")
        assert listed(world, daemon.uuid)["mode"] == "daemon"
        holder.request("attach")
    # the holder's connection closed (its controller killed, Ctrl-C Ctrl-C): nobody holds it
    wait_for(lambda: listed(world, daemon.uuid)["mode"] == "daemon", what="MODE daemon once the holder's connection closed")
    assert published(world, daemon.uuid).holder_pid is None


def test_a_foreground_agent_whose_controller_was_killed_is_detached(world):
    brain = build(world, "fg.json")
    controller = world.popen("up", "fg.json", "--silent")
    try:
        wait_up(world, brain.uuid)
        wait_for(lambda: listed(world, brain.uuid)["mode"] == "attached", what="MODE attached: the controller holds it")
        controller.send_signal(signal.SIGKILL)  # its terminal killed, say
        controller.wait(timeout=20)
        wait_for(lambda: listed(world, brain.uuid)["mode"] == "detached", what="MODE detached after the controller died")
        assert listed(world, brain.uuid)["state"] == "running"
    finally:
        world("--uuid", brain.uuid[:8], "down")


def test_signals_and_other_controllers_release_the_holder_and_tell_it(world, daemon):
    short = daemon.uuid[:8]
    me = f"pid {os.getpid()}"

    def events(agent) -> list[tuple[str, str]]:
        reply = agent.request("status")
        return [(e["event"], e["by"]) for e in reply["events"]], reply["you_hold"]

    with client(world, daemon.uuid) as holder:
        holder.request("attach")
        assert events(holder) == ([], True)
        world("--uuid", short, "signal", "SIGTSTP", check=True)
        wait_for(lambda: request(world, daemon.uuid, "status")["state"] == "paused", what="SIGTSTP to pause")
        got = holder.request("status")
        assert (got["events"][0]["event"], got["events"][0]["by"], got["you_hold"]) == ("paused", "SIGTSTP", True)
        assert got["events"][0]["iteration"] == got["iteration"]
        assert events(holder) == ([], True)  # drained on read
        holder.request("run")  # its own request: no event
        assert events(holder) == ([], True)
        request(world, daemon.uuid, "standby")  # a request on another connection
        assert events(holder) == ([("standby", me)], True)
        # SIGCONT: the loop runs again, and the holder is released (the spec: it detaches the terminal)
        world("--uuid", short, "signal", "SIGCONT", check=True)
        wait_for(lambda: listed(world, daemon.uuid)["mode"] == "daemon", what="SIGCONT to detach")
        assert events(holder) == ([("running", "SIGCONT"), ("detached", "SIGCONT")], False)
        assert events(holder) == ([], False)

        holder.request("attach")
        world("--uuid", short, "signal", "SIGHUP", check=True)
        wait_for(lambda: listed(world, daemon.uuid)["mode"] == "daemon", what="SIGHUP to detach")
        assert events(holder) == ([("detached", "SIGHUP")], False)
        request(world, daemon.uuid, "pause")  # no longer the holder: it hears nothing more
        request(world, daemon.uuid, "run")
        assert events(holder) == ([], False)

        holder.request("attach")
        with client(world, daemon.uuid) as taker:
            assert taker.request("attach", force=True)["you_hold"] is True
            assert events(holder) == ([("detached", f"{me} took the prompt")], False)
            assert listed(world, daemon.uuid)["mode"] == "attached"
    wait_for(lambda: listed(world, daemon.uuid)["mode"] == "daemon", what="the taker's connection to close")


def test_the_status_file_says_what_the_agent_is_until_it_goes(world):
    brain = build(world, "s.json")
    up = up_daemon(world, "s.json")
    status_file = RuntimeFiles(runtime_dir(world), brain.uuid).status
    assert status_file.stat().st_mode & 0o777 == 0o600
    first = published(world, brain.uuid)
    assert (first.uuid, first.pid, first.mode, first.tcp_port, first.device, first.pace) == (
        brain.uuid, up.pid, "daemon", up.port, up.device, "max"
    )
    assert first.holder_pid is None and first.state == "running"
    # while it runs, the iteration it publishes moves on (about once a second)
    wait_for(lambda: published(world, brain.uuid).iteration > first.iteration, what="a newer iteration in the status file")
    paused = request(world, brain.uuid, "pause")
    now = published(world, brain.uuid)  # a change of state is written before the reply
    assert (now.state, now.iteration, now.rate) == ("paused", paused["iteration"], 0.0)
    world("--uuid", brain.uuid[:8], "down", check=True)
    wait_gone(up.pid)
    assert not status_file.exists()
