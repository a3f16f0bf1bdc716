"""vogels-abbott: the CUBA network of Vogels & Abbott (2005), as Brian2's ``examples/CUBA.py`` runs it.

A benchmark family: it lets hera's speed and correctness be compared with
Brian2 and NEST on the network they benchmark with. 4,000 leaky
integrate-and-fire neurons (3,200 excitatory, 800 inhibitory), every ordered
pair connected with probability 0.02 (self-connections allowed, as Brian2's
``connect(p=0.02)``), exponential current synapses, exact integration at
dt = 0.1 ms. Larger layouts keep the fan-in at 80 (p = 80 / N). The ``-stdp``
layouts add pair STDP on the excitatory synapses, as Brian2's STDP example writes it.

Brian2's delay 0 takes effect in the next step's integration; hera's ring
buffer calls that a delay of one iteration (``delay_steps=1``).

This module only describes the family; numpy is imported when an instance is
built, Taichi only inside :meth:`VogelsAbbott.runtime`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from hera.family import Built, Family, Params, ResourceEstimate

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from hera.instance import Header
    from hera.runtime import Runtime

__all__ = ["VogelsAbbott", "CubaParams", "StdpParams"]
__version__ = "0.1.0"


class StdpParams(Params):
    """Pair STDP on the excitatory synapses (Brian2's STDP example, scaled to this network's weights)."""

    tau_pre_ms: float = Field(20.0, gt=0)
    tau_post_ms: float = Field(20.0, gt=0)
    #: trace jump at a presynaptic spike (mV added to w at a later postsynaptic spike)
    a_pre_mv: float = 0.0162
    #: trace jump at a postsynaptic spike (negative: depression at a later presynaptic spike)
    a_post_mv: float = -0.01701
    w_max_mv: float = Field(3.24, gt=0)


class CubaParams(Params):
    """The CUBA network; the defaults are Brian2's example."""

    neurons: int = Field(4000, ge=2, le=50_000_000)
    excitatory_fraction: float = Field(0.8, gt=0, lt=1)
    #: expected incoming synapses per neuron; the connection probability is fan_in / neurons
    fan_in: float = Field(80.0, gt=0)
    dt_ms: float = Field(0.1, gt=0)
    tau_m_ms: float = Field(20.0, gt=0)
    tau_e_ms: float = Field(5.0, gt=0)
    tau_i_ms: float = Field(10.0, gt=0)
    v_threshold_mv: float = -50.0
    v_reset_mv: float = -60.0
    v_rest_mv: float = -49.0
    refractory_ms: float = Field(5.0, ge=0)
    w_exc_mv: float = 60 * 0.27 / 10
    w_inh_mv: float = -20 * 4.5 / 10
    #: synaptic delay in iterations (1 = Brian2's zero delay: felt from the next step on)
    delay_steps: int = Field(1, ge=1, le=255)
    stdp: StdpParams | None = None

    @property
    def excitatory(self) -> int:
        return int(round(self.neurons * self.excitatory_fraction))

    @property
    def probability(self) -> float:
        return min(1.0, self.fan_in / self.neurons)


def log_capacity(neurons: int) -> int:
    """Spikes the device's spike log holds before the runtime drains it (at least 4 iterations of every neuron)."""
    return max(4 * neurons, 1 << 20)


def _layouts() -> dict[str, dict[str, object]]:
    sizes = {"4k": 4_000, "40k": 40_000, "400k": 400_000}
    layouts: dict[str, dict[str, object]] = {"example": {}, "example-stdp": {"stdp": {}}}
    for name, n in sizes.items():
        layouts[f"cuba-{name}"] = {"neurons": n}
        layouts[f"cuba-{name}-stdp"] = {"neurons": n, "stdp": {}}
    return layouts


class VogelsAbbott(Family):
    name = "vogels-abbott"
    version = __version__
    description = "the CUBA benchmark network of Vogels & Abbott (2005), as Brian2 and NEST run it"
    params_model = CubaParams
    layouts = _layouts()

    def build(self, params: CubaParams, seed: int) -> Built:  # type: ignore[override]
        from vogels_abbott.network import build

        return build(params, seed)

    def estimate(self, params: CubaParams) -> ResourceEstimate:  # type: ignore[override]
        n = params.neurons
        synapses = int(round(n * n * params.probability))
        plastic = int(round(synapses * params.excitatory_fraction)) if params.stdp else 0
        # file: ptr (8 B per neuron), post and weight (4 + 4 B per synapse); state: v, ge, gi,
        # refractory, the two-channel ring, and with STDP two traces (4 B each per neuron).
        per_neuron = 8 + 16 + 8 * params.delay_steps + (8 if params.stdp else 0)
        state = n * per_neuron + synapses * 8
        # device: the same (ptr as int32), the spike list and the driver's watch flags (4 B each per
        # neuron), the spike log (iteration and neuron, 12 B an entry), and for STDP the transposed
        # index of the plastic synapses (its ptr, and synapse and pre index, 4 B each); 8 MiB for the rest.
        device = state + n * (8 + (4 if params.stdp else 0)) + plastic * 8 + 12 * log_capacity(n) + (8 << 20)
        return ResourceEstimate(
            neurons=n,
            synapses=synapses,
            device_bytes=device,
            host_bytes=2 * state + plastic * 16 + (64 << 20),
            file_bytes=state * 4 // 3 + 8192,
        )

    def seconds_per_iteration(self, params: CubaParams) -> float | None:  # type: ignore[override]
        return params.dt_ms / 1000.0

    def runtime(self, header: Header, arrays: Mapping[str, np.ndarray], arch: str) -> Runtime:
        """The header says whether the arrays must hold a whole state (``dynamic``) and at which iteration."""
        from pydantic import ValidationError

        from hera.errors import HeraError
        from hera.family import params_error
        from vogels_abbott.runtime import CubaRuntime  # imports Taichi: only agent, bench and test processes

        agent = f"agent {header.callsign} ({header.uuid[:8]})"
        try:
            params = CubaParams.model_validate(header.params)
        except ValidationError as exc:  # a hand-edited header: one line naming the parameter
            raise params_error(self, exc, header.layout, [(f"{agent}'s header", header.params)]) from None
        try:
            return CubaRuntime(
                params, header.seed, arrays, arch, dynamic=header.dynamic, iteration=header.iteration
            )
        except HeraError as exc:  # the runtime knows arrays, not whose: name the agent for the user
            raise HeraError(f"{agent}: {exc.message}", hint=exc.hint) from None
