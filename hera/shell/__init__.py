"""The hera shell: xonsh with hera's commands as aliases beside full Python.

``hera`` with no subcommand starts it; ``hera up FILE --interactive``, Ctrl-Z
on a foreground agent and ``hera signal SIGSTOP`` in a terminal start it
attached. It runs xonsh with hera's own rc file (not the user's xonshrc), its
history in hera's state directory, and xontrib autoloading off: a fast,
predictable start. Starting it imports no Taichi, numpy or pydantic (a test
guards it); see docs/shell.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

RC = Path(__file__).with_name("rc.xsh")
#: Set for xonsh's start only (no autoloaded xontribs, no welcome banner), then put back as they
#: were, so a ``xonsh`` run from the hera shell behaves as the user's own.
STARTUP_ONLY = ("XONTRIBS_AUTOLOAD_DISABLED", "XONSH_SUPPRESS_WELCOME")
saved_environment: dict[str, str | None] = {}
#: (agent, pause) for the rc to attach once the session is up; set by :func:`main`.
attach_on_start: tuple[str, bool] | None = None


def shell_dir() -> Path:
    """Where the hera shell keeps its history (``history_json/``) and xonsh's caches."""
    import platformdirs

    return Path(platformdirs.user_state_dir("hera")) / "shell"


def main(attach: str | None = None, *, pause: bool = False) -> int:
    """Run the shell in this process until the user leaves it; return its exit status."""
    global attach_on_start
    data_dir = shell_dir()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # History (history_json/) and xonsh's caches: hera's, whatever the user's own xonsh uses.
    os.environ["XONSH_DATA_DIR"] = str(data_dir)
    for name in STARTUP_ONLY:  # the user's own values come back once the shell is up (start.py)
        saved_environment[name] = os.environ.get(name)
        os.environ[name] = "1"
    # Read by the rc (start.py) in this very process: an environment variable would leak into
    # every command the shell runs, and hera refuses HERA_* variables it does not know.
    attach_on_start = (attach, pause) if attach else None
    from xonsh.main import main as xonsh_main

    shell_type = "prompt_toolkit" if sys.stdin.isatty() else "readline"
    argv = ["--rc", str(RC), "--shell-type", shell_type]
    if not sys.stdin.isatty():
        argv.append("--no-script-cache")
    try:
        xonsh_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0
