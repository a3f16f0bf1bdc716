"""The terminal model of docs/shell.md, line by line, as a user meets it: real ptys, real keys, real signals.

1. At most one controller holds an agent's terminal; MODE says so.
2. The holder lets go on Ctrl-C twice, on SIGHUP or SIGCONT sent to the
   agent from anywhere, on its own terminal closing, on ``detach``.
3. What another process does to the agent, the holder says in one line.
4. Ctrl-C while the agent loads: it comes up in standby, nothing lost.
5. Ctrl-Z pauses and opens the prompt; leaving it resumes
   (``test_shell.py::test_up_interactive_exit_resumes_ctrl_z_prompts_ctrl_c_standby_twice_detaches``).

One tick agent serves the module: each test ups it (in the foreground of a
terminal of its own) and downs it again.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import pytest

from agent_helpers import (
    Built,
    build,
    cached_header,
    module_tick_world,
    pid_file,
    reap_agents,
    request,
    wait_for,
)
from herakit import World, one_error_line
from terminalkit import TIMEOUT, Terminal, agents_json, open_terminal, opened_terminals, pexpect


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from module_tick_world(tmp_path_factory, "terminal")


@pytest.fixture(scope="module")
def brain(world: World) -> Built:
    return build(world, "t.json")


@pytest.fixture(autouse=True)
def nothing_left_up(world: World) -> Iterator[None]:
    """A test that failed half way leaves its agent up: killed, so the next test can up it."""
    yield
    reap_agents(world)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    yield from opened_terminals()


def row(world: World, brain: Built) -> tuple[str, str]:
    """(MODE, STATE) of the agent in ``hera agents``."""
    listed = agents_json(world)[brain.callsign]
    return listed["mode"], listed["state"]


def held(world: World, brain: Built) -> None:
    """Until MODE is ``attached`` (the controller attaches just after its banner)."""
    wait_for(lambda: row(world, brain)[0] == "attached", TIMEOUT, "MODE attached")


def foreground(world: World, terminals: list[Terminal], brain: Built) -> Terminal:
    """``hera up t.json`` in a terminal of its own, once the agent runs and the controller holds it."""
    fg = open_terminal(world, terminals, "up", brain.path.name)
    fg.wait(rf"up {brain.callsign} .* running from iteration \d+")
    held(world, brain)
    return fg


def ended(fg: Terminal) -> int:
    """The foreground controller's exit status, once it has ended by itself."""
    fg.child.expect(pexpect.EOF)
    fg.child.close()
    return fg.child.exitstatus


def send(world: World, brain: Built, name: str) -> None:
    """``hera --uuid X signal NAME`` from another terminal."""
    world("--uuid", brain.uuid[:8], "signal", name, check=True)


def down(world: World, brain: Built) -> None:
    world("--uuid", brain.uuid[:8], "down", check=True)


def test_one_holder_at_a_time_and_mode_says_which(world, brain, terminals):
    """Lines 1 and 2: the foreground holds (MODE attached) until Ctrl-C Ctrl-C; a shell holds until SIGCONT."""
    fg = foreground(world, terminals, brain)
    assert row(world, brain) == ("attached", "running")
    fg.child.sendcontrol("c")
    fg.wait(rf"{brain.callsign} standby at iteration \d+ \(Ctrl-C again: detach")
    fg.child.sendcontrol("c")
    fg.wait(rf"detached; {brain.callsign} stays up in standby")
    assert ended(fg) == 0
    assert row(world, brain) == ("detached", "standby")

    shell = open_terminal(world, terminals)
    shell.wait_prompt()
    shell.run(f"attach {brain.callsign}")
    assert row(world, brain) == ("attached", "standby")
    shell.run("detach")
    assert row(world, brain) == ("detached", "standby")
    shell.run(f"attach --callsign {brain.callsign}")
    assert shell.state[:2] == (brain.callsign, "standby")
    send(world, brain, "SIGCONT")  # runs it, and lets the terminal go: the shell says so before its next prompt
    said = shell.run("")
    assert said.startswith(f"detached from {brain.callsign} by SIGCONT; it stays up, running at iteration "), said
    assert shell.state == (None, None, None)
    assert row(world, brain) == ("detached", "running")
    assert shell.exit() == 0
    down(world, brain)


def test_sighup_from_anywhere_and_a_closed_terminal_let_go(world, brain, terminals):
    """Line 2: SIGHUP sent to the agent, and the controller's own terminal closing; the agent runs on."""
    fg = foreground(world, terminals, brain)
    send(world, brain, "SIGHUP")
    fg.wait(rf"detached from {brain.callsign} by SIGHUP; it stays up, running at iteration \d+")
    assert ended(fg) == 0
    assert row(world, brain) == ("detached", "running")
    down(world, brain)

    fg = foreground(world, terminals, brain)
    assert fg.hang_up() == 0  # the controller let go and left; SIGHUP did not kill it
    assert row(world, brain) == ("detached", "running")
    down(world, brain)


def test_what_others_do_is_one_line_each_and_the_last_line_is_the_cached_iteration(world, brain, terminals):
    """Line 3, and defect 6: paused, running, standby, down, each with its iteration and its cause."""
    fg = foreground(world, terminals, brain)
    send(world, brain, "SIGTSTP")
    fg.wait(rf"{brain.callsign} paused at iteration \d+ by SIGTSTP\r?\n")
    request(world, brain.uuid, "run")  # a request on a connection of this test's process
    fg.wait(rf"{brain.callsign} running at iteration \d+ by pid {os.getpid()}\r?\n")
    send(world, brain, "SIGINT")
    fg.wait(rf"{brain.callsign} standby at iteration \d+ by SIGINT\r?\n")
    request(world, brain.uuid, "run")
    fg.wait(rf"{brain.callsign} running at iteration \d+ by pid {os.getpid()}\r?\n")

    down(world, brain)  # while it runs: the last iteration the controller polled is long past
    last = fg.wait(rf"down {brain.callsign} at iteration (\d+)(?: by ([^;]+))?; state saved in ")
    assert int(last[1]) == cached_header(world, brain.uuid).iteration
    assert last[2] == "a 'down' request"
    assert ended(fg) == 0


def test_ctrl_c_while_loading_comes_up_in_standby_never_running_unheld(world, brain, terminals):
    """Line 4 (defect 1): in the foreground it stays held (Ctrl-C again detaches); --daemon exits 130."""
    fg = open_terminal(world, terminals, "up", brain.path.name)
    wait_for(lambda: pid_file(world, brain.uuid).exists(), TIMEOUT, "the controller to start the agent")
    fg.child.sendcontrol("c")  # the agent is still starting: Python, Taichi, its brain
    fg.wait(rf"up {brain.callsign} .* standby from iteration \d+")
    held(world, brain)
    assert request(world, brain.uuid, "status")["state"] == "standby"
    fg.child.sendcontrol("c")
    fg.wait(rf"detached; {brain.callsign} stays up in standby")
    assert ended(fg) == 0
    assert row(world, brain) == ("detached", "standby")
    down(world, brain)

    daemon = world.popen("up", brain.uuid[:4], "-d", "--json")  # the agent by UUID prefix, docker's -d
    wait_for(lambda: pid_file(world, brain.uuid).exists(), TIMEOUT, "the controller to start the agent")
    os.kill(daemon.pid, signal.SIGINT)
    out, err = daemon.communicate(timeout=TIMEOUT)
    assert daemon.returncode == 130, (out, err)
    facts = json.loads(out)
    assert (facts["uuid"], facts["state"]) == (brain.uuid, "standby")
    assert err == (
        f"hera: interrupted; {brain.callsign} is up in standby at iteration {facts['iteration']}, nothing lost "
        f"('hera --uuid {brain.uuid[:8]} signal SIGCONT' runs it, 'hera down {brain.uuid[:8]}' stops it)\n"
    )
    status = request(world, brain.uuid, "status")
    assert (status["state"], status["iteration"]) == ("standby", facts["iteration"])
    assert row(world, brain) == ("daemon", "standby")
    down(world, brain)


def test_up_names_an_installed_agent_by_callsign_and_is_quiet_with_q(world, brain):
    """Defects 11 and 12: ``up --help`` tells the keys; the agent as a positional, ``-d``, ``-q``; --json needs -d."""
    keys = " ".join(world("up", "--help", check=True).out.split())  # defect 11: the keys as they are
    assert "Ctrl-Z pauses the inner loop and opens the debug prompt" in keys and "a second Ctrl-C detaches" in keys
    one_error_line(world("up", brain.callsign, "--json"), "--json and -q go with --daemon", rc=2)
    quiet = world("up", brain.callsign, "-d", "-q")
    assert (quiet.rc, quiet.out, quiet.err) == (0, "", "")
    assert row(world, brain) == ("daemon", "running")
    down(world, brain)
