"""Building a CUBA network's static structure on the host (numpy only, no Taichi).

Connectivity follows Brian2's ``Synapses.connect(p=...)``: every ordered pair
(pre, post) independently, self-connections included. Neurons ``0 ..
excitatory-1`` are excitatory, the rest inhibitory; a synapse's weight is
its presynaptic neuron's kind's weight. The synapses are stored by
presynaptic neuron (CSR), which is what the kernels walk.
"""

from __future__ import annotations

import numpy as np

from hera.family import Built
from hera.kernels.connectivity import fixed_probability
from vogels_abbott import CubaParams


def build(params: CubaParams, seed: int) -> Built:
    n, ne = params.neurons, params.excitatory
    rng = np.random.default_rng(seed)
    ptr, post = fixed_probability(n, n, params.probability, rng)
    per_row = np.where(np.arange(n) < ne, np.float32(params.w_exc_mv), np.float32(params.w_inh_mv))
    weight = np.repeat(per_row.astype(np.float32), np.diff(ptr))
    arrays = {"syn.ptr": ptr, "syn.post": post, "syn.weight": weight}
    summary = {
        "neurons": n,
        "excitatory": ne,
        "inhibitory": n - ne,
        "synapses": int(ptr[-1]),
        "connection_probability": params.probability,
        "stdp": params.stdp is not None,
    }
    return Built(arrays=arrays, summary=summary)
