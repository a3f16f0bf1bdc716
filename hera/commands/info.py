"""``hera info``: where hera keeps things, which settings files apply, and versions.

It is where a user looks when settings are wrong, so broken settings (a
malformed ``~/.herarc``, a bad ``HERA_*`` variable) do not stop it as they
stop every other command: the report is printed with the built-in
directories and the problem in it, and then the same one error line as
elsewhere, with a non-zero exit.
"""

from __future__ import annotations

import argparse
from typing import Any

from hera.cli import GLOBAL_OPTIONS

#: Every global option: info reports the settings they resolve to (``hera --cache-dir X info``).
GLOBALS = GLOBAL_OPTIONS
HELP = "show hera's directories, settings files and versions"
EXAMPLE = """\
examples:
  hera info
  hera info --json

When the settings cannot be read (a malformed ~/.herarc, say), the report
says so, shows the built-in directories, and hera exits with the error line
every other command would print."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("info", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def run(ctx: Any) -> int:
    import json
    import platform
    import sys

    from hera import __version__, config
    from hera.cache.paths import Locations
    from hera.errors import HeraError

    problem: HeraError | None = None
    try:
        settings: Any = ctx.settings()
    except HeraError as exc:
        problem, settings = exc, None
    where = Locations.from_settings(settings)
    files = {str(p): p.is_file() for p in (config.home_file(), config.work_file(ctx.workdir))}
    report = {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cache_dir": str(where.cache_dir),
        "system_dir": str(where.system_dir),
        "runtime_dir": str(where.runtime_dir),
        "state_dir": str(where.state_dir),
        "settings_files": files,
        "settings": settings.model_dump(mode="json") if settings is not None else None,
        "settings_error": problem.line() if problem is not None else None,
    }
    if ctx.args.json:
        ctx.out.write(json.dumps(report, indent=2) + "\n")
    else:
        write(ctx.out, report, [] if settings is None else settings.trusted_family_dirs)
    if problem is not None:
        ctx.out.flush()
        raise problem
    return 0


def write(out: Any, report: dict[str, Any], trusted: list[Any]) -> None:
    """The report for people."""
    out.write(f"hera {report['version']} (Python {report['python']}, {report['platform']})\n")
    if report["settings_error"]:
        out.write(f"  settings PROBLEM        {report['settings_error']}\n")
        out.write("  (the directories below are the built-in ones: the settings could not be read)\n")
    out.write(f"  cache (your agents)     {report['cache_dir']}\n")
    out.write(f"  system agents           {report['system_dir']}\n")
    out.write(f"  runtime (pids, sockets) {report['runtime_dir']}\n")
    out.write(f"  state (logs, history)   {report['state_dir']}\n")
    for path, exists in report["settings_files"].items():
        out.write(f"  settings file           {path} ({'found' if exists else 'absent'})\n")
    for folder in trusted:
        out.write(f"  trusted family folder   {folder}\n")
