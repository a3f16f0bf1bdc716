"""The one exception type a user ever sees, and how it is worded.

Every mistake a user can make (a bad flag, a malformed file, an unknown agent)
becomes a :class:`HeraError` whose message is a single line saying what is
wrong, where, and what to do. The command line prints it and exits non-zero;
anything else escaping is a bug in hera and keeps its traceback.

The exit status says which kind of failure it was, so a script can tell
"no such agent" from "that agent is up" without reading the line (the table
is in docs/commands.md):

====  ===========================  ============================================
code  class                        when
====  ===========================  ============================================
1     :class:`HeraError`           anything else (a file that cannot be written,
                                   broken settings, permission denied)
2     :class:`UsageError`          the command line itself is wrong
3     :class:`NotFound`            no such agent, family, layout, device or file
4     :class:`Conflict`            the state forbids it: up, not up, exists
5     :class:`AgentFailed`         the agent itself failed: an error reply, or
                                   its process exited with an error
130   (KeyboardInterrupt)          interrupted (Ctrl-C)
====  ===========================  ============================================
"""

from __future__ import annotations


class HeraError(Exception):
    """A user-facing failure: one line, no traceback, a non-zero exit."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(HeraError):
    """The command line itself is wrong (argparse's exit code)."""

    exit_code = 2


class NotFound(HeraError):
    """An agent, family, layout or file that does not exist."""

    exit_code = 3


class Conflict(HeraError):
    """The request is valid but the current state forbids it (agent running, file exists)."""

    exit_code = 4


class AgentFailed(HeraError):
    """The agent itself failed: its process exited with an error, died, or refused a request."""

    exit_code = 5


def nearest(word: str, choices: list[str] | set[str] | tuple[str, ...], cutoff: float = 0.6) -> str | None:
    """The closest valid spelling of ``word``, to put in a 'did you mean' hint; ``cutoff`` says how close."""
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(word: str, choices: list[str] | set[str] | tuple[str, ...]) -> str:
    guess = nearest(word, choices)
    if guess:
        return f"did you mean {guess!r}?"
    return "valid: " + ", ".join(sorted(choices)) if choices else "none are available"
