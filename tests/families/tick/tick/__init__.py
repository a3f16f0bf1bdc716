"""tick: a test double of a family, as jupyter_client's signalkernel is of a kernel.

Its brain is trivial but real: Taichi fields, a fused multi-iteration kernel,
a counter-based RNG, a delay ring, input and output. Lifecycle, signal and
breakpoint tests use it because it compiles in a moment and every iteration's
outcome is known exactly. Tests copy this folder into their working directory,
where hera finds families cloned next to the user's files.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hera.family import Built, Family, Params, ResourceEstimate


class TickParams(Params):
    neurons: int = Field(64, ge=1, le=1 << 24)
    delay: int = Field(3, ge=1, le=64)
    rate: float = Field(0.01, ge=0, le=1, description="spike probability per neuron and iteration")
    seconds_per_iteration: float = Field(0.0, ge=0, le=1, description="sleep per iteration, to make big brains")
    device_bytes: int = Field(0, ge=0, description="pretend device footprint, for resource tests")
    quiet: int = Field(-1, ge=-1, le=255, description="a byte that gets no answer when presented (-1: all are echoed)")


class Tick(Family):
    name = "tick"
    version = "0.1.0"
    description = "test double: counters, noise spikes, a delay ring and an echo"
    params_model = TickParams
    #: example: tiny and fast; slow: 2 ms per iteration; huge: pretends to need 1 PiB (resource
    #: refusal); gib: about 1 GiB of state in the cache (16 Mi neurons, a 12-deep delay ring),
    #: for scripts/bench_lifecycle.py; quiet: "." gets no answer (records with output none).
    layouts = {
        "example": {},
        "slow": {"seconds_per_iteration": 0.002},
        "huge": {"device_bytes": 1 << 50},
        "gib": {"neurons": 1 << 24, "delay": 12},
        "quiet": {"quiet": ord(".")},
    }

    def build(self, params: TickParams, seed: int) -> Built:  # type: ignore[override]
        import numpy as np

        return Built(
            arrays={"weights": np.zeros(params.neurons, np.float32)},
            summary={"neurons": params.neurons, "synapses": params.neurons, "areas": [{"name": "all", "width": params.neurons, "height": 1, "offset": 0}]},
        )

    def estimate(self, params: TickParams) -> ResourceEstimate:  # type: ignore[override]
        size = params.neurons * (4 * 4 + 4 * params.delay)
        return ResourceEstimate(
            neurons=params.neurons,
            synapses=params.neurons,
            device_bytes=size + params.device_bytes,
            host_bytes=size,
            file_bytes=size * 2,
        )

    def runtime(self, header: Any, arrays: dict[str, Any], arch: str) -> Any:
        from tick.runtime import TickRuntime

        return TickRuntime(header, arrays)
