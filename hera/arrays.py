"""The array codec of instance files: raw little-endian bytes in base64.

An agent's weights are most of its file, and writing and reading them decides
how fast an agent goes down and up. Decimal number lists are 10-50x too slow
and lose nothing only by luck; raw bytes in base64 round-trip bit for bit at
close to memory speed with SIMD base64 (pybase64). Arrays are streamed in
chunks, so neither side ever holds the whole document as one string, and each
array carries a CRC-32 of its raw bytes so a flipped bit is caught on load.

Arrays that are one value repeated (a brain's initial zero weights) are
stored as that value alone and cost nothing however large they are.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any, BinaryIO, Literal, TypeVar

import numpy as np
import pybase64

from hera import crc as crclib
from hera.jsonscan import Span

T = TypeVar("T")
R = TypeVar("R")

#: dtypes an instance may hold; nothing object-like, nothing platform-sized.
DTYPES = frozenset(
    ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"]
)
MAX_NDIM = 8
#: Raw bytes per chunk: a multiple of 3 so base64 chunks join without padding,
#: small enough to stay in cache between decoding and checksumming.
CHUNK = 3 * 1024 * 1024
Encoding = Literal["base64", "fill"]


class ArrayError(ValueError):
    """An array entry that does not describe the bytes it claims."""


def dtype_code(dtype: np.dtype[Any]) -> str:
    """The canonical little-endian code for ``dtype``, e.g. ``<f4``."""
    code = dtype.newbyteorder("<").str if dtype.itemsize > 1 else dtype.str
    if code not in DTYPES:
        raise ArrayError(f"dtype {dtype} cannot be stored (allowed: {', '.join(sorted(DTYPES))})")
    return code


def is_constant(array: np.ndarray) -> bool:
    """True when every element has the same bit pattern (so NaNs and -0.0 count)."""
    if array.size == 0:
        return False
    flat = array.reshape(-1)
    raw = flat.view(np.dtype(f"u{flat.itemsize}")) if flat.dtype.kind in "fb" else flat
    if raw.dtype.kind == "b":
        raw = raw.view(np.uint8)
    return bool((raw == raw[0]).all())


def _chunks(array: np.ndarray) -> Iterator[memoryview]:
    """Little-endian raw bytes of ``array`` in CHUNK-sized pieces, without a full copy.

    CHUNK is divisible by every itemsize, so converted pieces (for arrays that
    are not contiguous or not little-endian) are whole chunks too.
    """
    little = array.dtype.newbyteorder("<") if array.itemsize > 1 else array.dtype
    if array.flags.c_contiguous and array.dtype == little:
        raw = memoryview(array.reshape(-1).view(np.uint8))
        for start in range(0, len(raw), CHUNK):
            yield raw[start : start + CHUNK]
        return
    flat = array.reshape(-1)  # copies only when it must; a view otherwise
    per = CHUNK // array.itemsize
    for start in range(0, flat.size, per):
        piece = np.ascontiguousarray(flat[start : start + per], dtype=little)
        yield memoryview(piece.view(np.uint8))


@cache
def _pool() -> ThreadPoolExecutor:
    """Threads for base64 and CRC work; both release the GIL on large buffers."""
    workers = max(1, min(8, len(os.sched_getaffinity(0))))
    return ThreadPoolExecutor(workers, thread_name_prefix="hera-codec")


def _ordered(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``map`` on the codec threads, in order, with a bounded number in flight."""
    pool = _pool()
    limit = 2 * pool._max_workers
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _encode(chunk: memoryview) -> tuple[int, int, bytes]:
    return zlib.crc32(chunk), len(chunk), pybase64.b64encode(chunk)


def write_array(out: BinaryIO, array: np.ndarray) -> None:
    """Write one array entry (a JSON object) to ``out``, streaming its data."""
    code = dtype_code(array.dtype)
    meta = {"dtype": code, "shape": list(array.shape)}
    if is_constant(array):
        element = np.ascontiguousarray(array.reshape(-1)[:1], dtype=np.dtype(code))
        meta |= {"encoding": "fill", "data": pybase64.b64encode(element.tobytes()).decode()}
        out.write(json.dumps(meta).encode())
        return
    head = json.dumps(meta | {"encoding": "base64"})[:-1]
    out.write(head.encode() + b', "data": "')
    crc = 0
    for piece_crc, length, text in _ordered(_encode, _chunks(array)):
        crc = crclib.combine(crc, piece_crc, length)
        out.write(text)
    out.write(b'", "crc32": ' + str(crc).encode() + b"}")


def data_length_hint(entry: dict[str, Any], key: str) -> int | None:
    """How many base64 characters an array entry's ``data`` must hold (see jsonscan)."""
    if key != "data" or entry.get("encoding") != "base64" or entry.get("dtype") not in DTYPES:
        return None
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        return None
    nbytes = np.dtype(entry["dtype"]).itemsize
    for n in shape:
        nbytes *= n
    return 4 * ((nbytes + 2) // 3)


@dataclass(frozen=True)
class ArrayEntry:
    """A validated array description whose data still lies in the file buffer."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    encoding: Encoding
    data: Span | str
    crc32: int | None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @classmethod
    def parse(cls, name: str, raw: Any) -> ArrayEntry:
        """Check an entry's fields; the message names the field that is wrong."""
        if not isinstance(raw, dict):
            raise ArrayError(f"arrays.{name}: expected an object")
        unknown = raw.keys() - {"dtype", "shape", "encoding", "data", "crc32"}
        if unknown:
            raise ArrayError(f"arrays.{name}.{sorted(unknown)[0]}: unknown field")
        code = raw.get("dtype")
        if code not in DTYPES:
            raise ArrayError(f"arrays.{name}.dtype: {code!r} is not one of {', '.join(sorted(DTYPES))}")
        shape = raw.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_NDIM
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**40 for n in shape)
        ):
            raise ArrayError(f"arrays.{name}.shape: expected a list of at most {MAX_NDIM} sizes")
        encoding = raw.get("encoding")
        if encoding not in ("base64", "fill"):
            raise ArrayError(f"arrays.{name}.encoding: expected 'base64' or 'fill', got {encoding!r}")
        data = raw.get("data")
        if not isinstance(data, (str, Span)):
            raise ArrayError(f"arrays.{name}.data: expected a base64 string")
        crc = raw.get("crc32")
        if encoding == "base64" and not (isinstance(crc, int) and 0 <= crc < 2**32):
            raise ArrayError(f"arrays.{name}.crc32: expected the CRC-32 of the data")
        entry = cls(name, np.dtype(code), tuple(shape), encoding, data, crc)
        expected = entry.nbytes if encoding == "base64" else entry.dtype.itemsize
        if _b64_len(data) != 4 * ((expected + 2) // 3):
            raise ArrayError(
                f"arrays.{name}.data: holds {_b64_len(data)} base64 characters but dtype and shape need "
                f"{4 * ((expected + 2) // 3)} (truncated or edited file)"
            )
        return entry

    def decode(self, fd: int, buf: Any) -> np.ndarray:
        """Decode into a fresh array, checking base64 and CRC as it goes.

        Long data is read with ``pread`` from ``fd`` in chunks and decoded on
        the codec threads straight into the array; ``buf`` serves short data.
        """
        if self.encoding == "fill":
            raw = _b64decode(self.name, self._text(buf))
            if len(raw) != self.dtype.itemsize:
                raise ArrayError(f"arrays.{self.name}.data: a fill holds exactly one {self.dtype} value")
            element = np.frombuffer(raw, dtype=self.dtype)
            return np.full(self.shape, element[0], dtype=self.dtype)
        array = np.empty(self.shape, dtype=self.dtype)
        out = memoryview(array.reshape(-1).view(np.uint8))
        if isinstance(self.data, str):
            raw = _b64decode(self.name, self.data)
            if len(raw) != len(out):
                raise ArrayError(f"arrays.{self.name}.data: length does not match dtype and shape")
            if raw:
                out[:] = raw
            crc = zlib.crc32(raw)
        else:
            span = self.data
            step = CHUNK // 3 * 4

            def piece(start: int) -> tuple[int, int]:
                text = _pread(fd, start, min(start + step, span.end))
                raw = _b64decode(self.name, text)
                offset = (start - span.start) // 4 * 3
                if offset + len(raw) > len(out) or (start + step >= span.end) != (offset + len(raw) == len(out)):
                    raise ArrayError(f"arrays.{self.name}.data: length does not match dtype and shape")
                out[offset : offset + len(raw)] = raw
                return zlib.crc32(raw), len(raw)

            crc = 0
            for piece_crc, length in _ordered(piece, range(span.start, span.end, step)):
                crc = crclib.combine(crc, piece_crc, length)
        if crc != self.crc32:
            raise ArrayError(f"arrays.{self.name}: checksum mismatch (the file was damaged or edited)")
        return array

    def _text(self, buf: Any) -> Any:
        return self.data if isinstance(self.data, str) else bytes(buf[self.data.start : self.data.end])


_local = threading.local()


def _pread(fd: int, start: int, end: int) -> memoryview:
    """Read ``[start, end)`` into this thread's reused buffer (fresh memory faults slowly)."""
    size = end - start
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _local.buffer = bytearray(max(size, CHUNK // 3 * 4))
    view = memoryview(buffer)[:size]
    done = 0
    while done < size:  # short reads happen on some filesystems
        got = os.preadv(fd, [view[done:]], start + done)
        if not got:
            raise ArrayError("file ended inside array data (truncated)")
        done += got
    return view


def _b64_len(data: Span | str) -> int:
    return len(data)


def _b64decode(name: str, data: Any) -> bytes:
    try:
        return pybase64.b64decode(data, validate=True)
    except (ValueError, TypeError):
        raise ArrayError(f"arrays.{name}.data: not valid base64 (the file was damaged or edited)") from None
