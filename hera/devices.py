"""Compute devices on this host, their capacity, and whether a layout fits.

Never imports Taichi: ``ti.init(arch=ti.gpu)`` segfaults on a machine without
a GPU, and a process that initialised Taichi cannot safely fork agents. GPUs
are found through the NVIDIA driver's own tools; ``probe_taichi`` asks Taichi
itself, but only in a throwaway subprocess.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

from pydantic import BaseModel

from hera import children
from hera.errors import NotFound, did_you_mean
from hera.family import ResourceEstimate


class Device(BaseModel):
    id: str
    kind: str
    name: str
    memory_bytes: int | None = None
    free_bytes: int | None = None
    cores: int | None = None
    driver: str | None = None
    usable: bool = True
    backends: list[str] = []
    note: str | None = None


def cpu() -> Device:
    import psutil

    memory = psutil.virtual_memory()
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Device(
        id="cpu",
        kind="cpu",
        name=name,
        memory_bytes=memory.total,
        free_bytes=memory.available,
        cores=len(os.sched_getaffinity(0)),
        driver=None,
        backends=["cpu"],
    )


def _nvidia_smi() -> list[Device]:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        result = subprocess.run(
            [tool, "--query-gpu=index,name,memory.total,memory.free,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in result.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        index, name, total, free, driver = parts
        mib = 1024 * 1024
        found.append(
            Device(
                id=f"cuda:{index}",
                kind="cuda",
                name=name,
                memory_bytes=int(float(total)) * mib if total.replace(".", "").isdigit() else None,
                free_bytes=int(float(free)) * mib if free.replace(".", "").isdigit() else None,
                driver=driver,
            )
        )
    return found


def _proc_gpus() -> list[Device]:
    """GPUs the kernel driver knows, for when nvidia-smi is missing."""
    root = Path("/proc/driver/nvidia/gpus")
    found = []
    for index, entry in enumerate(sorted(root.glob("*")) if root.is_dir() else []):
        name = "NVIDIA GPU"
        try:
            for line in (entry / "information").read_text().splitlines():
                if line.startswith("Model:"):
                    name = line.split(":", 1)[1].strip()
        except OSError:
            pass
        found.append(Device(id=f"cuda:{index}", kind="cuda", name=name, note="no nvidia-smi: memory unknown"))
    return found


def gpus() -> list[Device]:
    found = _nvidia_smi() or _proc_gpus()
    has_cuda = ctypes.util.find_library("cuda") is not None or Path("/usr/lib/x86_64-linux-gnu/libcuda.so.1").exists()
    has_vulkan = ctypes.util.find_library("vulkan") is not None
    for device in found:
        device.backends = (["cuda"] if has_cuda else []) + (["vulkan"] if has_vulkan else [])
        device.usable = bool(device.backends)
        if not device.usable:
            device.note = "no CUDA or Vulkan driver library found"
    return found


def all_devices() -> list[Device]:
    return [cpu(), *gpus()]


def find(device_id: str, devices: list[Device] | None = None) -> Device:
    """Resolve ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` to a device on this host."""
    devices = all_devices() if devices is None else devices
    if device_id == "auto":
        return next((d for d in devices if d.kind == "cuda" and d.usable), devices[0])
    if device_id == "cuda":
        device_id = "cuda:0"
    for device in devices:
        if device.id == device_id:
            return device
    raise NotFound(f"no device {device_id!r} on this host", hint=did_you_mean(device_id, [d.id for d in devices] + ["auto"]))


def fits(estimate: ResourceEstimate, device: Device, host: Device | None = None) -> bool | None:
    """Whether a layout fits now: None when the device's free memory is unknown."""
    if device.kind == "cpu":
        need = estimate.device_bytes + estimate.host_bytes
        return None if device.free_bytes is None else need <= device.free_bytes
    if device.free_bytes is None:
        return None
    host_ok = host is None or host.free_bytes is None or estimate.host_bytes <= host.free_bytes
    return estimate.device_bytes <= device.free_bytes and host_ok


#: Asks Taichi for one backend and says which it got. Taichi falls back to the CPU when a GPU
#: backend fails, so the answer is whether the arch it runs on is the one asked for: compared as
#: Taichi's own values, because ``ti.cpu`` is the host's arch (``Arch.x64``, ``Arch.arm64``), whose
#: name never contains "cpu" (reading it as a name made every probe say the CPU was unusable).
_PROBE = """
import json, sys
import taichi as ti
arch = getattr(ti, sys.argv[1])
ti.init(arch=arch, offline_cache=False, log_level=ti.ERROR)
got = ti.lang.impl.current_cfg().arch
print(json.dumps({"arch": str(got), "ok": got == arch}))
"""


def probe_taichi(backend: str, timeout: float = 60.0) -> bool:
    """Whether Taichi really initialises ``backend`` here, asked in a throwaway process."""
    try:
        result = subprocess.run(
            children.python("-c", _PROBE, backend), capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if result.returncode != 0:
        return False
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])["ok"] is True
    except (ValueError, KeyError, IndexError, TypeError):
        return False
