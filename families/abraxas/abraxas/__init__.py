"""abraxas: hera's reference family.

This module only describes the family (layouts, structure, estimates), so that
``hera families`` and ``hera layouts`` import it cheaply; numpy is imported
only when an instance is built.
"""

from __future__ import annotations

from abraxas.structure import AbraxasParams, Structure
from hera.family import Built, Family, ResourceEstimate

__all__ = ["Abraxas", "AbraxasParams"]
__version__ = "0.1.0"


class Abraxas(Family):
    name = "abraxas"
    version = __version__
    description = "layered spiking sheets that learn to predict the byte stream they are fed"
    params_model = AbraxasParams
    layouts = {
        # Light enough for tests on one CPU core.
        "example": {},
        "small": {"hidden": {"width": 64, "height": 64, "depth": 2}, "dendrite_length": 3, "axon_length": 24},
        "medium": {
            "hidden": {"width": 256, "height": 256, "depth": 4},
            "dendrite_length": 4,
            "axon_length": 32,
        },
        "large": {
            "hidden": {"width": 512, "height": 512, "depth": 8},
            "dendrite_length": 6,
            "axon_length": 32,
        },
        # Sized to fill one 80 GB data-centre GPU.
        "datacenter": {
            "hidden": {"width": 1024, "height": 1024, "depth": 4},
            "dendrite_length": 6,
            "axon_length": 32,
        },
    }

    def build(self, params: AbraxasParams, seed: int) -> Built:  # type: ignore[override]
        import numpy as np

        structure = Structure(params)
        arrays = {
            f"weights.{p.name}": np.zeros((p.post.size, p.field_height, p.field_width, p.taps), np.float32)
            for p in structure.projections
        }
        return Built(arrays=arrays, summary=structure.summary())

    def estimate(self, params: AbraxasParams) -> ResourceEstimate:  # type: ignore[override]
        structure = Structure(params)
        neurons, synapses = structure.neurons, structure.synapses
        # Per synapse on the device: weight, eligibility trace, presynaptic index (event-driven push).
        # Per neuron: potential, threshold, refractory count, two traces, and the delay ring.
        device = synapses * 12 + neurons * (20 + 4 * (params.axon_length + 1))
        # A learned brain's weights and state as base64 in JSON.
        state = synapses * 8 + neurons * (20 + 4 * (params.axon_length + 1))
        return ResourceEstimate(
            neurons=neurons,
            synapses=synapses,
            device_bytes=device,
            host_bytes=state + (64 << 20),
            file_bytes=state * 4 // 3 + 4096,
        )
