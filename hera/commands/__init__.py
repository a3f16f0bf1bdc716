"""One module per subcommand: ``add_parser(subparsers)`` and ``run(ctx) -> exit code``.

The one-shot ``hera`` and the shell's aliases both go through these. Modules
import only what their parser needs at the top; what their run needs is
imported inside it, so ``hera --help`` stays fast.
"""

from hera.commands import (
    agents,
    build,
    checkpoint,
    copy,
    destroy,
    devices,
    down,
    families,
    grow,
    info,
    inspect,
    install,
    layouts,
    logs,
    pace,
    signal,
    uninstall,
    up,
)

COMMANDS = [build, install, up, down, signal, pace, agents, inspect, logs, checkpoint, copy, grow, uninstall, destroy, families, layouts, devices, info]
