"""The controller in the foreground while its agent runs (normal, silent and interactive modes).

It holds the agent's terminal (it sends ``attach`` when it connects), so
``hera agents`` says MODE ``attached`` exactly while it is here. The
terminal's keys reach the controller only (the agent has a session of its
own), and the controller turns them into requests. These are hera's keys,
documented in docs/shell.md ("The terminal model"):

* Ctrl-Z pauses the inner loop and opens the debug prompt: the hera shell,
  attached to the agent (when standard input is a terminal);
* leaving that prompt (``exit`` or Ctrl-D) resumes normal mode: the agent runs
  again and the controller holds it again, in the foreground;
* Ctrl-C puts the agent in standby; a second Ctrl-C while it is in standby
  detaches, giving the terminal back with the agent still up.

It lets go (one line, exit 0, the agent up as it is) on Ctrl-C Ctrl-C, on
SIGHUP or SIGCONT sent to the agent from anywhere, on another controller
taking the terminal, and on its own terminal closing (SIGHUP to it). What
others do to the agent meanwhile comes back with each status poll as events,
one line each. When the agent goes down (from any terminal) the controller
says so, with the iteration its cache holds, and exits.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hera import children

POLL_SECONDS = 0.25
#: The line an agent logs as it leaves: why (``down``, ``SIGTERM``, ``SIGQUIT``) and the iteration saved.
DOWN_LOGGED = re.compile(rb"down: (\S+) at iteration (\d+)")


def debug_prompt(uuid: str) -> int:
    """The hera shell attached to the agent, in this terminal, until the user leaves it."""
    ignore = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTSTP)}
    try:
        return subprocess.call(children.python("-m", "hera.shell", "--attach", uuid))
    finally:
        for signum, handler in ignore.items():
            signal.signal(signum, handler)


def detached_line(callsign: str, by: str, status: dict[str, Any]) -> str:
    """What a holder says as it lets go of an agent it did not stop: who made it, and where the agent is.

    ``by`` is a cause (``SIGHUP``) or a sentence (``pid 4242 took the prompt``).
    """
    cause = f": {by}" if " " in by else f" by {by}"
    return f"detached from {callsign}{cause}; it stays up, {status.get('state')} at iteration {status.get('iteration')}"


def event_lines(callsign: str, status: dict[str, Any]) -> tuple[list[str], bool]:
    """The holder's lines for what others did to its agent (``status["events"]``), and whether it was let go.

    One line per change of state: ``brisk-otter paused at iteration 4120 by
    SIGTSTP``. A release (SIGHUP, SIGCONT, another controller's ``attach
    --force``) ends with the detached line, the state change that came with
    it folded into it (SIGCONT runs the agent and lets go: one line).
    """
    events = [e for e in status.get("events") or [] if isinstance(e, dict)]
    released = next((e for e in reversed(events) if e.get("event") == "detached"), None)
    lines = []
    for event in events:
        if event is released:
            break
        if released is not None and event.get("by") == released.get("by"):
            continue
        at = f" at iteration {event['iteration']}" if event.get("iteration") is not None else ""
        lines.append(f"{callsign} {event.get('event')}{at} by {event.get('by', 'another process')}")
    if released is not None:
        lines.append(detached_line(callsign, str(released.get("by", "another process")), status))
    elif status.get("you_hold") is False:
        lines.append(detached_line(callsign, "another controller took the prompt", status))
    return lines, released is not None or status.get("you_hold") is False


def stay(
    ctx: Any,
    manager: Any,
    process: Any,
    *,
    quiet: bool,
    log: Path,
    prompt: bool = False,
    after: int | None = None,
) -> int:
    """Hold the agent in this terminal until it goes down or is let go; the command's exit status."""
    from hera.manager.client import AgentGone

    agent = manager.agent
    keys: list[str] = []
    catch = (signal.SIGINT, signal.SIGTSTP, signal.SIGHUP)
    previous = {s: signal.signal(s, lambda signum, _: keys.append(signal.Signals(signum).name)) for s in catch}
    terminal = sys.stdin.isatty()
    open_prompt = prompt and not after
    wait_for_after = prompt and bool(after)
    say = _Say(ctx.out, quiet)
    status: dict[str, Any] = {}
    try:
        client = manager.client()
        status = _hold(client)
        while True:
            if open_prompt:
                open_prompt = False
                debug_prompt(agent.uuid)
                keys[:] = [key for key in keys if key == "SIGHUP"]  # the shell had the keyboard, not the line
                if not keys:
                    status = _hold(client)  # the prompt held it meanwhile; this terminal holds it again
                    if status["state"] in ("paused", "standby"):
                        status = client.request("run")
                    say(f"{agent.callsign} running again from iteration {status['iteration']} (Ctrl-Z: prompt, Ctrl-C: standby)")
            while keys:
                key = keys.pop(0)
                if key == "SIGHUP":  # this terminal closed: let go quietly, the agent runs on as it is
                    say.gone()
                    _let_go(client)
                    return 0
                if key == "SIGINT" and status.get("state") == "standby":
                    _let_go(client)
                    say(f"detached; {agent.callsign} stays up in standby (hera --uuid {agent.uuid[:8]} down stops it)")
                    return 0
                status = client.request("standby" if key == "SIGINT" else "pause")
                keys_left = " (Ctrl-C again: detach, leaving it up; Ctrl-Z: prompt)" if key == "SIGINT" else ""
                say(f"{agent.callsign} {status['state']} at iteration {status['iteration']}{keys_left}")
                if key == "SIGTSTP" and terminal:
                    open_prompt = True
            if open_prompt:
                continue
            try:
                status = client.request("status", timeout=10)
            except AgentGone:
                break
            lines, released = event_lines(agent.callsign, status)
            for line in lines:
                say(line)
            if released:
                client.close()
                return 0
            if wait_for_after and status["state"] == "paused":
                wait_for_after, open_prompt = False, True
                continue
            if process.poll() is not None:
                break
            time.sleep(POLL_SECONDS)
    except AgentGone:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return _ended(ctx, manager, process, say, log)


def _hold(client: Any) -> dict[str, Any]:
    """Take the agent's terminal (from whoever had it), and its status with no events: they were not ours."""
    client.request("attach", force=True)
    return dict(client.request("status", timeout=10))


def _let_go(client: Any) -> None:
    from hera.errors import HeraError

    try:
        client.request("detach", timeout=2)
    except HeraError:
        pass  # gone already: nothing is held
    client.close()


def _ended(ctx: Any, manager: Any, process: Any, say: _Say, log: Path) -> int:
    """The agent's process has gone or is going: wait for it, and say how it ended.

    The iteration reported is the one its cached file holds, read after the
    process exited, never the last one polled (it ran on after that).
    """
    from hera.manager.manager import wait_exit

    agent = manager.agent
    wait_exit(process.pid, None)
    code = process.wait()
    if code != 0:
        ctx.err.write(f"hera: agent {agent.callsign} exited with status {code}; see 'hera --uuid {agent.uuid[:8]} logs'\n")
        return 1
    say(down_line(agent, log))
    return 0


def down_line(agent: Any, log: Path, *, pid: int | None = None) -> str:
    """What a holder says when its agent went down: the iteration its cache holds (read now), and why.

    ``pid``: wait (briefly) for that process to exit first, so its last save is in.
    """
    from hera.errors import HeraError
    from hera.instance import read_header
    from hera.manager.manager import wait_exit

    if pid is not None:
        wait_exit(pid, 10)
    try:
        iteration: Any = read_header(agent.path).iteration
    except HeraError:
        iteration = "?"
    reason = _down_reason(log)
    by = f" by {reason}" if reason else ""
    return f"down {agent.callsign} at iteration {iteration}{by}; state saved in {agent.path}"


def _down_reason(log: Path) -> str | None:
    """Why the agent went down, from the line it logged as it left (after this run's ``up:``): a request or a signal."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            tail = f.read()
    except OSError:
        return None
    found = DOWN_LOGGED.findall(tail[max(0, tail.rfind(b" up: ")) :])  # this run's, not an earlier run's
    if not found:
        return None
    reason = found[-1][0].decode("utf-8", "replace")
    return "a 'down' request" if reason == "down" else reason


class _Say:
    """One line to the terminal, unless quiet; nothing once the terminal is gone (SIGHUP)."""

    def __init__(self, out: Any, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if self.quiet:
            return
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except OSError:
            self.quiet = True

    def gone(self) -> None:
        """The terminal hung up: print nothing more, and let this process's output go nowhere at exit."""
        self.quiet = True
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(null, fd)
        os.close(null)
