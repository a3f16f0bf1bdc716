"""Taichi building blocks that families compose, and the one place Taichi is initialised.

Importing this package itself is light (numpy-only helpers such as
:mod:`hera.kernels.connectivity` can be used by a family's ``build``); the
modules with kernels import Taichi, and only agent processes, benchmarks and
tests may import them, never the controller (a process that initialised
Taichi cannot safely fork, and a GPU probe in-process can segfault).

The building blocks, one idea per module:

* :mod:`hera.kernels.rng`: a counter-based random generator keyed by
  (seed, iteration, index); nothing to save but the seed, so resume is exact.
* :mod:`hera.kernels.lif`: leaky integrate-and-fire neurons with exact
  exponential integration, refractory counters and adaptive thresholds.
* :mod:`hera.kernels.connectivity`: (numpy only) building synapses stored by
  presynaptic neuron (CSR), random connectivity, the transposed index.
* :mod:`hera.kernels.synapses`: event-driven delivery along CSR rows with
  per-synapse integer delays through a fixed-point ring buffer.
* :mod:`hera.kernels.plasticity`: always-on plasticity: trace STDP (pair,
  triplet, reward-modulated), weight bounds, homeostasis.
* :mod:`hera.kernels.io`: the byte clock (which byte an iteration presents) and
  byte lines in and out on the host.
* :mod:`hera.kernels.driver`: runs a family's iteration on its device (fused
  on a CPU, batched launches on a GPU), with breakpoints checked on the device.
* :mod:`hera.kernels.template`: ``Template``, how a template parameter is
  annotated so that both Taichi and mypy accept it.

Modules that define ``@ti.func`` may be imported before :func:`init`; kernels
are compiled on first call, after it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

__all__ = ["init", "initialised_arch", "is_cpu", "default_cache_dir"]

_state: dict[str, Any] = {"arch": None}

#: Taichi's arch names for the CPU backends; hera calls them all "cpu".
CPU_ARCHES = ("cpu", "x64", "arm64")


def default_cache_dir() -> Path:
    """Where compiled kernels are cached: hera's own user cache dir (regenerable, so ~/.cache is right).

    ``HERA_TAICHI_CACHE`` overrides it (tests and benchmarks point it at a scratch dir).
    """
    override = os.environ.get("HERA_TAICHI_CACHE")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("hera")) / "taichi"


def _cuda_usable() -> bool:
    """Whether a CUDA GPU is there, asked of the driver tools (never of Taichi's own probe, which can segfault)."""
    from hera.devices import gpus

    return any("cuda" in device.backends for device in gpus())


def init(
    arch: str = "cpu",
    cache_dir: Path | None = None,
    *,
    fallback: bool = False,
    threads: int | None = None,
    fast_math: bool = False,
    device_memory_bytes: int | None = None,
    device: str | None = None,
    **kw: Any,
) -> str:
    """Initialise Taichi once for this process, on ``arch`` ("cpu" or "cuda"); returns the arch in use.

    * The offline kernel cache lives in ``cache_dir`` (default
      :func:`default_cache_dir`), not Taichi's ``~/.cache/taichi``, so hera
      owns and can clear it.
    * "cuda" is asked for explicitly (``ti.cuda``), never through ``ti.gpu``,
      whose OpenGL probe segfaults on machines without a GPU. Where no CUDA
      GPU is found, ``fallback=True`` runs on the CPU with a warning; otherwise
      it is an error, because an agent must not silently change device (bit-exact
      resume holds only on the same arch).
    * On CUDA, ``device_memory_bytes`` sizes Taichi's memory pool (an agent
      passes :func:`hera.devices.pool_bytes` of its family's estimate; None
      keeps Taichi's default of 1 GiB). Taichi preallocates it as it starts
      only on GPUs without CUDA memory pools (on the others it allocates each
      dense field as it is made), so the room is checked here through NVML
      first: a GPU without it fails before any brain is loaded, in one line
      naming the GPU (``device``, the user's ``cuda:N``), the amount asked for
      and the memory free. Taichi runs on CUDA's default
      device: the agent's launcher made it the GPU asked for
      (:func:`hera.devices.child_env`).
    * ``fast_math`` is off by default: the kernels then do exactly the float
      operations written, so numpy references match them bit for bit and a
      resumed agent computes what the uninterrupted one would have.
    * A second call with the same arch is a no-op; a different arch is an
      error (Taichi has one runtime per process).
    """
    wanted = "cpu" if arch in CPU_ARCHES else arch
    if wanted not in ("cpu", "cuda"):
        raise ValueError(f"unknown arch {arch!r}: hera runs on 'cpu' or 'cuda'")
    if _state["arch"] is not None:
        if wanted == "cuda" and _state["arch"] == "cpu" and _state.get("fell_back"):
            return "cpu"
        if _state["arch"] != wanted:
            raise RuntimeError(f"Taichi is already initialised for {_state['arch']!r} in this process")
        return _state["arch"]
    fell_back = False
    if wanted == "cuda" and not _cuda_usable():
        if not fallback:
            from hera.errors import HeraError

            raise HeraError("no CUDA GPU found on this host", hint="use the CPU (--device cpu)")
        warnings.warn("no CUDA GPU found: running on the CPU", RuntimeWarning, stacklevel=2)
        wanted, fell_back = "cpu", True
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "offline_cache": True,
        "offline_cache_file_path": str(cache),
        "fast_math": fast_math,
        # Taichi 1.7.4's CFG optimisation pass failed its own IR check ("block->parent !=
        # current_container_stmt") on the STDP kernels of vogels-abbott; without it they compile, and
        # the CUBA kernels measured no slower.
        "cfg_optimization": False,
        "log_level": "warn",
    }
    if threads is not None and wanted == "cpu":
        options["cpu_max_num_threads"] = threads
    label = device or "the CUDA GPU"
    if wanted == "cuda" and device_memory_bytes is not None:
        _check_room(label, device_memory_bytes)
        options["device_memory_GB"] = device_memory_bytes / (1 << 30)
    options.update(kw)
    import taichi as ti

    try:
        ti.init(arch=ti.cpu if wanted == "cpu" else ti.cuda, **options)
    except Exception as exc:  # Taichi's own failure (its pool not allocated, a driver error): one line
        if wanted != "cuda":
            raise
        from hera.errors import HeraError

        asked = f" with a pool of {_human(device_memory_bytes)}" if device_memory_bytes is not None else ""
        raise HeraError(f"Taichi could not start on {label}{asked}: {str(exc).strip()[-300:]}") from None
    if wanted == "cuda" and not str(ti.lang.impl.current_cfg().arch).endswith("cuda"):
        ti.reset()
        from hera.errors import HeraError

        raise HeraError(f"Taichi could not start its CUDA backend on {label}", hint="Taichi's reason is in the log above; see 'hera devices --probe'")
    if wanted == "cuda":
        import logging

        pool = f"{device_memory_bytes} bytes" if device_memory_bytes is not None else "Taichi's default size"
        logging.getLogger(__name__).info(
            "Taichi CUDA pool of %s on %s (CUDA_VISIBLE_DEVICES=%s, CUDA_DEVICE_ORDER=%s)",
            pool, label, os.environ.get("CUDA_VISIBLE_DEVICES", "unset"), os.environ.get("CUDA_DEVICE_ORDER", "unset"),
        )
    _state.update(arch=wanted, fell_back=fell_back)
    return wanted


def _human(size: int | None) -> str:
    from hera.table import human_bytes

    return human_bytes(size)


def _check_room(label: str, pool: int) -> None:
    """Refuse, before Taichi starts, a pool larger than the GPU has free (NVML's view of the GPU this process sees)."""
    from hera.devices import visible_gpu
    from hera.errors import HeraError

    gpu = visible_gpu()
    if gpu is None or gpu.free_bytes is None:
        return  # not one GPU named by UUID (a script's own run): Taichi's own allocation answers
    if pool > gpu.free_bytes:
        raise HeraError(
            f"{label} ({gpu.name}) cannot hold this agent's Taichi pool: {_human(pool)} asked, "
            f"{_human(gpu.free_bytes)} free of {_human(gpu.memory_bytes)}",
            hint="free the GPU (other agents, other programs), pick another with --device, or build a smaller layout",
        )


def initialised_arch() -> str | None:
    """The arch :func:`init` set up in this process ("cpu" or "cuda"), or None."""
    return _state["arch"]


def is_cpu(arch: str) -> bool:
    """Whether ``arch`` names a CPU backend (where fusing many iterations into one launch wins)."""
    return arch in CPU_ARCHES
