"""What the hera shell's rc file runs: install the session, attach if asked."""

from __future__ import annotations

import os
import sys
from typing import Any

from hera.shell.session import Session


def start(xsh: Any) -> Session:
    xsh.env["XONSH_HISTORY_BACKEND"] = "json"
    xsh.env["XONSH_SHOW_TRACEBACK"] = False
    xsh.env["COMPLETIONS_CONFIRM"] = True
    xsh.env["XONSH_SUBPROC_CMD_RAISE_ERROR"] = False
    session = Session(xsh)
    session.install(prompt=True)
    xsh.ctx["hera_session"] = session
    wanted = os.environ.pop("HERA_SHELL_ATTACH", None)
    if wanted:
        uuid, _, flag = wanted.partition(":")
        args = [uuid] + (["--pause"] if flag == "pause" else []) + ["--force"]
        session._attach_cli(args, sys.stdout, sys.stderr)
    return session
