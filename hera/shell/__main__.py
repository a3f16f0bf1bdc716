"""``python -m hera.shell [--attach UUID [--pause]]``: the shell, as controllers start it for a debug prompt.

The foreground controller ignores Ctrl-C and Ctrl-Z while its debug prompt is
open, and a child inherits ignored signals: put them back, or Ctrl-C could
not interrupt a long ``agent.step(N)`` here.
"""

import argparse
import signal

from hera.shell import main

signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTSTP, signal.SIG_DFL)
parser = argparse.ArgumentParser(prog="hera-shell")
parser.add_argument("--attach", metavar="UUID")
parser.add_argument("--pause", action="store_true")
args = parser.parse_args()
raise SystemExit(main(args.attach, pause=args.pause))
