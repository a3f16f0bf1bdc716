"""CRC-32 of a byte stream checksummed in pieces on several threads.

The instance codec checksums array chunks in parallel; this joins the pieces'
CRCs into the CRC-32 of the whole (what ``zlib.crc32`` of the concatenation
gives), so the number in a file is the standard one anybody can verify.
Python's zlib lacks ``crc32_combine``; this is zlib's GF(2) method, with the
operator for a given piece length cached because every chunk but the last has
the same length.
"""

from __future__ import annotations

from functools import lru_cache

_POLY = 0xEDB88320


def _times(matrix: tuple[int, ...], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _square(matrix: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_times(matrix, matrix[n]) for n in range(32))


@lru_cache(maxsize=16)
def _zeros_operator(length: int) -> tuple[int, ...]:
    """The matrix that advances a CRC over ``length`` zero bytes."""
    odd = (_POLY, *(1 << n for n in range(31)))  # one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    result = tuple(1 << n for n in range(32))  # identity
    while length:
        even = _square(odd)  # 8, 32, 128 ... zero bits
        if length & 1:
            result = tuple(_times(even, row) for row in result)
        length >>= 1
        if not length:
            break
        odd = _square(even)
        if length & 1:
            result = tuple(_times(odd, row) for row in result)
        length >>= 1
    return result


def combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)``."""
    if length2 <= 0:
        return crc1
    return _times(_zeros_operator(length2), crc1) ^ crc2
