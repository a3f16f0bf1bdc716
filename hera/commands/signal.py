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
input area: bytes as they are (base64 on the wire, so input that is not
UTF-8 arrives intact), never more than one line of at most ``FEED_LIMIT``
bytes in memory (a longer line, even one without end, is refused in one
line). While the agent's input queue is full it answers busy, and this
command waits and sends the line again: nothing is dropped, and nothing
grows. A paused agent takes no input in, so then the command stops with one
line saying how much went in. SIGTTOU writes what its output area
produced to standard output. Both pass through the control plane and never
block the inner loop.

A real signal goes to the pid that hera has just found up, through a pidfd
opened and checked before sending, so a pid that ended (or was reused) in
between is never signalled; an agent that went away meanwhile is one line,
"not up", never a traceback.
"""

from __future__ import annotations

import argparse
import signal as signals
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument

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
GLOBALS = AGENT_OPTIONS
HELP = "send one of the spec's signals to an agent"
EXAMPLE = "signals:\n" + "\n".join(f"  {name:<8} {what}" for name, what in TABLE.items()) + """

examples:
  hera --uuid 3f2a signal SIGTERM
  hera signal SIGTSTP brisk-otter         # the agent after the signal's name
  echo "the quick brown fox" | hera --uuid 3f2a signal SIGTTIN
  hera --uuid 3f2a signal SIGTTOU --follow

Piped input goes in as bytes, line by line: lines of at most 64 KiB, at most
1,000 lines a second; while the agent's input queue (1 MiB) is full, hera
waits for it to take some in."""

LINES_PER_SECOND = 1000
#: While the agent is busy (its input queue full): first wait and longest wait, in seconds.
BUSY_WAIT = (0.01, 0.2)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("signal", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("name", metavar="NAME", help="signal name, e.g. SIGTERM (the SIG prefix is optional)")
    agent_argument(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="with SIGTTOU: keep writing output until Ctrl-C")
    return parser


def canonical(name: str) -> str:
    from hera.errors import UsageError, nearest

    upper = name.strip().upper()
    upper = upper if upper.startswith("SIG") else f"SIG{upper}"
    if upper not in TABLE:
        # Every name, always: a real signal hera does not carry (SIGUSR1) has no "nearest" one to suggest.
        guess = nearest(upper, list(TABLE), cutoff=0.8)
        valid = "hera's signals are " + ", ".join(TABLE)
        raise UsageError(f"unknown signal {name!r}", hint=f"did you mean {guess!r}? {valid}" if guess else valid)
    return upper


def run(ctx: Any) -> int:
    import os
    import sys
    import time

    from hera import children
    from hera.commands import target

    name = canonical(ctx.args.name)
    manager = target.select_up(ctx, target.positional(ctx, ctx.args.file), verb="signal")
    agent = manager.agent
    if name == "SIGSTOP":
        status = manager.request("signal", name="SIGSTOP")
        ctx.out.write(f"{agent.callsign} paused at iteration {status['iteration']}\n")
        if ctx.shell is not None:  # the hera shell: this shell takes the prompt
            handle = ctx.shell.attach(manager, force=True)
            ctx.out.write(f"attached {handle!r}; 'agent' is it, 'detach' lets go\n")
        elif sys.stdin.isatty() and sys.stdout.isatty():  # a terminal: it becomes the debug prompt
            ctx.out.flush()
            os.execv(sys.executable, children.python("-m", "hera.shell", "--attach", agent.uuid))
        return 0
    if name == "SIGTTIN":
        manager.signal(signals.SIGTTIN)
        feed(ctx, manager)
        return 0
    if name == "SIGTTOU":
        manager.signal(signals.SIGTTOU)
        with manager.client() as client:
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
    pid = manager.signal(getattr(signals, name))
    ctx.out.write(f"sent {name} to {agent.callsign} (pid {pid})\n")
    return 0


# -- SIGTTIN --------------------------------------------------------------------------------------


def feed(ctx: Any, manager: Any) -> None:
    """Standard input into the agent, line by line, waiting while the agent is busy; says how much went in."""
    import sys
    import time

    agent = manager.agent
    fed = Fed()
    try:
        with manager.client() as client:
            for line in lines(sys.stdin, fed):
                started = time.monotonic()
                _feed_one(client, agent, line, fed)
                fed.add(line)
                time.sleep(max(0.0, 1.0 / LINES_PER_SECOND - (time.monotonic() - started)))
    except KeyboardInterrupt:
        ctx.err.write(f"fed {fed} to {agent.callsign} before the interrupt\n")
        raise
    ctx.err.write(f"fed {fed.summary()} to {agent.callsign}{fed.waits()}\n")


class Fed:
    """How much went in: lines (a last one without a newline counts), bytes, and the seconds spent waiting."""

    def __init__(self) -> None:
        self.lines = 0
        self.bytes = 0
        self.open_line = False
        self.waited = 0.0

    def add(self, line: bytes) -> None:
        self.bytes += len(line)
        self.open_line = not line.endswith(b"\n")  # only the last can be: the input ended there
        self.lines += not self.open_line

    def __str__(self) -> str:
        return f"{self.lines + self.open_line} line(s) ({self.bytes} bytes)"

    def summary(self) -> str:
        return f"{self.lines + self.open_line} line(s)"

    def waits(self) -> str:
        return f" (waited {self.waited:.1f} s while its input queue was full)" if self.waited else ""


def lines(stream: Any, fed: Fed) -> Any:
    """Standard input as bytes, a line at a time, never more than ``FEED_LIMIT + 1`` bytes read at once.

    ``readline(FEED_LIMIT + 1)`` stops past the limit, so a line with no end
    (the issue's 500 MB) costs 64 KiB of memory and is refused, in one line,
    as any line over the documented limit is. A text stream without a byte
    buffer (a replaced ``sys.stdin``) is encoded back to the bytes it came from.
    """
    from hera.agent.protocol import FEED_LIMIT  # the agent's limit on one feed, newline included
    from hera.errors import HeraError

    binary = getattr(stream, "buffer", None)
    while True:
        if binary is not None:
            line = binary.readline(FEED_LIMIT + 1)
        else:
            line = stream.readline(FEED_LIMIT + 1).encode("utf-8", "surrogateescape")
        if not line:
            return
        if len(line) > FEED_LIMIT:
            raise HeraError(
                f"standard input: line {fed.lines + 1} is longer than {FEED_LIMIT} bytes; fed {fed} before it",
                hint=f"split it into lines of at most {FEED_LIMIT // 1024} KiB",
            )
        yield line


def _feed_one(client: Any, agent: Any, line: bytes, fed: Fed) -> None:
    """One feed, sent again while the agent is busy and running; refused for good if it is not running."""
    import time

    from hera.agent import protocol
    from hera.errors import HeraError

    wait = BUSY_WAIT[0]
    data = protocol.encode_data(line)
    while True:
        try:
            client.request("feed", data=data)
            return
        except HeraError as exc:
            if not exc.message.removeprefix("agent: ").startswith(protocol.BUSY):
                raise
        state = client.request("status")["state"]
        if state != "running":  # nothing takes input in while it is stopped: waiting would be for ever
            raise HeraError(
                f"{agent.callsign}'s input queue is full and it is {state}: fed {fed} before that",
                hint=f"continue it (hera --uuid {agent.uuid[:8]} signal SIGCONT) and feed the rest",
            )
        time.sleep(wait)
        fed.waited += wait
        wait = min(2 * wait, BUSY_WAIT[1])
