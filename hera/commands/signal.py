"""``hera --uuid X signal NAME``: the spec's crude but dependable signalling of an agent.

Real signals go to the agent's pid, and the agent's handlers do what the
table says. Two cannot be caught or would freeze the agent, so hera carries
them another way (and says so in docs/signals.md):

* SIGSTOP would freeze the process, control socket included: hera instead
  asks the agent, over the control plane, to stop its inner loop, reports
  where it stopped, and attaches the calling terminal: in the hera shell that
  shell attaches; from a terminal the command becomes the hera shell attached
  to the agent (its debug prompt); from a script it only pauses.
* SIGKILL is sent as is: the agent dies at once and the cache keeps its last
  save (an autosave or the first up); the stale pid-file is cleaned later.

SIGTTIN pipes this command's standard input, line by line, into the agent's
input area; SIGTTOU writes the lines its output area produced to standard
output. Both pass through the control plane with the limits below, and never
block the inner loop.
"""

from __future__ import annotations

import argparse
import signal as signals
from typing import Any

TABLE = {
    "SIGCONT": "continue the inner loop if stopped, and detach from the terminal",
    "SIGSTOP": "stop the inner loop if running, and attach (carried over the control plane)",
    "SIGTSTP": "stop the inner loop (Ctrl-Z)",
    "SIGHUP": "detach from the controlling terminal",
    "SIGINT": "go into standby (Ctrl-C)",
    "SIGQUIT": "terminate, update the cache, then dump core",
    "SIGABRT": "terminate without updating the cache, and dump core",
    "SIGKILL": "terminate at once without updating the cache",
    "SIGTERM": "terminate normally and update the cache",
    "SIGTTIN": "pipe standard input, line by line, into the input area",
    "SIGTTOU": "pipe the output area's lines to standard output",
}
HELP = "send one of the spec's signals to an agent"
EXAMPLE = "signals:\n" + "\n".join(f"  {name:<8} {what}" for name, what in TABLE.items()) + """

examples:
  hera --uuid 3f2a signal SIGTERM
  echo "the quick brown fox" | hera --uuid 3f2a signal SIGTTIN
  hera --uuid 3f2a signal SIGTTOU --follow

Limits on piped input: lines of at most 64 KiB, at most 1,000 lines a second."""

LINES_PER_SECOND = 1000


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("signal", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("name", metavar="NAME", help="signal name, e.g. SIGTERM (the SIG prefix is optional)")
    parser.add_argument("-f", "--follow", action="store_true", help="with SIGTTOU: keep writing output until Ctrl-C")
    return parser


def canonical(name: str) -> str:
    from hera.errors import UsageError, did_you_mean

    upper = name.strip().upper()
    upper = upper if upper.startswith("SIG") else f"SIG{upper}"
    if upper not in TABLE:
        raise UsageError(f"unknown signal {name!r}", hint=did_you_mean(upper, list(TABLE)))
    return upper


def run(ctx: Any) -> int:
    import os
    import sys
    import time

    from hera.commands import target

    name = canonical(ctx.args.name)
    store, agent = target.select_up(ctx, verb="signal")
    pid = store.liveness(agent.uuid).pid
    assert pid is not None
    if name == "SIGSTOP":
        with target.connect(store, agent) as client:
            status = client.request("signal", name="SIGSTOP")
        ctx.out.write(f"{agent.callsign} paused at iteration {status['iteration']}\n")
        if ctx.shell is not None:  # the hera shell: this shell takes the prompt
            handle = ctx.shell.attach(store, agent, force=True)
            ctx.out.write(f"attached {handle!r}; 'agent' is it, 'detach' lets go\n")
        elif sys.stdin.isatty() and sys.stdout.isatty():  # a terminal: it becomes the debug prompt
            ctx.out.flush()
            os.execv(sys.executable, [sys.executable, "-m", "hera.shell", "--attach", agent.uuid])
        return 0
    if name == "SIGTTIN":
        os.kill(pid, signals.SIGTTIN)
        fed = 0
        with target.connect(store, agent) as client:
            for line in sys.stdin:
                started = time.monotonic()
                client.request("feed", text=line)
                fed += 1
                time.sleep(max(0.0, 1.0 / LINES_PER_SECOND - (time.monotonic() - started)))
        ctx.err.write(f"fed {fed} line(s) to {agent.callsign}\n")
        return 0
    if name == "SIGTTOU":
        os.kill(pid, signals.SIGTTOU)
        with target.connect(store, agent) as client:
            try:
                while True:
                    result = client.request("read")
                    if result["dropped"]:
                        ctx.err.write(f"hera: {result['dropped']} bytes of output were dropped before this read\n")
                    if result["text"]:
                        ctx.out.write(result["text"])
                        ctx.out.flush()
                    if not ctx.args.follow:
                        return 0
                    time.sleep(0.1)
            except KeyboardInterrupt:
                return 0
    os.kill(pid, getattr(signals, name))
    ctx.out.write(f"sent {name} to {agent.callsign} (pid {pid})\n")
    return 0
