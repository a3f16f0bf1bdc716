"""Compute devices on this host, their capacity, and whether a layout fits.

Never imports Taichi: ``ti.init(arch=ti.gpu)`` segfaults on a machine without
a GPU, and a process that initialised Taichi cannot safely fork agents.

GPUs are NVML's, the NVIDIA driver's own library (``nvidia-ml-py``, imported
only when GPUs are asked for, so the one-shot commands stay light): name,
memory, driver and CUDA versions, UUID and PCI bus id, with no tool's output
parsed and no library path guessed. NVML numbers GPUs as nvidia-smi does (PCI
bus order), and that number is hera's ``cuda:N``. An agent on ``cuda:N`` is
started with ``CUDA_VISIBLE_DEVICES`` set to that GPU's UUID (see
:func:`child_env`): a UUID names one GPU whatever order CUDA would number
them in, so inside the agent Taichi's one CUDA device is GPU N.

No NVML library (no NVIDIA driver) means no GPUs, quietly; NVML there but
failing for one GPU lists that GPU unusable with NVML's reason. Whether
Taichi really starts on a GPU is asked by :func:`probe_taichi`, in a
throwaway subprocess.

The Taichi CUDA memory pool an agent asks for is :func:`pool_bytes` of its
family's estimate; the plan counts it, and the CUDA context beside it, against
the GPU's free memory (:func:`fits`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hera import children
from hera.errors import HeraError, NotFound, did_you_mean
from hera.family import ResourceEstimate

MIB = 1 << 20
#: Headroom on the family's device estimate for the Taichi CUDA pool (a fraction of it, plus a fixed part).
#: Taichi's LLVM runtime takes from the same pool what no estimate counts: its result buffer, one
#: random state per GPU thread (16 B x SMs x 32 blocks x 2 x 1024 threads: about 140 MB on an H200),
#: the runtime context buffers, list managers and page alignment; the fraction covers an estimate's
#: error. Where it is taken depends on the GPU (Taichi 1.7 preallocates it as it starts only without CUDA
#: memory pools; with them, every current GPU, each dense field is allocated as the brain is built),
#: so the agent checks before Taichi starts that the GPU has this much free (NVML).
POOL_FRACTION = 0.25
POOL_FIXED_BYTES = 512 * MIB
#: What a CUDA process holds outside Taichi's pool (its context, the kernels' module images):
#: counted by the plan on top of the pool, never given to Taichi.
CONTEXT_BYTES = 512 * MIB


class Device(BaseModel):
    id: str
    kind: str
    name: str
    memory_bytes: int | None = None
    free_bytes: int | None = None
    cores: int | None = None
    driver: str | None = None
    #: The CUDA version the driver supports ("12.4"), NVML's ``nvmlSystemGetCudaDriverVersion``.
    cuda_driver: str | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
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


def pool_bytes(estimate: ResourceEstimate) -> int:
    """The Taichi CUDA pool an agent asks for: its device estimate plus headroom (see :data:`POOL_FRACTION`), in whole MiB."""
    wanted = estimate.device_bytes * (1 + POOL_FRACTION) + POOL_FIXED_BYTES
    return -(-int(wanted) // MIB) * MIB


def _nvml() -> Any:
    """pynvml, initialised; None where there is no NVML library. Raises pynvml's error when NVML itself fails."""
    try:
        import pynvml  # type: ignore[import-untyped]
    except ImportError:  # the dependency missing: no way to ask, so no GPUs
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return None
    return pynvml


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _cuda_version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"


def discover() -> tuple[list[Device], str]:
    """The GPUs NVML reports, in its (nvidia-smi's, PCI bus) order; and, where there are none, why."""
    try:
        nvml = _nvml()
    except Exception as exc:  # NVML there but failing as a whole (driver not loaded, no permission)
        return [], f"no NVIDIA GPU usable: NVML failed: {exc}"
    if nvml is None:
        return [], "no NVIDIA GPU found (no NVIDIA driver: the NVML library is not installed)"
    try:
        count = nvml.nvmlDeviceGetCount()
    except nvml.NVMLError as exc:
        count, why = 0, f"no NVIDIA GPU usable: NVML cannot count them: {exc}"
    else:
        why = "no NVIDIA GPU found (NVML reports none)"
    try:
        return _gpus(nvml, count), why
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def _gpus(nvml: Any, count: int) -> list[Device]:
    """GPUs 0 to count - 1 as NVML describes them; one NVML cannot read is listed unusable, with NVML's reason."""
    try:
        driver: str | None = _text(nvml.nvmlSystemGetDriverVersion())
    except nvml.NVMLError:
        driver = None
    try:
        cuda: str | None = _cuda_version(nvml.nvmlSystemGetCudaDriverVersion())
        no_cuda = None
    except nvml.NVMLError as exc:
        cuda, no_cuda = None, f"the driver reports no CUDA version: {exc}"
    found = []
    for index in range(count):
        device = Device(id=f"cuda:{index}", kind="cuda", name="NVIDIA GPU", driver=driver, cuda_driver=cuda)
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            device.name = _text(nvml.nvmlDeviceGetName(handle))
            device.uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            device.pci_bus_id = _text(nvml.nvmlDeviceGetPciInfo(handle).busId)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            device.memory_bytes, device.free_bytes = int(memory.total), int(memory.free)
        except nvml.NVMLError as exc:  # a GPU NVML cannot read (lost, in reset, MIG without access)
            device.usable, device.note = False, f"NVML: {exc}"
        if device.usable and no_cuda is not None:
            device.usable, device.note = False, no_cuda
        device.backends = ["cuda"] if device.usable else []
        found.append(device)
    return found


def gpus() -> list[Device]:
    """The GPUs on this host, NVML's; none (quietly) without an NVIDIA driver."""
    return discover()[0]


def all_devices() -> list[Device]:
    return [cpu(), *gpus()]


def find(device_id: str, devices: list[Device] | None = None) -> Device:
    """Resolve ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` to a device on this host.

    A GPU asked for by name that is not here, or that NVML cannot read, is
    refused in one line saying what the host has: an agent never lands on
    another device than the one asked for.
    """
    devices = all_devices() if devices is None else devices
    if device_id == "auto":
        return next((d for d in devices if d.kind == "cuda" and d.usable), devices[0])
    wanted = "cuda:0" if device_id == "cuda" else device_id
    named = repr(device_id) + (f" ({wanted})" if wanted != device_id else "")
    for device in devices:
        if device.id == wanted:
            if not device.usable:
                raise HeraError(f"device {named} is not usable: {device.note}", hint="see 'hera devices --probe'")
            return device
    gpus_here = [d.id for d in devices if d.kind == "cuda"]
    if wanted.startswith("cuda") and not gpus_here:
        raise NotFound(f"no device {named} on this host: {discover()[1]}", hint="use the CPU (--device cpu)")
    here = ", ".join(d.id for d in devices)
    raise NotFound(f"no device {named} on this host (it has {here})", hint=did_you_mean(wanted, [*(d.id for d in devices), "auto"]))


def need_bytes(estimate: ResourceEstimate, device: Device) -> int:
    """What an agent takes from ``device``: on a GPU its Taichi pool and its CUDA context; on the CPU its memory."""
    if device.kind == "cpu":
        return estimate.device_bytes + estimate.host_bytes
    return pool_bytes(estimate) + CONTEXT_BYTES


def fits(estimate: ResourceEstimate, device: Device, host: Device | None = None, pending: int = 0) -> bool | None:
    """Whether a layout fits now: None when the device's free memory is unknown.

    On a GPU, free memory is NVML's, from which every running agent's pool
    is gone already (Taichi allocates it whole when it starts); ``pending``
    is what agents that are up but have not started Taichi yet will take.
    """
    if device.free_bytes is None:
        return None
    room = device.free_bytes - pending
    if device.kind == "cpu":
        return need_bytes(estimate, device) <= room
    host_ok = host is None or host.free_bytes is None or estimate.host_bytes <= host.free_bytes
    return need_bytes(estimate, device) <= room and host_ok


def child_env(device_id: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an agent on ``device_id``: on ``cuda:N``, GPU N alone is visible, named by its UUID.

    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` makes CUDA number GPUs as NVML and
    nvidia-smi do; the UUID in ``CUDA_VISIBLE_DEVICES`` cannot be renumbered
    at all, so Taichi's default (only) CUDA device is exactly the GPU the
    plan checked, whatever the caller's own ``CUDA_VISIBLE_DEVICES`` said.
    A CPU agent gets the caller's environment unchanged.
    """
    env = dict(os.environ if base is None else base)
    if not device_id.startswith("cuda"):
        return env
    gpu = find(device_id, gpus())
    if gpu.uuid is None:
        raise HeraError(f"device {device_id!r} has no UUID from NVML", hint="see 'hera devices'")
    env.update(CUDA_DEVICE_ORDER="PCI_BUS_ID", CUDA_VISIBLE_DEVICES=gpu.uuid)
    return env


def visible_gpu(env: Mapping[str, str] | None = None) -> Device | None:
    """The GPU an agent was given (:func:`child_env`: the UUID in ``CUDA_VISIBLE_DEVICES``), or None when not one UUID."""
    visible = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES", "")
    if not visible.startswith("GPU-") or "," in visible:
        return None
    return next((gpu for gpu in gpus() if gpu.uuid == visible), None)


#: Asks Taichi for one backend, runs one kernel there and says which arch it got. Taichi falls
#: back to the CPU when a GPU backend fails, so the answer is whether the arch it runs on is the one
#: asked for: compared as Taichi's own values, because ``ti.cpu`` is the host's arch (``Arch.x64``,
#: ``Arch.arm64``), whose name never contains "cpu". Taichi's warnings (why CUDA failed) go to
#: stderr, where :func:`probe_taichi` finds the reason; on CUDA a small pool, not Taichi's 1 GiB.
_PROBE = """
import json, sys
import taichi as ti
arch = getattr(ti, sys.argv[1])
ti.init(arch=arch, offline_cache=False, log_level=ti.WARN, device_memory_GB=0.25)
got = ti.lang.impl.current_cfg().arch
x = ti.field(ti.i32, shape=4)
@ti.kernel
def fill():
    for i in x:
        x[i] = i * 3
fill()
ok = got == arch and x.to_numpy().tolist() == [0, 3, 6, 9]
print(json.dumps({"arch": str(got), "ok": ok}))
"""


def _reason(stderr: str, fallback: str) -> str:
    """The probe's last telling line (Taichi's warning or Python's error), without Taichi's log prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [line for line in lines if "falling back" not in line.lower() and not line.startswith(("Traceback", "File ", "[Taichi]"))]
    if not telling:
        return fallback
    line = telling[-1]
    return line.rsplit("] ", 1)[-1] if line.startswith("[") else line


def probe_taichi(backend: str, env: Mapping[str, str] | None = None, timeout: float = 120.0) -> tuple[bool, str | None]:
    """Whether Taichi really starts ``backend`` here, asked in a throwaway process; and if not, why.

    ``env``: the process's environment (for a GPU, :func:`child_env` of it,
    so the probe sees that GPU alone, as an agent on it would).
    """
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="hera-probe-") as scratch:
            script = Path(scratch) / "probe.py"  # a file: Taichi reads a kernel's source, which "-c" has not
            script.write_text(_PROBE)
            result = subprocess.run(
                children.python(str(script), backend), capture_output=True, text=True, timeout=timeout,
                env=dict(os.environ if env is None else env), cwd=scratch,
            )
    except subprocess.TimeoutExpired:
        return False, f"Taichi did not start within {timeout:.0f} s"
    except OSError as exc:
        return False, f"cannot start the probe: {exc.strerror or exc}"
    if result.returncode != 0:
        return False, _reason(result.stderr, f"the probe exited with status {result.returncode}")
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False, _reason(result.stderr, "the probe gave no answer")
    if isinstance(answer, dict) and answer.get("ok") is True:
        return True, None
    got = answer.get("arch") if isinstance(answer, dict) else None
    return False, _reason(result.stderr, f"Taichi ran on {got} instead")
