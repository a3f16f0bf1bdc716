"""The one command-line parser, shared by ``hera SUBCOMMAND`` and the shell's aliases.

Global options come before the subcommand, as the product README writes them
(``hera --family abraxas --layout example build``, ``hera --uuid 3f2a down``);
they are accepted after it too. A command module's ``GLOBALS`` names the
global options it takes: only those appear in its ``--help``, and any other
given before it is a usage error, not a flag silently ignored (a module
without ``GLOBALS`` takes them all). Each subcommand lives in a module of
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
'hera' alone, with no subcommand, opens the hera shell: these commands as
aliases, beside full Python and 'agent', the attached agent.

examples:
  hera --family abraxas --layout example build
  hera up 3f2a9c1e-....json
  hera down 3f2a                 # an agent by UUID prefix or callsign
  hera families

Settings come from ~/.herarc and ./hera.json (JSON), HERA_* variables and flags;
see docs/config.md. 'hera SUBCOMMAND --help' describes each subcommand and the
global options it takes.

exit status: 0 done, 1 failed, 2 usage, 3 not found, 4 wrong state (up, not
up, exists), 5 the agent itself failed, 130 interrupted."""

#: The global options of a command that names one installed agent (``--cache-dir`` says where they live).
AGENT_OPTIONS = ("uuid", "identifier", "callsign", "cache_dir", "cluster")
#: Every global option, by its destination; a command module's ``GLOBALS`` names those it takes.
GLOBAL_OPTIONS = ("family", "layout", "uuid", "identifier", "callsign", "seed", "device", "cache_dir", "cluster", "set")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}", hint=f"see '{self.prog} --help'")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    pass


def global_options(parser: argparse.ArgumentParser, *, suppress: bool, only: Sequence[str] = GLOBAL_OPTIONS) -> None:
    """Options that may stand before or after the subcommand; ``only`` those a command takes.

    After the subcommand they default to SUPPRESS, so they do not overwrite a
    value given before it. A subcommand's parser adds only the options its
    module declares in ``GLOBALS``, so its ``--help`` lists what it uses.
    """
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    group = parser.add_argument_group("global options")
    described = {
        "family": ("--family", "NAME", "model family to build from"),
        "layout": ("--layout", "NAME", "layout of the family (default: example)"),
        "uuid": ("--uuid", "ID", "agent by full or partial UUID"),
        "identifier": ("--identifier", "ID", "agent by UUID, prefix or callsign"),
        "callsign": ("--callsign", "NAME", "agent by callsign or its prefix; for build, the new agent's callsign"),
        "device": ("--device", "ID", "device: auto, cpu, cuda or cuda:N"),
        # A string, not a Path: Path("") is ".", and an empty --cache-dir must reach
        # the settings' check as empty instead of quietly naming the working directory.
        "cache_dir": ("--cache-dir", "DIR", "where installed agents live"),
        "cluster": ("--cluster", "ADDRESS", "a Ray cluster (host:port) whose nodes run the agents (docs/cluster.md)"),
    }
    for name in GLOBAL_OPTIONS:
        if name not in only:
            continue
        if name == "seed":
            group.add_argument("--seed", type=int, metavar="N", help="random seed of a new instance", **default)
        elif name == "set":
            # The subcommand's parser fills a namespace of its own that then replaces the
            # top-level values, so its --set list goes to a separate dest, or it would
            # drop every --set given before the subcommand.
            group.add_argument(
                "--set",
                dest="late_assignments" if suppress else "assignments",
                action="append",
                metavar="KEY=VALUE",
                help="override a layout parameter, e.g. --set hidden.width=48 (repeatable)",
                default=argparse.SUPPRESS if suppress else [],
            )
        else:
            flag, metavar, text = described[name]
            group.add_argument(flag, metavar=metavar, help=text, **default)


def agent_argument(parser: argparse.ArgumentParser, what: str = "the agent") -> None:
    """The optional positional that names an agent, as docker and systemctl take one.

    A path that exists is an instance file (the agent it is); anything else is
    a UUID, a prefix of one, or a callsign (see :func:`hera.commands.target.positional`).
    """
    parser.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="AGENT",
        help=f"{what}: an instance file (a path that exists), or a UUID, prefix or callsign",
    )


def refuse_unused(args: argparse.Namespace, module: Any) -> None:
    """A global option given before a subcommand that does not take it is a usage error, not ignored.

    ``hera --seed 3 families`` would otherwise look as if it did something.
    """
    taken = getattr(module, "GLOBALS", GLOBAL_OPTIONS)
    for name in GLOBAL_OPTIONS:
        if name in taken:
            continue
        value = args.assignments if name == "set" else getattr(args, name, None)
        if value:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{args.command} does not take {flag}", hint=f"see 'hera {args.command} --help'")


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
            if getattr(self.args, "cluster", None) is not None:
                flags["cluster"] = self.args.cluster
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
        global_options(command, suppress=True, only=getattr(module, "GLOBALS", GLOBAL_OPTIONS))
        command.set_defaults(run=module.run, module=module)
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
        if args.command is not None:
            refuse_unused(args, args.module)
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
