"""The hera shell: xonsh with hera's commands as aliases beside full Python.

``hera`` with no subcommand starts it; ``hera up FILE --interactive`` and
Ctrl-Z on a foreground agent start it attached. It runs xonsh with hera's own
rc file, its history in hera's state directory, and xontrib autoloading off
(a fast, predictable start). Taichi is never imported here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

RC = Path(__file__).with_name("rc.xsh")


def main(attach: str | None = None, *, pause: bool = False) -> int:
    """Run the shell in this process until the user leaves it; return its exit status."""
    import platformdirs

    history = Path(platformdirs.user_state_dir("hera")) / "shell"
    history.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XONSH_DATA_DIR", str(history))
    os.environ["XONTRIBS_AUTOLOAD_DISABLED"] = "1"
    os.environ["XONSH_SUPPRESS_WELCOME"] = "1"
    if attach:
        os.environ["HERA_SHELL_ATTACH"] = attach + (":pause" if pause else "")
    else:
        os.environ.pop("HERA_SHELL_ATTACH", None)
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
