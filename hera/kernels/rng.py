"""A counter-based random generator: random bits as a pure function of (seed, iteration, index, stream).

Why: an agent must resume bit-exactly, and Taichi's own RNG state cannot be
saved. A counter-based generator has no state at all: the noise a neuron gets
at an iteration depends only on the agent's seed, the iteration number, the
neuron (or synapse) index and a stream number that tells apart several draws
made at the same place. Nothing but the seed needs saving, the draws are the
same in any order and on any number of threads, and the numpy twins below let
the host make (and tests check) exactly the numbers a kernel makes.

The hash is lowbias32 (Chris Wellons' integer hash search: bias ≈ 0.17,
passes PractRand as a counter generator when chained over the key words),
applied to each key word in turn. Everything is 32-bit unsigned arithmetic, so
CPU, CUDA and numpy agree bit for bit.

Kernel API (``@ti.func``, usable inside any family kernel):

* ``mix32(x) -> u32``
* ``bits(seed_lo, seed_hi, iteration, index, stream) -> u32``
* ``uniform(bits) -> f32`` in [0, 1) (24 random bits)
* ``normal_clt(bits) -> f32``: approximately N(0, 1) from four bytes (Irwin-Hall, bounded ±3.45); integer-exact.

There is deliberately no Box-Muller normal: it needs ``log`` and ``cos``,
whose last bits differ between the CPU's and CUDA's maths libraries, so noise
drawn with it would break bit-exact resume across devices. ``normal_clt``'s
bounded tails are what a neuron's noise needs.

Host twins (numpy, vectorised over ``index``): ``mix32_np``, ``bits_np``, ``uniform_np``, ``normal_clt_np``,
and ``seed_words(seed)`` splitting a 64-bit seed into the two u32 key words.
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

import numpy as np
import taichi as ti
from numpy.typing import ArrayLike

M1 = 0x7FEB352D
M2 = 0x846CA68B
#: Added to a key word before mixing so that zero words do not stay zero.
GOLDEN = 0x9E3779B9


@ti.func
def mix32(x: ti.u32) -> ti.u32:
    """lowbias32: a fast, well-mixing bijection of 32-bit words."""
    x ^= x >> ti.u32(16)
    x *= ti.u32(M1)
    x ^= x >> ti.u32(15)
    x *= ti.u32(M2)
    x ^= x >> ti.u32(16)
    return x


@ti.func
def bits(seed_lo: ti.u32, seed_hi: ti.u32, iteration: ti.i64, index: ti.i32, stream: ti.u32) -> ti.u32:
    """32 random bits for (seed, iteration, index, stream): each key word is folded in through the mixer."""
    lo = ti.cast(iteration & ti.i64(0xFFFFFFFF), ti.u32)
    hi = ti.cast(iteration >> ti.i64(32), ti.u32)
    h = mix32(seed_lo + ti.u32(GOLDEN))
    h = mix32(h ^ seed_hi)
    h = mix32(h ^ hi)
    h = mix32(h ^ lo)
    h = mix32(h ^ stream)
    return mix32(h ^ ti.cast(index, ti.u32))


@ti.func
def uniform(b: ti.u32) -> ti.f32:
    """A float in [0, 1): the top 24 bits scaled exactly (every value representable in f32)."""
    return ti.cast(b >> ti.u32(8), ti.f32) * (1.0 / 16777216.0)


@ti.func
def normal_clt(b: ti.u32) -> ti.f32:
    """About N(0, 1) from the four bytes of ``b`` (their sum, centred and scaled); exact integer work."""
    total = (b & ti.u32(255)) + ((b >> ti.u32(8)) & ti.u32(255))
    total += ((b >> ti.u32(16)) & ti.u32(255)) + (b >> ti.u32(24))
    # four uniform bytes: mean 510, standard deviation sqrt(4 * (256**2 - 1) / 12) = 147.80138
    # centred in integers, so the one float operation is a product no backend can rewrite into an FMA
    return ti.cast(ti.cast(total, ti.i32) - 510, ti.f32) * (1.0 / 147.80138)


# -- host twins ---------------------------------------------------------------------------------


def seed_words(seed: int) -> tuple[int, int]:
    """The two u32 key words of a 64-bit seed, as the kernels take them."""
    return seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF


def mix32_np(words: ArrayLike) -> np.ndarray:
    """:func:`mix32` on the host (wrapping u32 arithmetic), of one word or an array of them."""
    x = np.array(words, dtype=np.uint32, ndmin=1)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint32(16)
        x *= np.uint32(M1)
        x ^= x >> np.uint32(15)
        x *= np.uint32(M2)
        x ^= x >> np.uint32(16)
    return x


def bits_np(seed: int, iteration: int, index: np.ndarray | int, stream: int = 0) -> np.ndarray:
    """The same bits as :func:`bits`, for an array of indices (iteration and stream are scalars)."""
    lo, hi = seed_words(seed)
    it = int(iteration) & 0xFFFFFFFFFFFFFFFF
    with np.errstate(over="ignore"):
        h = mix32_np(np.uint32((lo + GOLDEN) & 0xFFFFFFFF))
        h = mix32_np(h ^ np.uint32(hi))
        h = mix32_np(h ^ np.uint32(it >> 32))
        h = mix32_np(h ^ np.uint32(it & 0xFFFFFFFF))
        h = mix32_np(h ^ np.uint32(stream & 0xFFFFFFFF))
        return mix32_np(h ^ np.asarray(index).astype(np.int64).astype(np.uint32))


def uniform_np(b: np.ndarray) -> np.ndarray:
    return (np.asarray(b, np.uint32) >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def normal_clt_np(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, np.uint32)
    total = (b & 255) + ((b >> 8) & 255) + ((b >> 16) & 255) + (b >> 24)
    return (total.astype(np.float32) - np.float32(510.0)) * np.float32(1.0 / 147.80138)
