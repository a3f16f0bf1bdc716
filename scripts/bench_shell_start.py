#!/usr/bin/env python3
"""How long ``hera`` (no subcommand) takes to show its prompt in a terminal.

Starts the shell in a fresh pseudo-terminal (the way a user's terminal starts
it: TERM=xterm-256color, so xonsh picks prompt_toolkit, with highlighting and
the status line), and times from the launch to the moment ``hera>`` is on the
screen; then types ``exit``. Beside it, in the same run and alternating with
it, ``xonsh --no-rc`` to its prompt (the floor hera's shell stands on) and
``python -c pass`` (starting Python at all). Median of ``--repeat`` runs each,
in a throwaway HOME, so no user's history or rc file counts.

    python scripts/bench_shell_start.py --repeat 11
    python scripts/bench_shell_start.py --json

Needs pexpect (``pip install -e .[test]``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

#: Escape sequences a terminal would interpret: CSI, OSC (ended by BEL or ST), and two-byte escapes.
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


#: prompt_toolkit asks the terminal where the cursor is; a real terminal answers at once.
CPR_REQUEST = "\x1b[6n"


def executable(name: str) -> list[str]:
    """The console script beside this Python (what a user types), else ``python -m name``."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", name]


def to_prompt(argv: list[str], prompt: str, env: dict[str, str], cwd: Path, timeout: float) -> float:
    """Seconds from launching ``argv`` in a new pty until ``prompt`` is on its screen."""
    import pexpect

    start = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(cwd), encoding="utf-8", dimensions=(40, 120))
    seen = ""
    try:
        while prompt not in ANSI.sub("", seen):
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{' '.join(argv)}: no {prompt!r} in {timeout} s; the screen said {seen[-300:]!r}")
            chunk = child.read_nonblocking(65536, timeout=timeout)
            if CPR_REQUEST in chunk:  # answer as a terminal does, or prompt_toolkit warns and waits
                child.send("\x1b[1;1R" * chunk.count(CPR_REQUEST))
            seen += chunk
        elapsed = time.perf_counter() - start
        child.sendline("exit")
        child.expect(pexpect.EOF, timeout=timeout)
    finally:
        child.close(force=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=11, help="runs of each (default 11)")
    parser.add_argument("--term", default="xterm-256color", help="TERM for the shells (default xterm-256color)")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    try:
        import pexpect  # noqa: F401
    except ImportError:
        print("bench_shell_start: needs pexpect (pip install -e .[test])", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hera-bench-shell-") as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HERA_", "XDG_", "XONSH"))}
        env |= {"HOME": str(home), "TERM": args.term, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        shells = {
            "hera": (executable("hera"), "hera>"),
            "xonsh --no-rc": ([*executable("xonsh"), "--no-rc", "-DPROMPT=xonsh> "], "xonsh>"),
            "python -c pass": ([sys.executable, "-c", "print('ready>')"], "ready>"),
        }
        for argv, prompt in shells.values():  # one untimed run each: byte-code and page caches warm
            to_prompt(argv, prompt, env, home, args.timeout)
        times: dict[str, list[float]] = {name: [] for name in shells}
        for _ in range(args.repeat):
            for name, (argv, prompt) in shells.items():
                times[name].append(to_prompt(argv, prompt, env, home, args.timeout))
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "term": args.term,
        "repeat": args.repeat,
        "median_s": {name: round(statistics.median(ts), 3) for name, ts in times.items()},
        "min_s": {name: round(min(ts), 3) for name, ts in times.items()},
        "max_s": {name: round(max(ts), 3) for name, ts in times.items()},
        "hera": shutil.which("hera") or " ".join(executable("hera")),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['date']}  {result['machine']}  TERM={args.term}  load {result['load_average']}")
    print(f"time from launch to prompt, median of {args.repeat} (min-max):")
    for name in shells:
        print(f"  {name:<16} {result['median_s'][name]:.3f} s  ({result['min_s'][name]:.3f}-{result['max_s'][name]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
