"""Terminals for tests: hera (the shell, or a foreground ``hera up``) in a real pseudo-terminal, driven by pexpect.

Not a test module. The terminal tests (``test_shell.py``,
``test_terminal_model.py``) import from it:

* :class:`Terminal` runs ``hera ARGS`` in a pty of its own: ``wait``,
  ``wait_prompt``, ``run`` (a line at the hera shell's prompt), ``state``
  (what the prompt says), ``exit``, ``hang_up`` (the terminal closes).
* :func:`opened_terminals`, the body of a module's ``terminals`` fixture:
  the terminals a test opened, killed at its end whatever happened;
  :func:`open_terminal` opens one into it.
* :func:`agents_json` (``hera agents --json`` by callsign), :func:`number`.

Most terminals run with ``TERM=dumb``: xonsh then uses its readline shell
and hera prints no colours, so the screen is plain text.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator

import pytest

from herakit import World

pexpect = pytest.importorskip("pexpect")

#: Long enough for a loaded 2-core machine to start Python, xonsh and an agent; short enough that a hang fails.
TIMEOUT = 60
#: Terminal escape sequences: CSI, OSC (ended by BEL or ST), two-byte escapes.
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
#: The hera shell's prompt: ``hera> ``, or ``hera CALLSIGN[STATE @ITERATION]> `` while attached.
PROMPT = re.compile(r"hera(?: (?P<callsign>[\w-]+)\[(?P<state>\w+)(?: @(?P<iteration>\d+))?\])?> ")


def plain(text: str) -> str:
    """What a terminal would show of ``text``: no escape sequences, ``\\n`` line ends."""
    return ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "")


class Terminal:
    """One terminal with hera running in it: type lines and keys, read what comes back."""

    def __init__(self, world: World, *args: str, term: str = "dumb", program: list[str] | None = None) -> None:
        argv = program or [sys.executable, "-m", "hera", *args]
        env = dict(world.env, TERM=term)
        self.child = pexpect.spawn(
            argv[0], argv[1:], env=env, cwd=str(world.workdir), encoding="utf-8", timeout=TIMEOUT, dimensions=(50, 200)
        )
        self.prompt: re.Match[str] | None = None

    def wait_prompt(self) -> str:
        """Wait for the next prompt; return what came before it, as plain text."""
        self.child.expect(PROMPT)
        self.prompt = PROMPT.search(self.child.after)
        return plain(self.child.before)

    def wait(self, pattern: str) -> re.Match[str]:
        """Wait for ``pattern`` (a regular expression) on the screen; the match."""
        self.child.expect(pattern)
        return self.child.match

    def run(self, line: str) -> str:
        """Type ``line`` and Enter at the prompt; what it printed (the echoed line left out)."""
        self.child.sendline(line)
        out = self.wait_prompt()
        echoed, _, rest = out.partition("\n")
        assert line[:20] in echoed, f"{line!r} was not echoed: {out!r}"
        return rest.strip()

    @property
    def state(self) -> tuple[str | None, str | None, int | None]:
        """(callsign, state, iteration) in the last prompt; all None when no agent is attached."""
        assert self.prompt is not None
        iteration = self.prompt["iteration"]
        return self.prompt["callsign"], self.prompt["state"], int(iteration) if iteration else None

    def exit(self, how: str = "exit") -> int:
        """Leave the shell (``exit``, or ``eof`` for Ctrl-D); its exit status."""
        if how == "eof":
            self.child.sendeof()
        else:
            self.child.sendline("exit")
        self.child.expect(pexpect.EOF)
        self.child.close()
        return self.child.exitstatus

    def hang_up(self) -> int:
        """Close the terminal, as its window closes (the kernel hangs up on hera); hera's exit status (-N: signal N)."""
        self.child.ptyproc.fileobj.close()  # the master side
        _, status = os.waitpid(self.child.pid, 0)
        self.child.ptyproc.closed = self.child.ptyproc.terminated = True
        return os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        if self.child.isalive():
            self.child.close(force=True)


def opened_terminals() -> Iterator[list[Terminal]]:
    """The body of a module's ``terminals`` fixture: the terminals a test opens, killed at its end whatever happened."""
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def open_terminal(world: World, terminals: list[Terminal], *args: str, **options: object) -> Terminal:
    terminal = Terminal(world, *args, **options)  # type: ignore[arg-type]
    terminals.append(terminal)
    return terminal


def agents_json(world: World) -> dict[str, dict]:
    """``hera agents --json`` by callsign."""
    result = world("agents", "--json", check=True)
    return {row["callsign"]: row for row in json.loads(result.out)}


def number(text: str) -> int:
    """The integer a Python expression printed."""
    assert re.fullmatch(r"\d+", text), f"expected a number, got {text!r}"
    return int(text)
