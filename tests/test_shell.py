"""The hera shell driven as a user drives it: real pseudo-terminals, real keys, real agents.

Every test here types into ``hera`` (or ``hera up FILE --interactive``, or
``hera signal SIGSTOP``) running in a pseudo-terminal of its own (pexpect),
and reads what comes back. Agents are the ``tick`` test family: they compile
in a moment and every iteration is exact. Most terminals run with
``TERM=dumb``: xonsh then uses its readline shell and hera prints no colours,
so the screen is plain text; one test runs the shell in tmux, where xonsh
uses prompt_toolkit, to see its live status line and completion. Whatever a test leaves up,
its ``world`` fixture kills.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_helpers import build, reap_agents, request, tick_world, up_daemon, up_daemons, wait_for
from herakit import World
from terminalkit import TIMEOUT, Terminal, agents_json, number, open_terminal, opened_terminals, pexpect


@pytest.fixture
def world(hera: World) -> Iterator[World]:
    """A user's world with tick cloned in the working directory; every agent still up is killed after."""
    tick_world(hera)
    yield hera
    reap_agents(hera)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    yield from opened_terminals()


def test_walk_build_up_step_breakpoints_state_io_status_plot_detach_reattach_down(world, terminals):
    first = open_terminal(world, terminals)
    first.wait_prompt()
    assert first.state == (None, None, None)
    # Starting the shell imports no Taichi, numpy or pydantic (numpy arrives with the first agent.state).
    heavy = first.run('import sys; sorted(m for m in ("taichi", "numpy", "pydantic", "matplotlib") if m in sys.modules)')
    assert heavy == "[]"

    out = first.run("build --family tick -o walk.json")
    callsign = re.search(r"^built (\S+) ", out, re.M)[1]
    out = first.run("up walk.json")
    assert f"up {callsign} " in out and "attached <agent" in out
    assert first.state[:2] == (callsign, "running")

    paused = first.run("agent.pause()")
    n = int(re.fullmatch(rf"'{callsign} paused at iteration (\d+)'", paused)[1])
    assert first.state == (callsign, "paused", n)
    assert number(first.run("agent.iteration")) == n

    # Steps are exact, and the prompt follows.
    assert number(first.run("agent.step(10)")) == n + 10
    assert first.state == (callsign, "paused", n + 10)

    # Breakpoints: add two, list, a step stops exactly at the first, a run exactly at the probe.
    assert first.run(f"agent.breakpoints.add(iteration={n + 25})") == f"{{'id': 1, 'kind': 'iteration', 'value': {n + 25}}}"
    assert first.run('agent.breakpoints.add(probe="output")') == "{'id': 2, 'kind': 'probe', 'value': 'output'}"
    assert first.run("agent.breakpoints") == f"1: iteration {n + 25}\n2: probe output"
    assert number(first.run("agent.step(100)")) == n + 25
    assert number(first.run('agent.feed("hello\\n")')) == 6  # exactly these bytes, nothing added
    first.run("agent.run()")
    first.run("import time; [time.sleep(0.02) for _ in iter(lambda: agent.status()['state'] == 'running', False)]")
    assert number(first.run("agent.iteration")) == n + 26  # the echo's first byte came out: the probe fired
    assert first.run("agent.breakpoints.remove(2)") == f"[{{'id': 1, 'kind': 'iteration', 'value': {n + 25}}}]"
    assert first.run("agent.breakpoints.remove()") == "[]"
    assert first.run("agent.breakpoints") == "no breakpoints"

    # Input and output: the five other bytes of the line come out in the next iterations.
    assert number(first.run("agent.step(20)")) == n + 46
    assert first.run("agent.read()") == "b'hello\\n'"

    # State: named numpy arrays pulled from the device on demand.
    assert first.run("sorted(agent.state)") == "['counts', 'pending', 'ring', 'weights']"
    assert first.run('agent.state["weights"].dtype, agent.state["weights"].shape') == "(dtype('float32'), (64,))"
    assert first.run('type(agent.state["counts"]).__name__, int(agent.state["counts"].sum()) > 0') == "('ndarray', True)"

    # The status line: state, iteration, rate, how far through its input, spikes.
    line = first.run("status")
    assert re.fullmatch(rf"{callsign} paused  iteration {n + 46}  0 it/s  fed 6  presented 6  answered 6  spikes \d+", line), line

    # plot, for a running agent: a PNG, and the agent runs on.
    first.run("agent.run()")
    out = first.run("plot -o raster.png -n 40 --no-open")
    assert out == "wrote raster.png", out
    assert (world.workdir / "raster.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.state[:2] == (callsign, "running")
    m = int(re.search(r"at iteration (\d+)", first.run("agent.pause()"))[1])

    # Detach: the agent stays up as it was.
    assert first.run("detach") == f"detached from {callsign}; it stays up, paused at iteration {m}"
    assert first.state == (None, None, None)
    assert first.run("agent") == "<no agent attached: 'attach [ID]'>"
    assert agents_json(world)[callsign]["state"] == "paused"

    # A second terminal attaches (its ID completed by Tab), the first is told it is taken.
    second = open_terminal(world, terminals)
    second.wait_prompt()
    second.child.send(f"attach {callsign[:4]}\t")
    second.wait(re.escape(callsign))
    out = second.run("")
    assert out == f"attached <agent {callsign} paused @{m}>; 'agent' is it, 'detach' lets go", out
    assert second.state == (callsign, "paused", m)
    out = first.run(f"attach {callsign}")
    assert f"hera: another controller holds {callsign}'s prompt; 'attach --force {callsign}' takes it over" in out
    assert first.state == (None, None, None)

    # Down from the second terminal: it detaches, and the listing says down.
    assert second.run('agent.feed(b"\\xff\\x00")') == "2"  # any bytes; each unit presented gets a record
    assert number(second.run("agent.step(5)")) == m + 5
    assert second.run("[(r['unit'], r['output']) for r in agent.records()]") == "[(255, 255), (0, 0)]"
    # The signal at the prompt: the agent's output as text, its control bytes escaped.
    assert second.run('agent.feed(b"ok\\x0e\\x1b[2J\\n")') == "8"
    assert number(second.run("agent.step(8)")) == m + 13
    assert second.run(f"signal SIGTTOU {callsign}") == "ok\\x0e\\x1b[2J"
    assert second.run("agent.down()") == f"'down {callsign} at iteration {m + 13}; detached'"
    assert second.state == (None, None, None)
    row = re.search(rf"^\S+\s+{callsign}\s+tick/example\s+(\S+)\s+\S+\s+(\d+)", second.run("agents"), re.M)
    assert row is not None and row.groups() == ("down", str(m + 13))
    assert second.exit("eof") == 0
    assert first.exit() == 0

    # History lands in hera's state directory.
    history = world.home / ".local" / "state" / "hera" / "shell" / "history_json"
    typed = [
        item["inp"].strip()
        for path in history.glob("*.json")
        for item in json.loads(path.read_text())["data"]["cmds"]
    ]
    assert "agent.step(10)" in typed and "agent.down()" in typed


def test_up_interactive_exit_resumes_ctrl_z_prompts_ctrl_c_standby_twice_detaches(world, terminals):
    agent = build(world, "fg.json")
    fg = open_terminal(world, terminals, "up", "fg.json", "--interactive")
    fg.wait_prompt()
    assert fg.state == (agent.callsign, "paused", 0)
    assert number(fg.run("agent.step(7)")) == 7
    # Ctrl-C while a long step waits pauses the agent where it is (the prompt's Ctrl-C, not the controller's).
    fg.child.sendline("agent.step(10**12)")
    fg.wait(r"agent\.step\(10\*\*12\)")
    time.sleep(1)
    fg.child.sendcontrol("c")
    reached = int(re.search(r"(\d+)\s*$", fg.wait_prompt())[1])
    assert fg.state == (agent.callsign, "paused", reached) and 7 < reached < 10**12

    # Leaving the prompt resumes normal mode: the agent runs, the controller stays in the foreground.
    fg.child.sendline("exit")
    fg.wait(rf"{agent.callsign} running again from iteration {reached} ")
    wait_for(lambda: agents_json(world)[agent.callsign]["iteration"] > reached, 20, "the agent to run on")
    row = agents_json(world)[agent.callsign]
    assert (row["state"], row["mode"]) == ("running", "attached")  # the controller holds it again
    assert fg.child.isalive()

    # Ctrl-Z pauses the inner loop and brings the debug prompt back, attached where it stopped.
    fg.child.sendcontrol("z")
    stopped = int(fg.wait(rf"{agent.callsign} paused at iteration (\d+)")[1])
    fg.wait_prompt()
    assert fg.state == (agent.callsign, "paused", stopped)
    assert number(fg.run("agent.iteration")) == stopped

    # Ctrl-D leaves it too.
    fg.child.sendeof()
    fg.wait(rf"{agent.callsign} running again from iteration {stopped} ")

    # Ctrl-C: standby; a second Ctrl-C detaches, leaving the agent up.
    fg.child.sendcontrol("c")
    fg.wait(rf"{agent.callsign} standby at iteration \d+")
    assert agents_json(world)[agent.callsign]["state"] == "standby"
    fg.child.sendcontrol("c")
    fg.wait("detached;")
    fg.child.expect(pexpect.EOF)
    fg.child.close()
    assert fg.child.exitstatus == 0
    row = agents_json(world)[agent.callsign]
    assert row["state"] == "standby" and row["pid"]
    assert world("--uuid", agent.uuid, "down").rc == 0


def test_attach_names_an_agent_three_ways_and_state_names_its_arrays(world, terminals):
    """Defect 8: with two agents up, attach's hint is attach's own syntax; a missing array names those there are."""
    build(world, "a.json")
    build(world, "b.json")
    a, b = up_daemons(world, ("a.json", "--paused"), ("b.json", "--paused"))
    shell = open_terminal(world, terminals)
    shell.wait_prompt()
    refused = shell.run("attach")
    assert refused.startswith("hera: 2 agents are up (") and refused.endswith(
        "say which to attach; 'attach ID' (a UUID prefix or callsign), or 'attach --uuid PREFIX' / 'attach --callsign NAME'"
    ), refused
    assert shell.run(f"attach --uuid {a.uuid[:4]}").startswith(f"attached <agent {a.callsign} paused @0>")
    assert shell.run(f"attach --callsign {b.callsign}").startswith(f"attached <agent {b.callsign} paused @0>")
    assert shell.run(f"attach {a.uuid[:8]}").startswith(f"attached <agent {a.callsign} paused @0>")
    assert shell.state == (a.callsign, "paused", 0)

    assert shell.run("agent.state") == f"<agent.state of {a.callsign}: counts, pending, ring, weights>"
    missing = shell.run('agent.state["wieghts"]')
    assert missing == (  # one line, KeyError's kind
        f"hera.shell.handle.NoSuchArray: {a.callsign} has no state array 'wieghts'; its arrays: counts, pending, ring, weights"
    ), missing
    assert shell.run('"wieghts" in agent.state, agent.state.get("wieghts")') == "(False, None)"
    assert shell.exit() == 0


def test_up_interactive_after_n_opens_the_prompt_at_exactly_n(world, terminals):
    agent = build(world, "after.json")
    fg = open_terminal(world, terminals, "up", "after.json", "--interactive", "--after", "250")
    fg.wait_prompt()
    assert fg.state == (agent.callsign, "paused", 250)
    assert number(fg.run("agent.iteration")) == 250
    fg.child.sendline("exit")
    fg.wait(r"running again from iteration 250 ")
    # Down from another terminal: the controller reports it and exits.
    assert world("--uuid", agent.uuid, "down").rc == 0
    fg.wait(rf"down {agent.callsign} at iteration \d+")
    fg.child.expect(pexpect.EOF)
    fg.child.close()
    assert fg.child.exitstatus == 0


def test_signal_sigstop_from_another_terminal_pauses_and_attaches_it(world, terminals):
    build(world, "bg.json")
    up = up_daemon(world, "bg.json")
    # From a script (no terminal): it only pauses.
    result = world("--uuid", up.uuid[:8], "signal", "SIGSTOP")
    assert result.rc == 0 and re.fullmatch(rf"{up.callsign} paused at iteration \d+\n", result.out), str(result)
    request(world, up.uuid, "run")

    other = open_terminal(world, terminals, "--uuid", up.uuid[:8], "signal", "SIGSTOP")
    stopped = int(other.wait(rf"{up.callsign} paused at iteration (\d+)")[1])
    other.wait_prompt()
    assert other.state == (up.callsign, "paused", stopped)
    assert number(other.run("agent.step(3)")) == stopped + 3
    assert other.exit() == 0
    # Leaving the prompt never stops the agent.
    row = agents_json(world)[up.callsign]
    assert (row["state"], row["iteration"], row["pid"]) == ("paused", stopped + 3, up.pid)


def test_xontrib_load_gives_the_aliases_and_agent_and_unload_removes_them(world):
    build(world, "x.json")
    up = up_daemon(world, "x.json", "--paused")
    xonsh = Path(sys.executable).with_name("xonsh")
    argv = [str(xonsh)] if xonsh.exists() else [sys.executable, "-m", "xonsh"]

    def xonsh_c(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, "-c", script], env=world.env, cwd=world.workdir, capture_output=True, text=True, timeout=TIMEOUT
        )

    listed = xonsh_c("xontrib load hera; agents")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^{up.uuid[:8]}\s+{up.callsign}\s+tick/example\s+paused\b", listed.stdout, re.M), listed.stdout

    script = "\n".join(
        [
            "import sys",
            'print("before", [m for m in ("taichi", "numpy", "pydantic") if m in sys.modules])',
            "xontrib load hera",
            'print("loaded", [m for m in ("taichi", "numpy", "pydantic") if m in sys.modules])',
            f"attach {up.callsign}",
            'print("stepped", agent.step(4))',
            "detach",
            "signal SIGSTOP",  # in a shell with hera loaded, SIGSTOP attaches that shell
            'print("stopped at", agent.iteration)',
            "xontrib unload hera",
            'print("after", [n for n in ("agents", "up", "attach", "detach", "plot") if n in aliases], "agent" in __xonsh__.ctx)',
        ]
    )
    done = xonsh_c(script)
    assert done.returncode == 0, done.stderr
    assert "before []" in done.stdout and "loaded []" in done.stdout, done.stdout
    assert f"attached <agent {up.callsign} paused @0>" in done.stdout
    assert "stepped 4" in done.stdout
    assert f"detached from {up.callsign}; it stays up, paused at iteration 4" in done.stdout
    assert f"{up.callsign} paused at iteration 4\nattached <agent {up.callsign} paused @4>" in done.stdout
    assert "stopped at 4" in done.stdout
    assert "after [] False" in done.stdout
    assert "Traceback" not in done.stderr, done.stderr


def test_commands_fed_on_standard_input_run_as_a_script(world):
    script = "\n".join(
        [
            "build --family tick -o piped.json",
            "up piped.json --paused",
            'print("stepped", agent.step(12))',
            "agent.down()",
            "agents",
        ]
    )
    result = world(input=script + "\n")
    assert result.rc == 0, str(result)
    callsign = re.search(r"^built (\S+) ", result.out, re.M)[1]
    assert "stepped 12" in result.out, str(result)
    assert re.search(rf"^\S+\s+{callsign}\s+tick/example\s+down\s+-\s+12\b", result.out, re.M), str(result)
    assert "Traceback" not in result.err, str(result)


def test_tab_completes_subcommands_options_families_and_callsigns(world, terminals):
    agent = build(world, "c.json")
    world("install", "c.json", check=True)
    shell = open_terminal(world, terminals)
    shell.wait_prompt()

    def completed(partial: str, expected: str) -> str:
        """Type ``partial`` and Tab; the line must become ``expected``; then Enter and its output."""
        shell.child.send(partial + "\t")
        shell.wait(re.escape(expected))
        shell.child.sendline("")
        return shell.wait_prompt()

    assert "tick" in completed("famil", "families")  # a subcommand
    assert json.loads(completed("agents --js", "agents --json").partition("\n")[2])  # an option
    assert "slow" in completed("layouts --family ti", "layouts --family tick")  # a family
    assert agent.uuid in completed(f"inspect --callsign {agent.callsign[:3]}", f"--callsign {agent.callsign}")
    assert "hera up" not in completed("info", "info")  # nothing to complete, nothing broken
    assert shell.exit() == 0


class Screen:
    """A terminal emulator (a private tmux server) running hera: the screen a user sees, the keys a user types.

    prompt_toolkit redraws only what changed, so its output cannot be read as
    a stream; tmux keeps the screen, answers the terminal's queries, and
    ``capture-pane`` shows it as text.
    """

    def __init__(self, world: World, *args: str) -> None:
        self.socket = world.runtime_dir / "tmux.sock"
        command = " ".join(shlex.quote(word) for word in [sys.executable, "-m", "hera", *args])
        self._tmux("new-session", "-d", "-s", "hera", "-x", "160", "-y", "40", "-c", str(world.workdir), command, env=world.env)

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), "-f", "/dev/null", *args], env=env, capture_output=True, text=True, timeout=30
        )

    def text(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "hera").stdout

    def wait(self, pattern: str, *, then: Callable[[re.Match[str]], bool] = lambda m: True) -> re.Match[str]:
        """Until ``pattern`` is on the screen (and ``then(match)`` holds); the match."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            found = re.search(pattern, self.text(), re.M)
            if found and then(found):
                return found
            assert time.monotonic() < deadline, f"no {pattern!r} on the screen:\n{self.text()}"
            time.sleep(0.1)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "hera", "-l", text)

    def key(self, name: str) -> None:
        self._tmux("send-keys", "-t", "hera", name)

    def running(self) -> bool:
        return self._tmux("has-session", "-t", "hera").returncode == 0

    def close(self) -> None:
        self._tmux("kill-server")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux, to see prompt_toolkit's screen")
def test_prompt_toolkit_terminal_shows_a_live_status_line_and_completes(world):
    """In a terminal emulator xonsh runs prompt_toolkit: the status line lives at the bottom of the screen."""
    build(world, "live.json")
    up = up_daemon(world, "live.json", "--paused")
    screen = Screen(world)
    try:
        screen.wait(r"^hera>")  # (capture-pane drops trailing blanks)
        screen.type(f"attach {up.callsign}")
        screen.key("Enter")
        screen.wait(rf"^hera {up.callsign}\[paused @0\]>")
        screen.wait(rf"^{up.callsign} paused  iteration 0  0 it/s  spikes 0 *$")  # the status line
        screen.type("agent.run()")
        screen.key("Enter")
        # Live: it follows the running agent with no key pressed.
        status = rf"^{up.callsign} running  iteration (\d+)  [\d,]+ it/s  spikes \d+ *$"
        first = int(screen.wait(status)[1])
        screen.wait(status, then=lambda m: int(m[1]) > first)
        # Completion in prompt_toolkit: a subcommand.
        screen.type("famil")
        screen.key("Tab")
        screen.wait(r"> families *$")
        screen.key("Enter")
        screen.wait(r"^tick +0\.1\.0 +folder ")
        screen.type("exit")
        screen.key("Enter")
        wait_for(lambda: not screen.running(), TIMEOUT, "the shell to exit")
    finally:
        screen.close()
