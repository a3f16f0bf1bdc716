"""``python -m hera.shell [--attach UUID [--pause]]``: the shell, as controllers start it for a debug prompt."""

import argparse

from hera.shell import main

parser = argparse.ArgumentParser(prog="hera-shell")
parser.add_argument("--attach", metavar="UUID")
parser.add_argument("--pause", action="store_true")
args = parser.parse_args()
raise SystemExit(main(args.attach, pause=args.pause))
