"""The controller in the foreground while its agent runs (normal and silent modes).

The terminal's keys reach the controller only (the agent has its own session),
and the controller turns them into requests: Ctrl-C puts the agent in standby
(a second Ctrl-C while in standby detaches and returns the terminal, leaving
the agent up); Ctrl-Z pauses the inner loop. When the agent goes down (from
any terminal) the controller reports it and exits. If the controller dies, the
agent runs on, detached.
"""

from __future__ import annotations

import signal
import time
from typing import Any

POLL_SECONDS = 0.25


def stay(ctx: Any, store: Any, agent: Any, process: Any, *, quiet: bool) -> int:
    from hera.agent.main import paths
    from hera.client import AgentClient, AgentGone

    keys: list[str] = []
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, lambda *_: keys.append("SIGINT")),
        signal.SIGTSTP: signal.signal(signal.SIGTSTP, lambda *_: keys.append("SIGTSTP")),
    }

    def say(text: str) -> None:
        if not quiet:
            ctx.out.write(text + "\n")
            ctx.out.flush()

    status: dict[str, Any] = {}
    try:
        client = AgentClient.unix(paths(store.runtime_dir, agent.uuid)["socket"])
        while True:
            while keys:
                key = keys.pop(0)
                if key == "SIGINT" and status.get("state") == "standby":
                    say(f"detached; {agent.callsign} stays up in standby (hera --uuid {agent.uuid[:8]} down stops it)")
                    return 0
                op = "standby" if key == "SIGINT" else "pause"
                status = client.request(op)
                say(f"{agent.callsign} {status['state']} at iteration {status['iteration']}")
            try:
                status = client.request("status", timeout=10)
            except AgentGone:
                break
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
