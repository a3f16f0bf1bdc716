"""What a CUBA instance's arrays must be before a runtime takes them (numpy only, no Taichi).

hera saves exactly what ``export_state`` returns and hands exactly that back
on the next ``up``, so an instance is either fresh (the structure ``build``
made, nothing else) or dynamic (the structure *and* every state array). A
dynamic instance missing one state array must not be taken for a fresh one:
that brought an agent back at its iteration with Brian2's initial potentials
and zeroed conductances, and its next save made the loss permanent. So every
array is checked by name, dtype and shape against what the header promises,
and the connectivity is checked to stay inside the network, before a single
field is allocated: the kernels index ``post`` and ``ptr`` unchecked, and an
index out of range there writes outside a field.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hera.errors import HeraError
from hera.runtime import ArraySpec, check_arrays
from vogels_abbott import CubaParams

#: The static structure (and weights) every instance holds, as ``build`` makes it.
STRUCTURE = {"syn.ptr": "int64", "syn.post": "int32", "syn.weight": "float32"}
#: What to do about an instance whose header and arrays disagree: it was damaged or edited.
DAMAGED = "its file is damaged or was edited: put back its previous save (the .prev beside it) or a copy"
REBUILD = "rebuild it with this family"


def state_shapes(params: CubaParams) -> dict[str, ArraySpec]:
    """Every state array of a dynamic instance: name -> (dtype, shape)."""
    n, delay = params.neurons, params.delay_steps
    shapes: dict[str, ArraySpec] = {
        "state.v": ("float32", (n,)),
        "state.ge": ("float32", (n,)),
        "state.gi": ("float32", (n,)),
        "state.refractory": ("int32", (n,)),
        "state.ring": ("int32", (2, delay, n)),
        "state.iteration": ("int64", (1,)),
        "state.rng_key": ("uint32", (2,)),
    }
    if params.stdp is not None:
        shapes |= {"state.a_pre": ("float32", (n,)), "state.a_post": ("float32", (n,))}
    return shapes


def check(
    params: CubaParams, seed: int, arrays: Mapping[str, np.ndarray], *, dynamic: bool, iteration: int | None = None
) -> int:
    """Refuse, in one line naming the array, anything this network cannot take exactly; the synapse count.

    ``dynamic`` is what the header says (the instance has run); ``iteration``
    is the header's iteration, which the state must agree with (None: not known).
    """
    hint = DAMAGED if dynamic else REBUILD
    structure: dict[str, ArraySpec] = {name: (dtype, None) for name, dtype in STRUCTURE.items()}
    check_arrays(arrays, structure=structure, state=state_shapes(params), dynamic=dynamic, family="vogels-abbott", hint=hint)
    synapses = _check_structure(params, arrays, hint)
    if dynamic:
        _check_state(params, seed, arrays, iteration)
    elif iteration:
        raise HeraError(f"the header says iteration {iteration} but no dynamic state (it never ran)", hint=DAMAGED)
    return synapses


def _check_structure(params: CubaParams, arrays: Mapping[str, np.ndarray], hint: str) -> int:
    """CSR rows that stay inside the network (the kernels trust ``ptr`` and ``post`` as indices); the synapse count."""
    n = params.neurons
    ptr, post, weight = (arrays[name] for name in STRUCTURE)
    if ptr.shape != (n + 1,):
        raise HeraError(f"array 'syn.ptr' has {len(ptr)} entries, a network of {n} neurons needs {n + 1}", hint=hint)
    synapses = int(ptr[-1])
    if int(ptr[0]) != 0 or bool((np.diff(ptr) < 0).any()):
        raise HeraError("array 'syn.ptr' does not start at 0 and never decrease, as CSR row offsets must", hint=hint)
    if not synapses == len(post) == len(weight):
        raise HeraError(
            f"the synapse arrays disagree: 'syn.ptr' ends at {synapses}, 'syn.post' has {len(post)}, "
            f"'syn.weight' {len(weight)}",
            hint=hint,
        )
    if synapses >= 2**31:
        raise HeraError("more than 2**31 synapses: this family indexes them with 32-bit integers", hint=hint)
    if synapses and (int(post.min()) < 0 or int(post.max()) >= n):
        raise HeraError(f"array 'syn.post' names neurons outside 0..{n - 1}", hint=hint)
    return synapses


def _check_state(params: CubaParams, seed: int, arrays: Mapping[str, np.ndarray], iteration: int | None) -> None:
    key = arrays["state.rng_key"]
    if (int(key[0]) | int(key[1]) << 32) != seed:
        raise HeraError("array 'state.rng_key' does not match the instance's seed", hint=DAMAGED)
    saved = int(arrays["state.iteration"][0])
    if saved < 0:
        raise HeraError(f"array 'state.iteration' is negative ({saved})", hint=DAMAGED)
    if iteration is not None and saved != iteration:
        raise HeraError(f"array 'state.iteration' says {saved}, the header says iteration {iteration}", hint=DAMAGED)
