"""``hera layouts``: every family's layouts, their resource estimates, and whether each fits a device."""

from __future__ import annotations

import argparse
from typing import Any

GLOBALS = ("family", "device", "set")
HELP = "list layouts with their resource estimates"
EXAMPLE = """\
examples:
  hera layouts
  hera layouts --device cpu
  hera --family abraxas layouts --fits

DEVICE MEM is what the brain needs on the device, HOST MEM in host memory
beside it, FILE the size of a learned instance file. FITS compares with the
device's free memory now (default device: the first usable GPU, else the CPU)."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("layouts", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("--fits", action="store_true", help="only layouts that fit the device")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def run(ctx: Any) -> int:
    from hera import config, devices
    from hera.errors import HeraError
    from hera.family import survey
    from hera.table import emit, human_bytes

    settings = ctx.settings()
    device = devices.find(settings.device)
    host = devices.cpu() if device.kind != "cpu" else None
    found = survey(ctx.workdir)
    entries = found.entries
    if settings.family is not None and settings.family not in entries:
        found.get(settings.family)  # raises: not installed, or in a folder hera does not trust
    rows: list[dict[str, Any]] = []
    for name, entry in sorted(entries.items()):
        if entry.family is None or (settings.family is not None and name != settings.family):
            continue
        overrides = config.param_overrides(name, ctx.sources())
        for layout in entry.family.layouts:
            try:
                estimate = entry.family.estimate(entry.family.resolve(layout, overrides))
            except HeraError as exc:
                ctx.err.write(f"hera: {exc.line()}\n")
                continue
            fit = devices.fits(estimate, device, host)
            if ctx.args.fits and fit is not True:
                continue
            rows.append(
                {
                    "family": name,
                    "layout": layout,
                    "neurons": estimate.neurons,
                    "synapses": estimate.synapses,
                    "device_bytes": estimate.device_bytes,
                    "host_bytes": estimate.host_bytes,
                    "file_bytes": estimate.file_bytes,
                    "device": device.id,
                    "fits": fit,
                }
            )
    if ctx.args.json:
        emit(ctx.out, rows, [], True)
        return 0
    shown = [
        row
        | {
            "neurons": f"{row['neurons']:,}",
            "synapses": f"{row['synapses']:,}",
            "device_bytes": human_bytes(row["device_bytes"]),
            "host_bytes": human_bytes(row["host_bytes"]),
            "file_bytes": human_bytes(row["file_bytes"]),
            "fits": {True: "yes", False: "no", None: "unknown"}[row["fits"]],
        }
        for row in rows
    ]
    columns = [
        ("family", "FAMILY"),
        ("layout", "LAYOUT"),
        ("neurons", "NEURONS"),
        ("synapses", "SYNAPSES"),
        ("device_bytes", "DEVICE MEM"),
        ("host_bytes", "HOST MEM"),
        ("file_bytes", "FILE"),
        ("fits", f"FITS {device.id}"),
    ]
    emit(ctx.out, shown, columns, False)
    return 0
