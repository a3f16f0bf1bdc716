"""``hera info``: where hera keeps things, which settings files apply, and versions."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "show hera's directories, settings files and versions"
EXAMPLE = """\
examples:
  hera info
  hera info --json"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("info", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def run(ctx: Any) -> int:
    import json
    import platform
    import sys

    from hera import __version__, config
    from hera.commands import target

    where = target.locations(ctx)
    settings = ctx.settings()
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
        "settings": settings.model_dump(mode="json"),
    }
    if ctx.args.json:
        ctx.out.write(json.dumps(report, indent=2) + "\n")
        return 0
    out = ctx.out
    out.write(f"hera {__version__} (Python {report['python']}, {report['platform']})\n")
    out.write(f"  cache (your agents)     {where.cache_dir}\n")
    out.write(f"  system agents           {where.system_dir}\n")
    out.write(f"  runtime (pids, sockets) {where.runtime_dir}\n")
    out.write(f"  state (logs, history)   {where.state_dir}\n")
    for path, exists in files.items():
        out.write(f"  settings file           {path} ({'found' if exists else 'absent'})\n")
    for folder in settings.trusted_family_dirs:
        out.write(f"  trusted family folder   {folder}\n")
    return 0
