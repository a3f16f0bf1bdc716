"""The agent's inner loop, in three parts.

* :mod:`~hera.agent.runner.machine`: the state machine (:class:`State`), the
  loop, batches, breakpoints and the pace;
* :mod:`~hera.agent.runner.saver`: the one writer thread for checkpoints,
  autosaves and copies, with the lock for what it shares with the loop;
* :mod:`~hera.agent.runner.handlers`: the control requests, each handed its
  arguments validated by the protocol's models.
"""

from hera.agent.runner.handlers import COPY_PREFIX, INPUT_LIMIT, LINE_LIMIT, Handlers
from hera.agent.runner.machine import BATCH_SECONDS, Breakpoint, Exit, Pacer, Runner, State
from hera.agent.runner.saver import Saver, Writer, save_failure

__all__ = [
    "BATCH_SECONDS",
    "COPY_PREFIX",
    "INPUT_LIMIT",
    "LINE_LIMIT",
    "Breakpoint",
    "Exit",
    "Handlers",
    "Pacer",
    "Runner",
    "Saver",
    "State",
    "Writer",
    "save_failure",
]
