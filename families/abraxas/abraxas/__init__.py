"""abraxas: hera's reference family.

This module only describes the family (layouts, structure, estimates), so that
``hera families`` and ``hera layouts`` import it cheaply; numpy is imported
only when an instance is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from abraxas.structure import AbraxasParams, Structure
from hera.family import Built, Family, ResourceEstimate

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import numpy as np

    from hera.instance import Header
    from hera.runtime import Runtime

__all__ = ["Abraxas", "AbraxasParams"]
__version__ = "0.2.0"


class Abraxas(Family):
    name = "abraxas"
    version = __version__
    description = "layered spiking sheets that learn to predict the byte stream they are fed"
    params_model = AbraxasParams
    #: Sizes only: the sheets, the depth, the dendrites and the axons (see abraxas.grow).
    growable = frozenset(
        {
            "input.width", "input.height", "hidden.width", "hidden.height", "hidden.depth",
            "output.width", "output.height", "dendrite_length", "axon_length",
        }
    )  # fmt: skip
    # Size buys learning: a bigger hidden sheet has more winner-take-all groups, so more cells per lag
    # pair (every pair 1 × 2..8 is covered from `example` up), and deeper sheets learn conjunctions
    # of the codes below them; every synapse reaches the output (hidden sheets are read whole).
    layouts = {
        # Light enough for tests on one CPU core: 16 groups of 96 cells. 64 cells a group held the
        # (lag 1, lag 8) pairs of the benchmark's lag-pair stream on some seeds only (0.944-0.986 of its
        # decisive bytes over seeds 7-9; 0.992-0.998 with 96), for 0.76x the iterations per second.
        "example": {"hidden": {"height": 48, "group_rows": 3}},
        # 24 groups of 192 cells: every lag pair; rows per group as the example's, so an example grows into it.
        "small": {"hidden": {"width": 64, "height": 72, "group_rows": 3}},
        "medium": {
            "hidden": {"width": 256, "height": 128, "depth": 2, "group_rows": 1},
            "dendrite_length": 4,
        },
        # About 8 GiB of state: the benchmark's big brain, which a 24 GB host runs on its CPU (or a
        # 16 GB GPU holds); scripts/bench_lifecycle.py.
        "medium-8g": {
            "hidden": {"width": 1024, "height": 896, "depth": 4, "group_rows": 1},
            "dendrite_length": 5,
        },
        "large": {
            "hidden": {"width": 1024, "height": 1024, "depth": 8, "group_rows": 1},
            "dendrite_length": 6,
        },
        # Sized to fill one 80 GB data-centre GPU (about 66 GB: see `hera layouts`).
        "datacenter": {
            "hidden": {"width": 2048, "height": 1024, "depth": 12, "group_rows": 1},
            "dendrite_length": 6,
        },
    }

    def build(self, params: AbraxasParams, seed: int) -> Built:  # type: ignore[override]
        import numpy as np

        structure = Structure(params)
        arrays = {f"weights.{p.name}": np.zeros(p.shape, np.float32) for p in structure.projections}
        return Built(arrays=arrays, summary=structure.summary())

    def runtime(self, header: Header, arrays: Mapping[str, np.ndarray], arch: str) -> Runtime:
        from abraxas.runtime import AbraxasRuntime  # imports Taichi: only agent and test processes get here

        params = AbraxasParams.model_validate(header.params)
        return AbraxasRuntime(params, header.seed, arrays, arch, dynamic=header.dynamic)

    def estimate(self, params: AbraxasParams) -> ResourceEstimate:  # type: ignore[override]
        structure = Structure(params)
        neurons, synapses = structure.neurons, structure.synapses
        slots = structure.ring_slots
        # What the runtime exports and the file holds: float32 weights (no per-synapse trace:
        # eligibility is read from the spike ring), and per neuron potential and threshold (4 B each),
        # a spike ring (1 B per slot) and a current ring (4 B per slot); the stages clocked and the surprise.
        state = synapses * 4 + neurons * (8 + 5 * slots) + 4 * (params.hidden.depth + 1) + 12
        # On the device: the same fields, per neuron a breakpoint slot (4 B, hera.kernels.driver) and a
        # byte of the raster's one-slot buffer, per group a winner key (8 B), its winner (4 B) and an
        # eligible synapse (12 B), the surprise's rates (4 B per byte it spans), and the per-launch logs and the
        # softmax (under 1 MiB).
        device = state + 5 * neurons + 24 * structure.groups + 4 * (params.plasticity.surprise_slow + 1) + (1 << 20)
        return ResourceEstimate(
            neurons=neurons,
            synapses=synapses,
            device_bytes=device,
            # The agent process itself (Python and Taichi, about 150 MiB) and, at its peak, the copy a
            # checkpoint of the running brain exports to write it; loading decodes one array at a time
            # and down exports one at a time, so neither holds the brain twice (hera.agent.loading).
            host_bytes=state + (192 << 20),
            file_bytes=state * 4 // 3 + 8192,
        )

    def grow(  # type: ignore[override]
        self, header: Header, arrays: Mapping[str, np.ndarray], params: AbraxasParams
    ) -> tuple[dict[str, Any], Iterable[tuple[str, np.ndarray]]]:
        from abraxas.grow import grow

        old = AbraxasParams.model_validate(header.params)
        return grow(old, params, arrays, dynamic=header.dynamic)
