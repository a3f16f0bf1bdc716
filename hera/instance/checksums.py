"""CRC-32 of a byte stream checksummed in pieces on several threads.

The instance codec checksums array chunks in parallel; this joins the pieces'
CRCs into the CRC-32 of the whole (what ``zlib.crc32`` of the concatenation
gives), so the number in a file is the standard one anybody can verify.
Python's zlib lacks ``crc32_combine``; this is zlib's own method (since 1.2.12):
multiply by x^(8·len) modulo the CRC polynomial, with x^(2^k) from a table.
It costs ~0.1 ms in Python for any length, where the older 32×32 matrix
squaring cost ~4 ms, once per array of a brain with hundreds of them.
"""

from __future__ import annotations

from functools import lru_cache

_POLY = 0xEDB88320  # reflected: bit 31 is x^0


def _multiply(a: int, b: int) -> int:
    """a·b modulo the CRC polynomial, in zlib's reflected bit order."""
    product = 0
    mask = 1 << 31
    while a:
        if a & mask:
            product ^= b
            a ^= mask
        mask >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


def _powers() -> tuple[int, ...]:
    """x^(2^k) modulo the polynomial, k = 0..31."""
    table = [1 << 30]  # x^1
    for _ in range(31):
        table.append(_multiply(table[-1], table[-1]))
    return tuple(table)


_X2N = _powers()


@lru_cache(maxsize=64)
def _shift(length: int) -> int:
    """x^(8·length) modulo the polynomial: appends ``length`` zero bytes to a CRC."""
    power = 1 << 31  # x^0
    k = 3  # 8·length = length·2^3
    while length:
        if length & 1:
            power = _multiply(_X2N[k & 31], power)
        length >>= 1
        k += 1
    return power


def combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)``."""
    if length2 <= 0 or crc1 == 0:  # zero times anything is zero: skip the power
        return crc2 if length2 > 0 else crc1
    return _multiply(_shift(length2), crc1) ^ crc2


def repeat(crc: int, length: int, count: int) -> int:
    """CRC-32 of ``count`` copies of a piece whose CRC-32 is ``crc``, in O(log count).

    A "fill" array is one element repeated, perhaps a billion times: its
    checksum comes from doubling, never from walking the bytes.
    """
    # A negative count never reaches zero by shifting (-1 >> 1 == -1): a file
    # whose shape wrapped a 64-bit product once made this loop for ever.
    if count < 0 or length < 0:
        raise ValueError(f"repeat: count {count} and length {length} must not be negative")
    result = 0
    while count:
        if count & 1:
            result = combine(result, crc, length)
        count >>= 1
        if count:
            crc = combine(crc, crc, length)
            length *= 2
    return result
