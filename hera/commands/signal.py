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

SIGTTIN pipes this command's standard input into the agent's input area:
bytes as they are, in chunks of at most ``FEED_LIMIT`` (base64 on the wire),
no line splitting and no pacing: the agent's own pace sets the speed. While
its input queue is full it answers busy, and this command waits and sends the
chunk again: nothing is dropped, and the controller holds one chunk. A paused
agent takes no input in, so then the command stops with one line saying how
much went in. SIGTTOU writes what its output area produced for the units it
was fed: on a terminal as text with control bytes escaped, raw bytes with
``--raw`` (or when standard output is not a terminal), one JSON record per
presented unit with ``--jsonl``. Both pass through the control plane and never
block the inner loop; the client side is :mod:`hera.streams`, which the
shell's ``agent.feed`` / ``agent.read`` share.

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
    "SIGTTIN": "pipe standard input, as bytes, into the input area",
    "SIGTTOU": "pipe the output area's output to standard output",
}
GLOBALS = AGENT_OPTIONS
HELP = "send one of the spec's signals to an agent"
EXAMPLE = "signals:\n" + "\n".join(f"  {name:<8} {what}" for name, what in TABLE.items()) + """

examples:
  hera --uuid 3f2a signal SIGTERM
  hera signal SIGTSTP brisk-otter         # the agent after the signal's name
  hera --uuid 3f2a signal SIGTTIN < corpus.bin
  hera --uuid 3f2a signal SIGTTOU --follow
  hera --uuid 3f2a signal SIGTTOU --jsonl > records.jsonl

Piped input goes in as bytes, any bytes, at the agent's own pace: while its
input queue (1 MiB) is full, hera waits for it to take some in. Output on a
terminal is text with control bytes escaped (\\xNN); --raw writes the bytes
as they are; --jsonl writes one record per unit presented:
{"iteration": N, "unit": BYTE, "output": BYTE or null}."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("signal", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("name", metavar="NAME", help="signal name, e.g. SIGTERM (the SIG prefix is optional)")
    agent_argument(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="with SIGTTOU: keep writing output until Ctrl-C or the agent goes down")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--raw", action="store_true", help="with SIGTTOU: the output bytes as they are, even on a terminal")
    form.add_argument("--jsonl", action="store_true", help="with SIGTTOU: one JSON record per unit presented")
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

    from hera import children
    from hera.commands import target
    from hera.errors import UsageError

    name = canonical(ctx.args.name)
    given = [flag for flag in ("follow", "raw", "jsonl") if getattr(ctx.args, flag)]
    if given and name != "SIGTTOU":
        raise UsageError(f"--{given[0]} is for SIGTTOU, not {name}", hint="hera --uuid X signal SIGTTOU --" + given[0])
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
            if ctx.settings().cluster is not None:  # the shell finds the agent where this command did
                os.environ["HERA_CLUSTER"] = ctx.settings().cluster
            os.execv(sys.executable, children.python("-m", "hera.shell", "--attach", agent.uuid))
        return 0
    if name == "SIGTTIN":
        manager.signal(signals.SIGTTIN)
        feed(ctx, manager)
        return 0
    if name == "SIGTTOU":
        manager.signal(signals.SIGTTOU)
        read(ctx, manager)
        return 0
    pid = manager.signal(getattr(signals, name))
    ctx.out.write(f"sent {name} to {agent.callsign} (pid {pid})\n")
    return 0


# -- SIGTTIN and SIGTTOU --------------------------------------------------------------------------


def feed(ctx: Any, manager: Any) -> None:
    """Standard input into the agent, chunk by chunk, waiting while it is busy; says how much went in."""
    import sys

    from hera import streams

    fed = streams.Fed(manager.agent.callsign)
    progress = streams.Progress(ctx.err, streams.total_size(sys.stdin)) if streams.is_terminal(ctx.err) else None
    try:
        with manager.client() as client:
            streams.feed(client, streams.chunks(sys.stdin), fed, progress)
    except KeyboardInterrupt:
        if progress is not None:
            progress.clear()
        ctx.err.write(f"{fed.summary()} before the interrupt\n")
        raise
    finally:
        if progress is not None:
            progress.clear()
    ctx.err.write(fed.summary() + "\n")


def read(ctx: Any, manager: Any) -> None:
    """What the output area produced, in the form asked for; with ``--follow`` until Ctrl-C or the agent goes down.

    Following ends as ``docker logs --follow`` does when its container
    stops: one line saying so, exit status 0. What the agent presented and
    nobody read yet is saved with it and read after the next up.
    """
    import time

    from hera import streams
    from hera.agent import protocol
    from hera.manager.client import AgentGone

    jsonl, follow = ctx.args.jsonl, ctx.args.follow
    # Raw into a pipe or a file (and where the stream has no bytes under it, escaped after all).
    binary = getattr(ctx.out, "buffer", None) if ctx.args.raw or not streams.is_terminal(ctx.out) else None
    escape = streams.Escaper()
    with manager.client() as client:
        try:
            while True:
                for reply in streams.reads(client):
                    if reply["dropped"]:
                        ctx.err.write(f"hera: {reply['dropped']:,} unread record(s) were dropped before this read\n")
                    if jsonl:
                        ctx.out.write(protocol.record_lines(reply["records"]))
                    elif binary is not None:
                        ctx.out.flush()
                        binary.write(streams.output(reply))
                        binary.flush()
                    else:
                        ctx.out.write(escape(streams.output(reply)))
                    ctx.out.flush()
                if not follow:
                    break
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        except AgentGone:
            if not follow:
                raise
            ctx.err.write(f"{manager.agent.callsign} went down; no more output until it is up again\n")
    if binary is None and not jsonl:
        ctx.out.write(escape(b"", final=True))
        ctx.out.flush()
