"""Progress of long work: drawn on a terminal while it lasts, never in scripts or when asked to be quiet.

A 16 GB brain takes minutes to come up and go down; a command silent for
that long looks hung. The agent reports its phases (read, init, load, save)
with bytes done in its status file; ``hera up`` draws them while it waits for
the agent, ``down`` and ``checkpoint`` while it saves, ``hera agents`` words
them (``loading 43 %``). These tests run hera in a real pseudo-terminal
(pexpect) with the tick family's ``gib`` layout (about 0.9 GiB of state, a
few seconds to load and save on this machine, a small file once compressed),
and look at what a user would see: the bars on the terminal, and nothing but
the report line when output is meant for a script.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_helpers import build, module_tick_world, wait_for, wait_gone
from cachekit import FakeAgent, runtime_of, write_pid_file
from hera.cache.paths import RuntimeFiles
from hera.manager.files import LiveStatus
from herakit import one_error_line
from terminalkit import Terminal, agents_json, open_terminal, opened_terminals, pexpect, plain

#: A bar as rich draws it: the agent's callsign, the phase, then the bar itself.
BAR = "{callsign} (start|read|init|load|save)"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from module_tick_world(tmp_path_factory, "progress")


@pytest.fixture(scope="module")
def gib(world):
    """One brain of about 0.9 GiB of state, built once (its file holds fill arrays: small)."""
    return build(world, "gib.json", layout="gib")


@pytest.fixture
def terminals():
    yield from opened_terminals()


def finished(terminal: Terminal) -> str:
    """Everything the command printed until it exited, as raw text (escapes kept); asserts exit 0."""
    terminal.child.expect(pexpect.EOF)
    terminal.child.close()
    assert terminal.child.exitstatus == 0, terminal.child.before
    return str(terminal.child.before)


def test_up_and_down_on_a_terminal_draw_each_phase_while_it_lasts(world, gib, terminals):
    bar = BAR.format(callsign=gib.callsign)
    fg = open_terminal(world, terminals, "up", "gib.json", "--paused", term="xterm")
    started = time.monotonic()
    fg.wait(bar)  # drawn while the agent loads: before it is up, before any line of the command's own
    first = time.monotonic() - started
    seen = {fg.child.match.group(1)}
    fg.wait(r"Ctrl-Z: pause and prompt")
    screen = plain(fg.child.before)
    seen |= {phase for phase in ("read", "init", "load", "save") if f"{gib.callsign} {phase}" in screen}
    assert {"load", "save"} <= seen, screen  # the brain onto the device, then a fresh brain's first save
    assert "MiB" in screen and "%" in screen  # bytes done of the total, and how far
    assert f"installed {gib.callsign}" in screen and f"up {gib.callsign} {gib.uuid}" in screen
    print(f"first bar {first:.2f} s after the command started")  # the figure in the report; not asserted (no timed tests)

    down = open_terminal(world, terminals, "down", gib.uuid, term="xterm")  # from another terminal
    down.wait(bar)
    assert down.child.match.group(1) == "save"
    down.wait(rf"down {gib.callsign} {gib.uuid} at iteration \d+")
    finished(down)
    finished(fg)  # the foreground saw its agent go down, and ended


def test_nothing_is_drawn_in_scripts_with_json_with_q_or_with_silent(world, terminals):
    """A small brain will do: on a terminal a bar (``start``) is drawn from the first moment, however short the work."""
    brain = build(world, "quiet.json")
    world("install", "quiet.json", check=True)
    # --silent in the foreground on a terminal: nothing while it loads, while it holds the agent, as it ends.
    silent = open_terminal(world, terminals, "up", brain.uuid, "--silent", "--paused", term="xterm")
    wait_for(lambda: agents_json(world)[brain.callsign]["mode"] == "attached" or None, 60, "the agent held")
    pid = agents_json(world)[brain.callsign]["pid"]
    down = world("down", brain.uuid)  # not a terminal: the report line, nothing on stderr
    assert down.rc == 0 and down.err == "" and down.out.startswith(f"down {brain.callsign} "), str(down)
    wait_gone(pid)
    assert finished(silent) == ""

    # -q on a terminal: nothing at all; --json: one JSON object and not one escape sequence.
    up = open_terminal(world, terminals, "up", brain.uuid, "--daemon", "--paused", "-q", term="xterm")
    assert finished(up) == ""
    down = open_terminal(world, terminals, "down", brain.uuid, "--json", term="xterm")
    printed = finished(down)
    assert "\x1b" not in printed and json.loads(printed)["uuid"] == brain.uuid


@contextlib.contextmanager
def stand_in_agent(world, name: str) -> Iterator[tuple[Any, FakeAgent, RuntimeFiles]]:
    """An installed brain that a stand-in process holds as if it were its agent (it publishes what we write)."""
    brain = build(world, name)
    world("install", name, check=True)
    stand_in = FakeAgent(brain.callsign, brain.uuid, "tick")
    try:
        write_pid_file(runtime_of(world), brain.uuid, stand_in.pid)
        yield brain, stand_in, RuntimeFiles(runtime_of(world), brain.uuid)
    finally:
        stand_in.stop()
        world("destroy", brain.uuid, "--yes")


def test_agents_words_a_phase_as_loading_or_saving_with_how_far(world):
    """What the agent publishes while it loads or saves, as ``hera agents`` shows it (a stand-in agent: exact figures)."""
    with stand_in_agent(world, "listed.json") as (brain, stand_in, files):
        shown = {}
        for state, phase, done, total in [
            ("loading", "init", None, None),
            ("loading", "load", 43, 100),
            ("saving", "save", 71, 100),
            ("running", "save", 5, 10),
        ]:
            LiveStatus(
                uuid=brain.uuid, pid=stand_in.pid, state=state, iteration=0, mode="detached", device="cpu",
                phase=phase, done=done, total=total,
            ).write(files.status)
            row = agents_json(world)[brain.callsign]
            assert (row["phase"], row["done"], row["total"]) == (phase, done, total)
            shown[(state, phase)] = row["state"]
            table = world("agents", check=True).out
            assert row["state"] in table
        assert shown == {
            ("loading", "init"): "loading",
            ("loading", "load"): "loading 43 %",
            ("saving", "save"): "saving 71 %",
            ("running", "save"): "running, saving 50 %",  # a checkpoint: the loop runs on
        }


def test_down_or_checkpoint_of_an_agent_still_loading_says_so_and_how_far(world):
    """It serves no requests until it is up: one line that says why, not a missing socket (a stand-in agent)."""
    with stand_in_agent(world, "early.json") as (brain, stand_in, files):
        LiveStatus(
            uuid=brain.uuid, pid=stand_in.pid, state="loading", iteration=0, mode="detached", device="cpu",
            phase="load", done=43, total=100,
        ).write(files.status)
        for verb in ("down", "checkpoint"):
            one_error_line(world(verb, brain.uuid), f"agent {brain.callsign}", "is still coming up (loading 43 %)")
