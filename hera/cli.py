"""The one command-line parser, shared by ``hera SUBCOMMAND`` and the shell's aliases.

Global options come before the subcommand, as the product README writes them
(``hera --family abraxas --layout example build``, ``hera --uuid 3f2a down``);
they are accepted after it too. Each subcommand lives in a module of
:mod:`hera.commands` that adds its parser and its run function; this module
only parses, gathers settings, runs, and turns a :class:`HeraError` into one
line on stderr and a non-zero exit.

Must import nothing heavy: no Taichi, numpy or xonsh (a test guards it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from hera import __version__
from hera.errors import HeraError, UsageError

EPILOG = """\
examples:
  hera --family abraxas --layout example build
  hera up 3f2a9c1e-....json
  hera --uuid 3f2a down
  hera families

Settings come from ~/.herarc and ./hera.json (JSON), HERA_* variables and flags;
see docs/config.md. 'hera SUBCOMMAND --help' describes each subcommand."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}", hint=f"see '{self.prog} --help'")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    pass


def global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options that may stand before or after the subcommand.

    After the subcommand they default to SUPPRESS, so they do not overwrite a
    value given before it.
    """
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    group = parser.add_argument_group("global options")
    group.add_argument("--family", metavar="NAME", help="model family to build from", **default)
    group.add_argument("--layout", metavar="NAME", help="layout of the family (default: example)", **default)
    group.add_argument("--uuid", metavar="ID", help="agent by full or partial UUID", **default)
    group.add_argument("--identifier", metavar="ID", help="agent by UUID, prefix or callsign", **default)
    group.add_argument("--callsign", metavar="NAME", help="agent by callsign; for build, the new agent's callsign", **default)
    group.add_argument("--seed", type=int, metavar="N", help="random seed of a new instance", **default)
    group.add_argument("--device", metavar="ID", help="device: auto, cpu, cuda or cuda:N", **default)
    # A string, not a Path: Path("") is ".", and an empty --cache-dir must reach
    # the settings' check as empty instead of quietly naming the working directory.
    group.add_argument("--cache-dir", metavar="DIR", help="where installed agents live", **default)
    # The subcommand's parser fills a namespace of its own that then replaces the
    # top-level values, so its --set list goes to a separate dest, or it would
    # drop every --set given before the subcommand.
    group.add_argument(
        "--set",
        dest="late_assignments" if suppress else "assignments",
        action="append",
        metavar="KEY=VALUE",
        help="override a layout parameter, e.g. --set hidden.width=48 (repeatable)",
        **({"default": argparse.SUPPRESS} if suppress else {"default": []}),
    )


@dataclass
class Context:
    """What a command function gets: the parsed arguments and where to write."""

    args: argparse.Namespace
    workdir: Path = field(default_factory=Path.cwd)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    #: The hera shell this command runs in (None for the one-shot ``hera``).
    shell: Any = None
    _gathered: Any = None

    def settings(self) -> Any:
        """Settings from every source, gathered once (see :mod:`hera.config`)."""
        from hera import config

        if self._gathered is None:
            flags = {
                "family": self.args.family,
                "layout": self.args.layout,
                "seed": self.args.seed,
                "device": self.args.device,
                "cache_dir": self.args.cache_dir,
            }
            if self.args.command == "build":
                flags["callsign"] = self.args.callsign
            params: dict[str, Any] = {}
            assignments = [*(self.args.assignments or []), *(getattr(self.args, "late_assignments", None) or [])]
            for text in assignments:
                from hera.family import deep_merge

                params = deep_merge(params, config.parse_assignment(text))
            if params:
                flags["params"] = params
            self._gathered = config.gather(flags, workdir=self.workdir)
        return self._gathered[0]

    def sources(self) -> Any:
        self.settings()
        return self._gathered[1]


def context(command: str, *, out: TextIO | None = None, err: TextIO | None = None, shell: Any = None, **values: Any) -> Context:
    """A Context for code that runs commands' logic without a command line (shell aliases, completion).

    Every global option starts at the parser's own default, so adding one never
    leaves such callers with a Namespace that lacks it.
    """
    args = build_parser().parse_args([])
    args.command = command
    for name, value in values.items():
        setattr(args, name, value)
    return Context(args, out=sys.stdout if out is None else out, err=sys.stderr if err is None else err, shell=shell)


def build_parser() -> Parser:
    from hera.commands import COMMANDS

    parser = Parser(
        prog="hera",
        description="Build, run and manage long-lived agents whose spiking brains learn while they run.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hera {__version__}")
    global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)
    for module in COMMANDS:
        command = module.add_parser(sub)
        command.formatter_class = HelpFormatter
        global_options(command, suppress=True)
        command.set_defaults(run=module.run)
    return parser


def run(argv: Sequence[str], *, out: TextIO | None = None, err: TextIO | None = None, shell: Any = None) -> int:
    """Parse and run one command line: the one-shot ``hera`` and every shell alias go through here."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = build_parser()
    try:
        if any("\0" in arg for arg in argv):
            # Only the shell's aliases can pass one (exec forbids it); it would reach a
            # system call deep inside a command as a ValueError traceback.
            raise UsageError("an argument contains a NUL byte", hint="remove it and try again")
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version print and "exit"; in the shell that must not end it
            return int(exc.code or 0)
        # --set before and after the subcommand, in order (see global_options).
        args.assignments = [*(args.assignments or []), *(getattr(args, "late_assignments", None) or [])]
        args.late_assignments = []
        if args.command is None:
            parser.print_help(out)
            return 0
        return int(args.run(Context(args, out=out, err=err, shell=shell)) or 0)
    except HeraError as exc:
        print(f"hera: {exc.line()}", file=err)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hera: interrupted", file=err)
        return 130
    except BrokenPipeError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        from hera.shell import main as shell_main

        return shell_main()
    return run(argv)
