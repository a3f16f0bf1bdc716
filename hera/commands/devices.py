"""``hera devices``: every compute device on the host, usable or not."""

from __future__ import annotations

import argparse
from typing import Any

GLOBALS: tuple[str, ...] = ()
HELP = "list compute devices on this host"
EXAMPLE = """\
examples:
  hera devices
  hera devices --probe --json

Lists the CPU and every GPU the NVIDIA driver reports, with memory and which
Taichi backends can run there. GPUs are found through the driver's tools;
--probe also starts Taichi on each backend in a throwaway process to confirm
it (slower, never in this process: a failed GPU probe can crash)."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("devices", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("--probe", action="store_true", help="confirm each backend by starting Taichi in a subprocess")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def run(ctx: Any) -> int:
    from hera import devices
    from hera.table import emit, human_bytes

    ctx.settings()  # broken settings are one line here as everywhere ('hera info' shows them in full)
    found = devices.all_devices()
    if ctx.args.probe:
        for device in found:
            confirmed = [b for b in device.backends if devices.probe_taichi(b)]
            if confirmed != device.backends:
                device.note = f"taichi could not start: {', '.join(set(device.backends) - set(confirmed))}"
            device.backends = confirmed
            device.usable = bool(confirmed)
    rows = [d.model_dump() for d in found]
    if ctx.args.json:
        emit(ctx.out, rows, [], True)
        return 0
    shown = [
        row
        | {
            "memory_bytes": human_bytes(row["memory_bytes"]),
            "free_bytes": human_bytes(row["free_bytes"]),
            "backends": ", ".join(row["backends"]) or "none",
            "usable": "yes" if row["usable"] else "no",
        }
        for row in rows
    ]
    columns = [
        ("id", "ID"),
        ("name", "NAME"),
        ("cores", "CORES"),
        ("memory_bytes", "MEMORY"),
        ("free_bytes", "FREE"),
        ("driver", "DRIVER"),
        ("backends", "TAICHI BACKENDS"),
        ("usable", "USABLE"),
        ("note", "NOTE"),
    ]
    emit(ctx.out, shown, columns, False)
    return 0
