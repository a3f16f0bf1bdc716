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

Lists the CPU and every GPU the NVIDIA driver's NVML library reports, numbered
as nvidia-smi numbers them (PCI bus order): that number is the N of
--device cuda:N. For each GPU: memory, driver and CUDA versions, UUID and PCI
bus id. --probe also starts Taichi in a throwaway process per device, a GPU's
seeing that GPU alone, and runs one kernel there; a device Taichi cannot start
on is shown unusable with Taichi's reason (slower; never in this process, as
a failed GPU start can crash it)."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("devices", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("--probe", action="store_true", help="start Taichi on each device in a throwaway process; say why where it cannot")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def run(ctx: Any) -> int:
    from hera import devices
    from hera.table import emit, human_bytes

    ctx.settings()  # broken settings are one line here as everywhere ('hera info' shows them in full)
    found, why_none = devices.discover()
    found = [devices.cpu(), *found]
    if ctx.args.probe:
        for device in found:
            if not device.usable:
                continue  # NVML could not read it: that reason stands
            env = devices.child_env(device.id) if device.kind == "cuda" else None
            backend = "cuda" if device.kind == "cuda" else "cpu"
            ok, reason = devices.probe_taichi(backend, env)
            if not ok:
                device.usable, device.backends, device.note = False, [], f"Taichi cannot start here: {reason}"
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
        ("cuda_driver", "CUDA"),
        ("pci_bus_id", "PCI BUS"),
        ("backends", "TAICHI BACKENDS"),
        ("usable", "USABLE"),
        ("note", "NOTE"),
    ]
    emit(ctx.out, shown, columns, False)
    if len(found) == 1:
        ctx.out.write(why_none + "\n")
    return 0
