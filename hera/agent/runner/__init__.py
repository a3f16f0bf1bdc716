"""The agent's inner loop, in three parts.

* :mod:`~hera.agent.runner.machine`: the state machine (:class:`State`), the
  loop, batches, breakpoints and the pace;
* :mod:`~hera.agent.runner.saver`: the one writer thread for checkpoints,
  autosaves and copies, with the lock for what it shares with the loop;
* :mod:`~hera.agent.runner.handlers`: the control requests, each handed its
  arguments validated by the protocol's models;
* :mod:`~hera.agent.runner.records`: what was fed and answered (counts,
  unread records, which feeder each record goes to) and :class:`Busy`.
"""

from hera.agent.runner.handlers import COPY_PREFIX, LINE_LIMIT, Handlers
from hera.agent.runner.machine import BATCH_SECONDS, INPUT_LIMIT, Breakpoint, Exit, Pacer, Runner, State
from hera.agent.runner.records import RECORD_LIMIT, Book, Busy, NoInput, Sink
from hera.agent.runner.saver import Saver, Writer, save_failure

__all__ = [
    "BATCH_SECONDS",
    "COPY_PREFIX",
    "INPUT_LIMIT",
    "LINE_LIMIT",
    "RECORD_LIMIT",
    "Book",
    "Breakpoint",
    "Busy",
    "Exit",
    "NoInput",
    "Handlers",
    "Pacer",
    "Runner",
    "Saver",
    "Sink",
    "State",
    "Writer",
    "save_failure",
]
