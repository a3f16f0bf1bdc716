"""What the hera shell's rc file runs: settings, the session (aliases, prompt), attaching if asked.

Runs inside xonsh's start, so it imports only what the prompt needs: no
Taichi, numpy or pydantic (the agent client is imported on the first attach).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hera.shell.session import Session


def start(xsh: Any) -> Session:
    import hera.shell

    xsh.env["XONSH_HISTORY_BACKEND"] = "json"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":  # no-color.org; dumb terminals
        xsh.env["COLOR_RESULTS"] = False
        xsh.env["COLOR_INPUT"] = False
    xsh.env["XONSH_SHOW_TRACEBACK"] = False
    xsh.env["COMPLETIONS_CONFIRM"] = True
    xsh.env["XONSH_SUBPROC_CMD_RAISE_ERROR"] = False
    session = Session(xsh)
    session.install(prompt=True)
    xsh.ctx["hera_session"] = session
    from xonsh.events import events

    def restore_environment(**_: Any) -> None:
        for name, value in hera.shell.saved_environment.items():
            if value is None:
                xsh.env.pop(name, None)
                os.environ.pop(name, None)
            else:
                xsh.env[name] = os.environ[name] = value

    # After xonsh has decided on the welcome banner (just before the first prompt), or at once in a script.
    if xsh.env.get("XONSH_INTERACTIVE"):
        events.on_pre_cmdloop(restore_environment)
    else:
        events.on_post_init(restore_environment)

    if hera.shell.attach_on_start:
        uuid, pause = hera.shell.attach_on_start
        hera.shell.attach_on_start = None
        session._attach_cli([uuid, "--force"] + (["--pause"] if pause else []), sys.stdout, sys.stderr)
    return session
