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
from vogels_abbott import CubaParams

#: The static structure (and weights) every instance holds, as ``build`` makes it.
STRUCTURE = {"syn.ptr": "int64", "syn.post": "int32", "syn.weight": "float32"}
#: What to do about an instance whose header and arrays disagree: it was damaged or edited.
DAMAGED = "its file is damaged or was edited: put back its previous save (the .prev beside it) or a copy"
REBUILD = "rebuild it with this family"


def state_shapes(params: CubaParams) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every state array of a dynamic instance: name -> (dtype, shape)."""
    n, delay = params.neurons, params.delay_steps
    shapes = {
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
    _check_names(params, arrays, dynamic)
    synapses = _check_structure(params, arrays, DAMAGED if dynamic else REBUILD)
    if dynamic:
        _check_state(params, seed, arrays, iteration)
    elif iteration:
        raise HeraError(f"the header says iteration {iteration} but no dynamic state (it never ran)", hint=DAMAGED)
    return synapses


def _check_names(params: CubaParams, arrays: Mapping[str, np.ndarray], dynamic: bool) -> None:
    """Every array the header promises is there, and nothing else (a renamed array is both a loss and a stray)."""
    state = state_shapes(params)
    wanted = list(STRUCTURE) + (list(state) if dynamic else [])
    for name in wanted:
        if name not in arrays:
            why = "its header says it has run (dynamic: true), so its state is incomplete" if name in state else ""
            raise HeraError(
                f"instance has no array {name!r}" + (f": {why}" if why else ""),
                hint=DAMAGED if dynamic else REBUILD,
            )
    for name in arrays:
        if name in wanted:
            continue
        if name in state:
            raise HeraError(
                f"instance has an array {name!r} but its header says it never ran (dynamic: false)", hint=DAMAGED
            )
        raise HeraError(f"instance has an array {name!r} that family vogels-abbott does not know", hint=DAMAGED)


def _check_structure(params: CubaParams, arrays: Mapping[str, np.ndarray], hint: str) -> int:
    """CSR rows that stay inside the network (the kernels trust ``ptr`` and ``post`` as indices); the synapse count."""
    n = params.neurons
    for name, dtype in STRUCTURE.items():
        _check_array(name, arrays[name], dtype, None, hint)
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
    for name, (dtype, shape) in state_shapes(params).items():
        _check_array(name, arrays[name], dtype, shape, DAMAGED)
    key = arrays["state.rng_key"]
    if (int(key[0]) | int(key[1]) << 32) != seed:
        raise HeraError("array 'state.rng_key' does not match the instance's seed", hint=DAMAGED)
    saved = int(arrays["state.iteration"][0])
    if saved < 0:
        raise HeraError(f"array 'state.iteration' is negative ({saved})", hint=DAMAGED)
    if iteration is not None and saved != iteration:
        raise HeraError(f"array 'state.iteration' says {saved}, the header says iteration {iteration}", hint=DAMAGED)


def _check_array(name: str, array: np.ndarray, dtype: str, shape: tuple[int, ...] | None, hint: str) -> None:
    """Exactly ``dtype`` (no silent cast: a float64 potential would round differently) and ``shape`` (or 1-D)."""
    good_shape = tuple(array.shape) == shape if shape is not None else array.ndim == 1
    if array.dtype != np.dtype(dtype) or not good_shape:
        wanted = f"{dtype}{list(shape)}" if shape is not None else f"a 1-D {dtype} array"
        raise HeraError(f"array {name!r} is {array.dtype}{list(array.shape)}, this network needs {wanted}", hint=hint)
