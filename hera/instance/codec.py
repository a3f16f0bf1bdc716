"""The array codec of instance files: raw little-endian bytes in base64, zstd frames, or one value.

An agent's weights are most of its file, and writing and reading them decides
how fast an agent goes down and up. Decimal number lists are 10-50x too slow
and lose nothing only by luck; raw bytes in base64 round-trip bit for bit at
close to memory speed with SIMD base64 (pybase64). Arrays are streamed in
chunks, so neither side ever holds the whole document as one string, and each
array carries a CRC-32 of its raw bytes so a flipped bit is caught on load.

Three encodings (``docs/instance-format.md`` has the layout and the figures):

- ``fill``: an array that is one value repeated (a brain's initial zero
  weights) is stored as that value alone (with the whole array's CRC-32) and
  costs nothing however large it is.
- ``zstd`` (format 3 on): a learned brain is 2-10 % non-zero, and its base64
  was 20x larger than it needs to be. The raw bytes are cut into chunks of
  ``chunk`` bytes and each is an independent zstd frame, stored in base64 as
  one string of the entry's ``data`` list: frames are compressed and inflated
  in parallel on the codec threads and read one at a time (pieces, transcribe)
  without the whole array. It is chosen per array only when it pays
  (:func:`pays`: samples from three places shrink to 3/4 or less), so dense float
  noise stays base64, which decodes faster than zstd inflates. A frame must
  declare its raw size, and exactly the size its place needs, before it is
  inflated into memory of that size: a small frame that would inflate to
  gigabytes (a decompression bomb) is refused, not run.
- ``base64``: everything else.

In an instance file (format 2 on) the CRC-32 also covers what says how to
read the bytes: it is the CRC-32 of ``NAME\0DTYPE\0SHAPE\0`` (the name in
UTF-8, the dtype code such as ``<f4``, the sizes joined by commas) followed by
the raw bytes, whatever the encoding. A name is what tells a family which array
is which, so a bit flipped in ``state.potential`` must be caught like one
flipped in its data; so must ``<i4`` edited to ``<f4`` or ``[64]`` to
``[8, 8]``, which keep the bytes and change the brain. (Format 1, still read,
covered the bytes alone: a renamed array loaded as another one.)

Nothing an entry claims is believed before it is checked with exact integer
arithmetic: a shape's product against :data:`MAX_ARRAY_BYTES`, base64 data
against the bytes the shape needs, the number of frames against shape and
chunk, each frame's text against the most its chunk could compress to, and an
array's size against this machine's memory before anything is allocated (a
``fill`` entry claims its size for free).

Where the time goes (figures in ``docs/benchmarks.md``, "Instance file I/O",
and ``docs/instance-format.md``): the CRC-32 is ISA-L's (``isal``, the same
numbers as zlib's): 31-34 GB/s a thread on this project's 2-core EPYC where
zlib's took 6-7 and was 40-50 % of the codec's CPU; base64 and zstd run on a
small thread pool in cache-sized chunks, and every step that moves bytes does
so without the GIL, so the codec threads really run side by side. Each
chunk's bytes are allocated and freed on the thread that made them: memory
handed between threads kept glibc trimming and refaulting its heaps, and page
faults are slow on these machines. Writers ``pwrite`` their chunk at its known
offset instead of queueing it for one writing thread; readers decode straight
from the file's memory map (no copy of the text), let go of each chunk's pages
once decoded, and ask the kernel to read a window ahead. Reading without
keeping (:meth:`ArrayEntry.verify`, :meth:`ArrayEntry.pieces`,
:meth:`ArrayEntry.transcribe`) holds a few chunks, whatever the array's size.
"""

from __future__ import annotations

import io
import json
import math
import mmap
import os
import resource
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, BinaryIO, Literal, TypeVar

import numpy as np
import pybase64
import zstandard
from isal import isal_zlib

from hera.instance import checksums as crclib
from hera.instance.scanner import Span, label
from hera.table import human_bytes

T = TypeVar("T")
R = TypeVar("R")

#: dtypes an instance may hold; nothing object-like, nothing platform-sized.
DTYPES = frozenset(
    ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"]
)
MAX_NDIM = 8
#: No dimension reaches this; with MAX_NDIM, products stay small Python integers.
MAX_DIM = 1 << 40
#: The most bytes one array, and all of an instance's arrays together, may claim:
#: 1 TiB, several times the memory of the largest accelerator of 2026 (the
#: ``datacenter`` layout of abraxas is about 70 GB). A ``fill`` entry could claim
#: any size in a few bytes of JSON; this cap bounds every loop and allocation
#: that follows from a shape, whatever the machine.
MAX_ARRAY_BYTES = 1 << 40
#: Longest array name, in characters; names are printable (they appear in error lines).
MAX_NAME = 256
#: Raw bytes per chunk: a multiple of 3 so base64 chunks join without padding,
#: and of every itemsize so converted pieces are whole elements. 1.5 MiB (2 MiB
#: of text) stays in cache between base64, CRC and copy: on this project's
#: 2-core EPYC it beat 3 and 6 MiB by 5-20 % per thread, and smaller chunks
#: gained nothing more while paying Python's per-chunk overhead more often.
CHUNK = 3 * 512 * 1024
#: Base64 characters per chunk.
TEXT_CHUNK = CHUNK // 3 * 4
#: How far ahead of the decoders the file is read from disk (see _will_need).
READ_AHEAD = 64 * 1024 * 1024
Encoding = Literal["base64", "fill", "zstd"]
_PAGE = mmap.PAGESIZE
#: zstd level of compressed arrays. Measured on a learned example brain's
#: arrays and on a 3 %-dense float32 array (docs/instance-format.md): level -1
#: ("fast") stores 3-12 % more than level 1 but compresses about 2x and
#: inflates about 2.5x as fast (~2.5 GB/s a thread), so a compressed array
#: loads about as fast as base64; levels 3 and up only cost time here.
ZSTD_LEVEL = -1
#: An array is compressed only if its sampled chunks shrink to at most this
#: fraction: dense float noise stays base64 (decoded faster than inflated).
ZSTD_PAYS = 0.75
#: Smaller arrays are not worth sampling: a few KiB of base64 either way.
ZSTD_MIN_BYTES = 4096
#: Bytes compressed from each of the three places :func:`pays` samples: whole
#: chunks cost 5 ms an array (5 % of a dense brain's save), these 0.5 ms.
ZSTD_SAMPLE = 128 * 1024
#: The raw bytes one zstd frame may hold: each frame is inflated into memory of
#: its declared size, so this bounds what one entry can make a reader allocate
#: per frame, whatever the frame claims.
MAX_FRAME = 64 * 1024 * 1024


def crc32(data: Any, value: int = 0) -> int:
    """The CRC-32 of zlib (same polynomial, same numbers) from ISA-L: ~34 GB/s a thread here, zlib's 7."""
    return isal_zlib.crc32(data, value)


class ArrayError(ValueError):
    """An array entry that does not describe the bytes it claims."""


class TooLarge(ArrayError):
    """A valid entry that this machine has not the memory to load (not damage: no fallback)."""


def check_name(name: str) -> None:
    """Refuse a name that could not appear, as it is, in one line of an error message."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not name.isprintable():
        raise ArrayError(f"arrays.{name!r:.80}: a name must be 1 to {MAX_NAME} printable characters")


def seal(name: str, code: str, shape: tuple[int, ...], crc: int, length: int) -> int:
    """The CRC-32 of an entry's description (see the module's docstring), then ``length`` bytes whose CRC-32 is ``crc``.

    NULs end the fields (names are printable, codes and sizes are ASCII), so
    no other description and data make the same bytes. Joined with
    :func:`hera.instance.checksums.combine`: the data is never walked twice.
    """
    described = f"{name}\0{code}\0{','.join(map(str, shape))}\0".encode()
    return crclib.combine(crc32(described), crc, length)


@cache
def memory_limit() -> int:
    """The memory this process may ever use: physical memory, or its cgroup's, address-space or data limit if lower."""
    limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    # RLIMIT_DATA too: since Linux 4.7 it bounds the private memory an array is decoded into.
    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft)
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = min(limit, int(text))
    return limit


def check_memory(where: str, nbytes: int) -> None:
    """Refuse, before allocating, what could never fit in this machine's memory.

    Without it a large claim raised MemoryError from numpy (a traceback) or,
    with overcommit, was granted and then killed the process later.
    """
    if nbytes > memory_limit():
        raise TooLarge(
            f"{where}: needs {human_bytes(nbytes)} of memory to load, more than this machine has "
            f"({human_bytes(memory_limit())})"
        )


def _allocate(where: str, shape: tuple[int, ...], dtype: np.dtype[Any], fill: Any = 0) -> np.ndarray:
    """An array of ``shape`` (zeros, or ``fill``), or :class:`TooLarge` instead of MemoryError."""
    check_memory(where, math.prod(shape) * dtype.itemsize)
    try:
        # a zero fill maps untouched zero pages and costs no memory until written
        return np.zeros(shape, dtype) if fill == 0 else np.full(shape, fill, dtype)
    except (MemoryError, ValueError):  # ValueError: numpy's "array is too big"
        nbytes = math.prod(shape) * dtype.itemsize
        raise TooLarge(f"{where}: the {human_bytes(nbytes)} of memory to load it are not available") from None


def dtype_code(dtype: np.dtype[Any]) -> str:
    """The canonical little-endian code for ``dtype``, e.g. ``<f4``."""
    code = dtype.newbyteorder("<").str if dtype.itemsize > 1 else dtype.str
    if code not in DTYPES:
        raise ArrayError(f"dtype {dtype} cannot be stored (allowed: {', '.join(sorted(DTYPES))})")
    return code


def _bits(array: np.ndarray) -> np.ndarray:
    """The same memory as unsigned integers, so comparisons see bit patterns (NaN payloads, -0.0)."""
    order = array.dtype.byteorder if array.dtype.byteorder in "<>" else "="
    return array.view(np.dtype(f"u{array.itemsize}").newbyteorder(order))


def _pieces(array: np.ndarray, dtype: np.dtype[Any]) -> Iterator[np.ndarray]:
    """The elements of ``array`` in C order as 1-d contiguous ``dtype`` pieces of bounded size.

    A piece may be a transient buffer that the next step overwrites: use it
    before asking for the next. Never copies the whole array, however it is
    strided, so writing a transposed brain needs no second brain's memory.
    """
    if array.flags.c_contiguous and array.dtype == dtype:
        yield array.reshape(-1)
        return
    if array.size == 0:
        return
    # 'contig' makes every inner loop contiguous, buffering only where needed;
    # 'equiv' casting allows exactly a byte-order swap, which is bit-exact.
    # numpy's stubs misspell the "contig" operand flag as "config", so no overload matches it.
    yield from np.nditer(  # type: ignore[call-overload]
        array,
        flags=["external_loop", "buffered", "zerosize_ok"],
        op_flags=[["readonly", "contig"]],
        op_dtypes=[dtype],
        order="C",
        casting="equiv",
        buffersize=max(1, CHUNK // array.itemsize),
    )


def _without_repeats(array: np.ndarray) -> np.ndarray:
    """``array`` with every broadcast (zero-stride) axis cut to length one: a repeat cannot differ from itself."""
    return array[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in array.strides)]


def is_constant(array: np.ndarray) -> bool:
    """True when every element has the same bit pattern (so NaNs and -0.0 count).

    A few samples settle almost every array that is not constant without a
    pass over it; the full check then runs piece by piece and stops at the
    first difference, with no array-sized temporary. Broadcast axes are
    looked at once (``np.broadcast_to`` of one value is constant in O(1)).
    """
    if array.size == 0:
        return False
    array = _without_repeats(array)
    bits = _bits(array)
    first = bits[np.unravel_index(0, bits.shape)]
    for sample in {array.size - 1, array.size // 2, min(1, array.size - 1)}:
        if bits[np.unravel_index(sample, bits.shape)] != first:
            return False
    step = max(1, (1 << 20) // array.itemsize)  # 1 MiB at a time: a small comparison temporary
    for piece in _pieces(bits, bits.dtype):
        for start in range(0, piece.size, step):
            if not (piece[start : start + step] == first).all():
                return False
    return True


def _chunks(array: np.ndarray, little: np.dtype[Any]) -> Iterator[memoryview]:
    """Little-endian raw bytes of ``array`` in CHUNK-sized pieces (the last one shorter).

    Contiguous little-endian arrays are sliced, never copied; anything else is
    converted piece by piece into fresh chunk buffers (each chunk goes to
    another thread, so it must own its memory).
    """
    if array.flags.c_contiguous and array.dtype == little:
        raw = array.reshape(-1).view(np.uint8).data
        for start in range(0, len(raw), CHUNK):
            yield raw[start : start + CHUNK]
        return
    stage = bytearray(CHUNK)
    filled = 0
    for piece in _pieces(array, little):
        data = piece.view(np.uint8).data
        while len(data):
            take = min(len(data), CHUNK - filled)
            stage[filled : filled + take] = data[:take]
            filled += take
            data = data[take:]
            if filled == CHUNK:
                yield memoryview(stage)
                stage, filled = bytearray(CHUNK), 0
    if filled:
        yield memoryview(stage)[:filled]


@cache
def _pool() -> ThreadPoolExecutor:
    """Threads for base64 and CRC work; both release the GIL on large buffers."""
    workers = max(1, min(8, len(os.sched_getaffinity(0))))
    return ThreadPoolExecutor(workers, thread_name_prefix="hera-codec")


def _ordered(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``map`` on the codec threads, in order, with a few tasks queued at a time.

    For items that hold memory of their own (converted chunks, encoded text
    waiting for its turn to be written). On the way out, error or not, it
    waits for the tasks already running (see :func:`_run_all`).
    """
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
        wait(pending)


def _run_all(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``fn`` of every item on the codec threads; the results in order.

    Every task is queued at once and this thread sleeps until all are done
    (or one fails): workers never wait for it to hand them the next chunk,
    which on a busy machine can cost a whole scheduler time slice each time.
    Only for tasks whose items are cheap (offsets, views) and results small.

    Error or not, it returns only once no task is running: they write into
    the caller's array or file, which must outlive them (a late ``pwrite`` to
    a closed and reused descriptor would land in another file).
    """
    futures = [_pool().submit(fn, item) for item in items]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            error = future.exception() if future.done() else None
            if error is not None:
                raise error  # the first failure in order, as a plain loop would raise it
        return [future.result() for future in futures]
    finally:
        for future in futures:
            future.cancel()
        wait(futures)


def _write_all(out: BinaryIO, data: bytes | memoryview) -> None:
    """``out.write`` that survives short writes (an unbuffered file may write less)."""
    view = memoryview(data)
    while len(view):
        written = out.write(view)
        if written is None:  # a non-blocking stream; instance files are never one
            raise OSError("short write to a non-blocking stream")
        view = view[written:]


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while len(view):
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _positional_fd(out: BinaryIO) -> int | None:
    """The descriptor of ``out`` if chunks can be written at known offsets, else None."""
    try:
        if not out.seekable():
            return None
        fd = out.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    if os.get_blocking(fd) is False or getattr(out, "mode", "").startswith("a"):
        return None  # pwrite on O_APPEND appends on Linux; never on an instance file anyway
    return fd


OnBytes = Callable[[int], None] | None
"""Told how many raw array bytes were just written, decoded or verified (from any thread)."""


def _encode(chunk: memoryview, on_bytes: OnBytes = None) -> tuple[int, int, bytes]:
    text = pybase64.b64encode(chunk)
    if on_bytes is not None:
        on_bytes(len(chunk))
    return crc32(chunk), len(chunk), text


def _encode_base64(out: BinaryIO, array: np.ndarray, little: np.dtype[Any], on_bytes: OnBytes = None) -> int:
    """Write the base64 of ``array`` to ``out``; return the CRC-32 of its raw bytes."""
    crc = 0
    fd = _positional_fd(out)
    if fd is None:
        for piece_crc, length, text in _ordered(lambda chunk: _encode(chunk, on_bytes), _chunks(array, little)):
            crc = crclib.combine(crc, piece_crc, length)
            _write_all(out, text)
        return crc
    out.flush()
    base = out.tell()

    def encode_at(item: tuple[int, memoryview]) -> tuple[int, int]:
        # Each chunk's text has a known place, so the thread that made it writes
        # it and frees it at once: no queue to one writer, no memory crossing
        # threads (which made glibc trim and refault its heaps).
        index, chunk = item
        text = pybase64.b64encode(chunk)
        _pwrite_all(fd, text, base + index * TEXT_CHUNK)
        if on_bytes is not None:
            on_bytes(len(chunk))
        return crc32(chunk), len(chunk)

    chunks = enumerate(_chunks(array, little))
    if array.flags.c_contiguous and array.dtype == little:  # chunks are views: queue them all
        results: Iterable[tuple[int, int]] = _run_all(encode_at, chunks)
    else:
        results = _ordered(encode_at, chunks)
    total = 0
    for piece_crc, length in results:
        crc = crclib.combine(crc, piece_crc, length)
        total += length
    out.seek(base + 4 * ((total + 2) // 3))
    return crc


def _compressor() -> zstandard.ZstdCompressor:
    """This thread's compressor: a zstd context is not to be shared between threads."""
    made = getattr(_local, "compressor", None)
    if made is None:
        made = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return made


def _decompressor() -> zstandard.ZstdDecompressor:
    made = getattr(_local, "decompressor", None)
    if made is None:
        made = _local.decompressor = zstandard.ZstdDecompressor()
    return made


def pays(array: np.ndarray, little: np.dtype[Any]) -> bool:
    """Whether zstd shrinks ``array`` enough to be worth inflating on every load.

    Judged on samples from three places (start, middle, end), so the choice
    costs half a millisecond however large the array: a learned brain's
    weights are sparse throughout, and dense float noise is dense throughout.
    """
    if array.nbytes < ZSTD_MIN_BYTES or array.ndim == 0:
        return False
    per = max(1, min(CHUNK, ZSTD_SAMPLE) // array.itemsize)
    starts = sorted({0, array.size // 2 // per * per, (array.size - 1) // per * per})
    raw = packed = 0
    for start in starts:
        # flat slices copy just that range, however the array is strided
        sample = np.ascontiguousarray(array.flat[start : start + per], dtype=little)
        raw += sample.nbytes
        packed += len(_compressor().compress(sample.data))
    return packed <= ZSTD_PAYS * raw


def _encode_zstd(out: BinaryIO, array: np.ndarray, little: np.dtype[Any], on_bytes: OnBytes = None) -> int:
    """Write the zstd frames of ``array`` (one per raw CHUNK, each in base64) as JSON strings; return the raw CRC-32.

    Frame sizes are not known ahead, so the frames are written in order by this
    thread; they are small (that is why the array is compressed).
    """

    def pack(chunk: memoryview) -> tuple[int, int, bytes]:
        text = pybase64.b64encode(_compressor().compress(chunk))
        if on_bytes is not None:
            on_bytes(len(chunk))
        return crc32(chunk), len(chunk), text

    crc = 0
    for index, (piece_crc, length, text) in enumerate(_ordered(pack, _chunks(array, little))):
        crc = crclib.combine(crc, piece_crc, length)
        _write_all(out, (b', "' if index else b'"') + text + b'"')
    return crc


def write_array(
    out: BinaryIO, array: np.ndarray, name: str | None = None, *, compress: bool = False, on_bytes: OnBytes = None
) -> None:
    """Write one array entry (a JSON object) to ``out``, streaming its data.

    With ``name`` (an instance file) the checksum covers name, dtype and shape
    too (see the module's docstring); without it (a runtime snapshot) only the
    data. ``compress`` (instance files of format 3): zstd where it pays.
    """
    if name is not None:
        check_name(name)
    code = dtype_code(array.dtype)
    little = np.dtype(code)
    meta: dict[str, Any] = {"dtype": code, "shape": list(array.shape)}
    if is_constant(array):
        first = array.reshape(1) if array.ndim == 0 else array[(slice(0, 1),) * array.ndim].reshape(1)
        # Through unsigned integers: a byte-order change that cannot touch a NaN's payload.
        element = _bits(first).astype(f"<u{array.itemsize}").tobytes()
        _write_all(out, json.dumps(_fill_meta(meta, element, array.size, name)).encode())
        if on_bytes is not None:
            on_bytes(array.nbytes)
        return
    encoding = "zstd" if compress and pays(array, little) else "base64"
    if encoding == "zstd":
        head = json.dumps(meta | {"encoding": "zstd", "chunk": CHUNK})[:-1]
        _write_all(out, head.encode() + b', "data": [')
        crc = _encode_zstd(out, array, little, on_bytes)
        closing = b"]"
    else:
        head = json.dumps(meta | {"encoding": "base64"})[:-1]
        _write_all(out, head.encode() + b', "data": "')
        crc = _encode_base64(out, array, little, on_bytes)
        closing = b'"'
    if name is not None:
        crc = seal(name, code, array.shape, crc, array.nbytes)
    _write_all(out, closing + b', "crc32": ' + str(crc).encode() + b"}")


def _fill_meta(meta: dict[str, Any], element: bytes, count: int, name: str | None) -> dict[str, Any]:
    """A fill entry: one element's bytes, with the whole array's checksum.

    Without it a flipped bit in the one stored value would quietly change every element.
    """
    crc = crclib.repeat(crc32(element), len(element), count)
    if name is not None:
        crc = seal(name, meta["dtype"], tuple(meta["shape"]), crc, len(element) * count)
    return meta | {"encoding": "fill", "data": pybase64.b64encode(element).decode(), "crc32": crc}


def data_length_hint(entry: dict[str, Any], key: str) -> int | None:
    """How many base64 characters an array entry's ``data`` must hold (see jsonscan)."""
    if key != "data" or entry.get("encoding") != "base64" or entry.get("dtype") not in DTYPES:
        return None
    shape = entry.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(type(n) is int and 0 <= n < MAX_DIM for n in shape):
        return None  # ArrayEntry.parse says what is wrong
    nbytes = math.prod(shape) * np.dtype(entry["dtype"]).itemsize
    return 4 * ((nbytes + 2) // 3) if nbytes <= MAX_ARRAY_BYTES else None


def _base64_length(nbytes: int) -> int:
    return 4 * ((nbytes + 2) // 3)


def _frame_text_bound(chunk: int) -> int:
    """The most base64 characters a frame of ``chunk`` raw bytes may take (zstd's compress bound, generously)."""
    return _base64_length(chunk + (chunk >> 7) + 1024)


@dataclass(frozen=True)
class ArrayEntry:
    """A validated array description whose data still lies in the file buffer.

    Its data is read in jobs, each one chunk of raw bytes: a CHUNK of base64
    text, or one zstd frame; every way of reading (decode into an array,
    verify, pieces, transcribe) runs the same jobs, so every check applies
    to all of them.
    """

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    encoding: Encoding
    data: Span | str | tuple[Span | str, ...]
    crc32: int | None
    #: Whether ``crc32`` covers name, dtype and shape too (instance files of format 2 on).
    named: bool = False
    #: Raw bytes per zstd frame (every frame but the last holds exactly this many).
    chunk: int = 0

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize

    @classmethod
    def parse(cls, name: str, raw: Any, *, named: bool = False, compressed: bool = False) -> ArrayEntry:
        """Check an entry's fields; the message names the field that is wrong.

        Everything a shape implies is checked here with exact integers, before
        any loop or allocation depends on it. ``named``: the checksum covers
        the name, and every entry has one. ``compressed``: zstd entries are
        allowed (format 3 on).
        """
        check_name(name)
        if not isinstance(raw, dict):
            raise ArrayError(f"arrays.{name}: expected an object")
        unknown = raw.keys() - {"dtype", "shape", "encoding", "data", "crc32", "chunk"}
        if unknown:
            raise ArrayError(f"arrays.{name}.{label(sorted(unknown)[0])}: unknown field")
        code = raw.get("dtype")
        if code not in DTYPES:
            raise ArrayError(f"arrays.{name}.dtype: {code!r:.40} is not one of {', '.join(sorted(DTYPES))}")
        shape = _shape(name, raw.get("shape"), np.dtype(code).itemsize)
        encoding = raw.get("encoding")
        known = ("base64", "fill", "zstd") if compressed else ("base64", "fill")
        if encoding not in ("base64", "fill", "zstd") or encoding not in known:
            raise ArrayError(f"arrays.{name}.encoding: expected {' or '.join(map(repr, known))}, got {encoding!r:.40}")
        if encoding != "zstd" and "chunk" in raw:
            raise ArrayError(f"arrays.{name}.chunk: unknown field (only a zstd entry has one)")
        crc = raw.get("crc32")
        # Required for base64 data; fills written before fills had one lack it (format 1 only).
        if (named or encoding != "fill" or crc is not None) and not (
            isinstance(crc, int) and not isinstance(crc, bool) and 0 <= crc < 2**32
        ):
            raise ArrayError(f"arrays.{name}.crc32: expected the CRC-32 of the data")
        if encoding == "zstd":
            return cls._parse_zstd(name, raw, np.dtype(code), shape, crc, named)
        data = raw.get("data")
        if not isinstance(data, (str, Span)):
            raise ArrayError(f"arrays.{name}.data: expected a base64 string")
        entry = cls(name, np.dtype(code), shape, encoding, data, crc, named)
        expected = entry.nbytes if encoding == "base64" else entry.dtype.itemsize
        if len(data) != _base64_length(expected):
            raise ArrayError(
                f"arrays.{name}.data: holds {len(data)} base64 characters but dtype and shape need "
                f"{_base64_length(expected)} (truncated or edited file)"
            )
        return entry

    @classmethod
    def _parse_zstd(
        cls, name: str, raw: dict[str, Any], dtype: np.dtype[Any], shape: tuple[int, ...], crc: int | None, named: bool
    ) -> ArrayEntry:
        """A zstd entry: ``chunk`` raw bytes per frame, as many frames as the shape needs, none oversized."""
        chunk = raw.get("chunk")
        if type(chunk) is not int or not 8 <= chunk <= MAX_FRAME or chunk % 8:
            raise ArrayError(
                f"arrays.{name}.chunk: expected the raw bytes per frame, a multiple of 8 from 8 to {MAX_FRAME}, "
                f"got {chunk!r:.40}"
            )
        data = raw.get("data")
        if not isinstance(data, list):
            raise ArrayError(f"arrays.{name}.data: expected a list of base64 zstd frames")
        entry = cls(name, dtype, shape, "zstd", tuple(data), crc, named, chunk)
        frames = -(-entry.nbytes // chunk)
        if len(data) != frames:
            raise ArrayError(
                f"arrays.{name}.data: holds {len(data)} frames but dtype, shape and chunk need {frames} "
                "(truncated or edited file)"
            )
        bound = _frame_text_bound(chunk)
        for index, item in enumerate(data):
            if not isinstance(item, (str, Span)) or not 0 < len(item) <= bound or len(item) % 4:
                raise ArrayError(
                    f"arrays.{name}.data[{index}]: expected a zstd frame in base64 (a multiple of 4 characters, "
                    f"at most {bound})"
                )
        return entry

    # -- reading, job by job ---------------------------------------------------------

    def _step(self) -> int:
        """Raw bytes per job (the last may hold fewer)."""
        if self.encoding == "zstd":
            return self.chunk
        return CHUNK if isinstance(self.data, Span) else max(1, self.nbytes)

    def _jobs(self) -> range:
        if self.encoding == "zstd":
            return range(len(self.data))
        if isinstance(self.data, Span):
            return range(-(-len(self.data) // TEXT_CHUNK))
        return range(1)

    @cached_property
    def _extent(self) -> tuple[int, int] | None:
        """Where the entry's data lies in the file, when it lies there (Spans); computed once, not per frame."""
        items = self.data if isinstance(self.data, tuple) else (self.data,)
        spans = [item for item in items if isinstance(item, Span)]
        return (spans[0].start, spans[-1].end) if spans else None

    def _raw(self, index: int, fd: int, buf: Any, sink: Callable[[Any], None] | None = None) -> bytes:
        """Job ``index``'s raw bytes, validated (canonical base64, frame sizes); ``sink`` sees its text first.

        A job's text is read from ``buf`` (the file's map) and its pages let
        go of once decoded, or with ``pread`` from ``fd`` where ``buf`` is no map.
        """
        step = self._step()
        expected = min(step, self.nbytes - index * step)
        zstd = self.encoding == "zstd"
        item = self.data[index] if isinstance(self.data, tuple) else self.data
        where = f"arrays.{self.name}.data" + (f"[{index}]" if zstd else "")
        assert isinstance(item, (Span, str))
        if isinstance(item, str):
            text: Any = item.encode("ascii", "replace")  # '?' is not base64: a clean error below
            if sink is not None:
                sink(text)
            packed = _unbase64(where, text)
        else:
            start = item.start if zstd else item.start + index * TEXT_CHUNK
            end = item.end if zstd else min(start + TEXT_CHUNK, item.end)
            mapped = buf if isinstance(buf, mmap.mmap) else None
            if mapped is None:
                text = _pread(where, fd, start, end)
                if sink is not None:
                    sink(text)
                packed = _unbase64(where, text)
            else:
                extent = self._extent
                assert extent is not None
                _will_need(fd, start + READ_AHEAD, min(extent[1], end + READ_AHEAD))
                with memoryview(mapped)[start:end] as text:
                    if sink is not None:
                        sink(text)
                    packed = _unbase64(where, text)
                # Done with these pages: drop them from this process's resident
                # set (they stay in the page cache) so a read peaks at the
                # arrays' size, not arrays plus file. Safe beside other threads:
                # a shared file mapping just faults a dropped page back in.
                aligned = start - start % _PAGE
                mapped.madvise(mmap.MADV_DONTNEED, aligned, end - aligned)
        raw = _inflate(where, packed, expected) if zstd else packed
        if len(raw) != expected:
            raise ArrayError(f"arrays.{self.name}.data: length does not match dtype and shape")
        return raw

    def _prefetch(self, fd: int, buf: Any) -> None:
        extent = self._extent
        if extent is not None and isinstance(buf, mmap.mmap):
            _will_need(fd, extent[0], min(extent[1], extent[0] + READ_AHEAD))

    def _each(self, fd: int, buf: Any, job: Callable[[int, bytes], None], on_bytes: OnBytes) -> None:
        """Run every job on the codec threads, ``job(offset, raw)`` on each chunk, and check the CRC-32."""
        step = self._step()

        def run(index: int) -> tuple[int, int]:
            raw = self._raw(index, fd, buf)
            job(index * step, raw)
            if on_bytes is not None:
                on_bytes(len(raw))
            return crc32(raw), len(raw)

        self._check_crc(self._crc_of_all(run, fd, buf))

    def _crc_of_all(self, run: Callable[[int], tuple[int, int]], fd: int, buf: Any) -> int:
        """``run`` on every chunk on the codec threads (each giving its raw CRC-32 and length), combined in order."""
        self._prefetch(fd, buf)
        crc = 0
        for piece_crc, length in _run_all(run, self._jobs()):
            crc = crclib.combine(crc, piece_crc, length)
        return crc

    def decode(self, fd: int, buf: Any, on_bytes: OnBytes = None) -> np.ndarray:
        """Decode into a fresh array, checking encoding and CRC as it goes.

        Long data is decoded chunk by chunk on the codec threads straight from
        ``buf`` (the file's memory map) into the array; where ``buf`` is not a
        map, the text is read with ``pread`` from ``fd`` instead.
        """
        if self.encoding == "fill":
            value = self.fill_value(buf)
            bits = np.dtype(f"<u{self.dtype.itemsize}")
            # Filled as unsigned integers so a NaN payload survives bit for bit.
            array = _allocate(f"arrays.{self.name}", self.shape, bits, value.view(bits)).view(self.dtype)
            if on_bytes is not None:
                on_bytes(self.nbytes)
            return array
        array = _allocate(f"arrays.{self.name}", self.shape, self.dtype)
        out = array.reshape(-1).view(np.uint8)

        def into(offset: int, raw: bytes) -> None:
            # numpy copies without the GIL; a memoryview copy holds it, and
            # the other codec thread with it.
            out[offset : offset + len(raw)] = np.frombuffer(raw, dtype=np.uint8)

        self._each(fd, buf, into, on_bytes)
        return array

    def verify(self, fd: int, buf: Any, on_bytes: OnBytes = None) -> None:
        """Check every byte and the checksum as :meth:`decode` does, keeping nothing: memory of a few chunks."""
        if self.encoding == "fill":
            self.fill_value(buf)
            if on_bytes is not None:
                on_bytes(self.nbytes)
            return
        self._each(fd, buf, lambda offset, raw: None, on_bytes)

    def pieces(self, fd: int, buf: Any, on_bytes: OnBytes = None) -> Iterator[np.ndarray]:
        """The elements in C order as read-only 1-d pieces of at most a chunk; the CRC-32 is checked after the last."""
        if self.encoding == "fill":
            value = self.fill_value(buf)
            per = max(1, CHUNK // self.dtype.itemsize)
            bits = np.dtype(f"<u{self.dtype.itemsize}")
            piece = np.full(min(per, self.count), value.view(bits), bits).view(self.dtype)
            piece.flags.writeable = False
            for start in range(0, self.count, per):
                part = piece[: min(per, self.count - start)]
                if on_bytes is not None:
                    on_bytes(part.nbytes)
                yield part
            return

        def read(index: int) -> tuple[int, bytes]:
            raw = self._raw(index, fd, buf)
            return crc32(raw), raw

        self._prefetch(fd, buf)
        crc = 0
        for piece_crc, raw in _ordered(read, self._jobs()):
            crc = crclib.combine(crc, piece_crc, len(raw))
            if on_bytes is not None:
                on_bytes(len(raw))
            yield np.frombuffer(raw, dtype=self.dtype)
        self._check_crc(crc)

    def transcribe(self, out: BinaryIO, fd: int, buf: Any, on_bytes: OnBytes = None) -> None:
        """Write this entry to ``out`` as an instance file of the current format holds it, verifying as it passes.

        Data already valid in the current format is copied through as text
        (each job's text is written by the thread that checked it, at its
        known offset); only the checksum is sealed anew where the source's
        (format 1) covered the bytes alone. Base64 data that zstd would shrink
        (an older file's learned brain, judged on samples of three chunks as
        :func:`pays` does) is compressed on the way, chunk by chunk. Memory:
        a few chunks.
        """
        code = self.dtype.str
        meta: dict[str, Any] = {"dtype": code, "shape": list(self.shape)}
        if self.encoding == "fill":
            element = self.fill_value(buf).tobytes()
            _write_all(out, json.dumps(_fill_meta(meta, element, self.count, self.name)).encode())
            if on_bytes is not None:
                on_bytes(self.nbytes)
            return
        if self.encoding == "base64" and isinstance(self.data, Span) and self._pays(fd, buf):
            self._compress_into(out, fd, buf, on_bytes, meta)
            return
        target = _positional_fd(out)
        if target is None:
            raise OSError("transcribe writes to a regular file")
        zstd = self.encoding == "zstd"
        head = json.dumps(meta | ({"encoding": "zstd", "chunk": self.chunk} if zstd else {"encoding": "base64"}))[:-1]
        _write_all(out, head.encode() + (b', "data": [' if zstd else b', "data": "'))
        out.flush()
        base = out.tell()
        # Where each job's text goes: base64 chunks lie as in the source; frames
        # are each quoted, separated by ', ' (4 characters between two frames' texts).
        offsets: list[int] = []
        if isinstance(self.data, tuple):
            at = base
            for index, item in enumerate(self.data):
                at += 4 if index else 1
                offsets.append(at)
                at += len(item)
            end = at + 1 if offsets else base
        else:
            offsets = [base + index * TEXT_CHUNK for index in self._jobs()]
            end = base + len(self.data)

        def copy(index: int) -> tuple[int, int]:
            where = offsets[index]

            def sink(text: Any) -> None:
                if zstd:
                    _pwrite_all(target, b'"' if index == 0 else b', "', where - (1 if index == 0 else 3))
                    _pwrite_all(target, text, where)
                    _pwrite_all(target, b'"', where + len(text))
                else:
                    _pwrite_all(target, text, where)

            raw = self._raw(index, fd, buf, sink)
            if on_bytes is not None:
                on_bytes(len(raw))
            return crc32(raw), len(raw)

        crc = self._crc_of_all(copy, fd, buf)
        out.seek(end)
        self._close_entry(out, crc, b"]" if zstd else b'"')

    def _close_entry(self, out: BinaryIO, crc: int, closing: bytes) -> None:
        """Check the source's checksum against the CRC-32 of the bytes that passed; write the entry's end, sealed."""
        self._check_crc(crc)
        sealed = self.crc32 if self.named else seal(self.name, self.dtype.str, self.shape, crc, self.nbytes)
        _write_all(out, closing + b', "crc32": ' + str(sealed).encode() + b"}")

    def _pays(self, fd: int, buf: Any) -> bool:
        """Whether zstd would shrink this base64 entry enough (see :func:`pays`), from three of its chunks."""
        jobs = self._jobs()
        if self.nbytes < ZSTD_MIN_BYTES or not jobs:
            return False
        raw = packed = 0
        for index in sorted({0, len(jobs) // 2, len(jobs) - 1}):
            sample = self._raw(index, fd, buf)[:ZSTD_SAMPLE]
            raw += len(sample)
            packed += len(_compressor().compress(sample))
        return packed <= ZSTD_PAYS * raw

    def _compress_into(self, out: BinaryIO, fd: int, buf: Any, on_bytes: OnBytes, meta: dict[str, Any]) -> None:
        """Write this base64 entry as zstd frames, one per job's chunk, verifying as they pass."""
        head = json.dumps(meta | {"encoding": "zstd", "chunk": self._step()})[:-1]
        _write_all(out, head.encode() + b', "data": [')

        def pack(index: int) -> tuple[int, int, bytes]:
            raw = self._raw(index, fd, buf)
            text = pybase64.b64encode(_compressor().compress(raw))
            if on_bytes is not None:
                on_bytes(len(raw))
            return crc32(raw), len(raw), text

        self._prefetch(fd, buf)
        crc = 0
        for index, (piece_crc, length, text) in enumerate(_ordered(pack, self._jobs())):
            crc = crclib.combine(crc, piece_crc, length)
            _write_all(out, (b', "' if index else b'"') + text + b'"')
        self._close_entry(out, crc, b"]")

    def _check_crc(self, crc: int) -> None:
        """Compare the data's CRC-32 (sealed with the entry's description where the format says so) with the file's."""
        if self.named:
            crc = seal(self.name, self.dtype.str, self.shape, crc, self.nbytes)
        if crc != self.crc32:
            raise ArrayError(f"arrays.{self.name}: checksum mismatch (the file was damaged or edited)")

    def fill_value(self, buf: Any) -> np.ndarray:
        """A fill entry's one value (a 0-d array), its checksum verified: the array without its size in memory."""
        if self.encoding != "fill":
            raise ValueError(f"arrays.{self.name} is not a fill")
        assert isinstance(self.data, (Span, str))
        text = self.data if isinstance(self.data, str) else bytes(buf[self.data.start : self.data.end])
        if isinstance(text, str):
            text = text.encode("ascii", "replace")
        raw = _unbase64(f"arrays.{self.name}.data", text)
        if len(raw) != self.dtype.itemsize:
            raise ArrayError(f"arrays.{self.name}.data: length does not match dtype and shape")
        if self.crc32 is not None:
            self._check_crc(crclib.repeat(crc32(raw), len(raw), self.count))
        return np.frombuffer(raw, dtype=self.dtype).reshape(()).copy()  # dtypes here are little-endian already


def _inflate(where: str, frame: bytes, expected: int) -> bytes:
    """One zstd frame's bytes, which must be exactly ``expected``.

    The frame must declare its size, and declare ``expected``: only then is it
    inflated, into memory of that size (so a frame that would inflate to
    gigabytes costs nothing), and must end exactly where its data does.
    """
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError:
        raise ArrayError(f"{where}: not a zstd frame (the file was damaged or edited)") from None
    if declared != expected:
        said = "no size" if declared < 0 else f"{declared} bytes"
        raise ArrayError(f"{where}: the frame declares {said}, dtype, shape and chunk need {expected} (the file was damaged or edited)")
    try:
        raw = _decompressor().decompress(frame, max_output_size=expected, allow_extra_data=False)
    except zstandard.ZstdError:
        raise ArrayError(f"{where}: not a valid zstd frame (the file was damaged or edited)") from None
    if len(raw) != expected:
        raise ArrayError(f"{where}: the frame holds {len(raw)} bytes, dtype, shape and chunk need {expected}")
    return raw


def _shape(name: str, shape: Any, itemsize: int) -> tuple[int, ...]:
    """A shape as a tuple, once its every dimension and its product are within the limits."""
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise ArrayError(f"arrays.{name}.shape: expected a list of at most {MAX_NDIM} sizes")
    if not all(type(n) is int and 0 <= n < MAX_DIM for n in shape):
        raise ArrayError(f"arrays.{name}.shape: every size must be a whole number from 0 to {MAX_DIM - 1}")
    nbytes = math.prod(shape) * itemsize  # exact: Python integers never wrap
    if nbytes > MAX_ARRAY_BYTES:
        raise ArrayError(
            f"arrays.{name}.shape: claims {nbytes:.3g} bytes, more than the {human_bytes(MAX_ARRAY_BYTES)} "
            "an array may hold (the file was damaged or edited)"
        )
    return tuple(shape)


def _will_need(fd: int, start: int, end: int) -> None:
    """Ask the kernel to start reading ``[start, end)`` of the file now.

    A file not in the page cache (an agent upped after a reboot) is otherwise
    read a page fault at a time, at half the speed; advising a fixed window
    ahead keeps the disk busy without reading more than that window early.
    (``posix_fadvise`` rather than the map's ``madvise``: it lets go of the GIL.)
    """
    if end > start:
        os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_WILLNEED)


_local = threading.local()


def _pread(where: str, fd: int, start: int, end: int) -> memoryview:
    """Read ``[start, end)`` into this thread's reused buffer (fresh memory faults slowly)."""
    size = end - start
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _local.buffer = bytearray(max(size, TEXT_CHUNK))
    view = memoryview(buffer)[:size]
    done = 0
    while done < size:  # short reads happen on some filesystems
        got = os.preadv(fd, [view[done:]], start + done)
        if not got:
            raise ArrayError(f"{where}: the file ends inside it (truncated)")
        done += got
    return view


def _unbase64(where: str, text: Any) -> bytes:
    """Canonical base64 only: decoded, and with padding the unused bits of the last character zero.

    Decoding ignores those bits (so the CRC would not see them): requiring
    them zero makes every changed character an error.
    """
    try:
        raw = pybase64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise ArrayError(f"{where}: not valid base64 (the file was damaged or edited)") from None
    tail = len(raw) % 3
    if tail and pybase64.b64encode(raw[len(raw) - tail :]) != bytes(text[len(text) - 4 :]):
        raise ArrayError(f"{where}: not valid base64 (the file was damaged or edited)")
    return raw
