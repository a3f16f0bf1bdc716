"""The controller in the foreground while its agent runs (normal, silent and interactive modes).

The terminal's keys reach the controller only (the agent has a session of its
own), and the controller turns them into requests. These are hera's detach
keys, documented in docs/shell.md:

* Ctrl-Z pauses the inner loop and opens the debug prompt: the hera shell,
  attached to the agent (when standard input is a terminal);
* leaving that prompt (``exit`` or Ctrl-D) resumes normal mode: the agent runs
  again and the controller stays in the foreground;
* Ctrl-C puts the agent in standby; a second Ctrl-C while it is in standby
  detaches, giving the terminal back with the agent still up.

When the agent goes down (from any terminal) the controller reports it and
exits. If the controller dies, the agent runs on, detached.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from hera import children

POLL_SECONDS = 0.25


def debug_prompt(uuid: str) -> int:
    """The hera shell attached to the agent, in this terminal, until the user leaves it."""
    ignore = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTSTP)}
    try:
        return subprocess.call(children.python("-m", "hera.shell", "--attach", uuid))
    finally:
        for signum, handler in ignore.items():
            signal.signal(signum, handler)


def stay(ctx: Any, manager: Any, process: Any, *, quiet: bool, prompt: bool = False, after: int | None = None) -> int:
    from hera.manager.client import AgentGone

    agent = manager.agent
    keys: list[str] = []
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, lambda *_: keys.append("SIGINT")),
        signal.SIGTSTP: signal.signal(signal.SIGTSTP, lambda *_: keys.append("SIGTSTP")),
    }
    terminal = sys.stdin.isatty()
    open_prompt = prompt and not after
    wait_for_after = prompt and bool(after)

    def say(text: str) -> None:
        if not quiet:
            ctx.out.write(text + "\n")
            ctx.out.flush()

    status: dict[str, Any] = {}
    try:
        client = manager.client()
        while True:
            if open_prompt:
                open_prompt = False
                debug_prompt(agent.uuid)
                keys.clear()  # the shell had the keyboard; its keys were not for us
                status = client.request("status", timeout=10)
                if status["state"] in ("paused", "standby"):
                    status = client.request("run")
                say(f"{agent.callsign} running again from iteration {status['iteration']} (Ctrl-Z: prompt, Ctrl-C: standby)")
            while keys:
                key = keys.pop(0)
                if key == "SIGINT" and status.get("state") == "standby":
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
    code = process.wait()
    if code == 0:
        say(f"down {agent.callsign} at iteration {status.get('iteration', '?')}; state saved in {agent.path}")
        return 0
    ctx.err.write(f"hera: agent {agent.callsign} exited with status {code}; see 'hera --uuid {agent.uuid[:8]} logs'\n")
    return 1
