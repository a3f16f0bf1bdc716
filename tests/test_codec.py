"""The instance file's array codec: exact round trips, and every kind of damage caught.

An instance file is the only copy of a downed agent, so a load must give back
exactly the bits that were saved (NaN payloads, byte order, strides and all)
or fail with a message that names the file and the array, never return
quietly wrong weights. Chunks are shrunk here so that multi-chunk arrays stay
small and the whole module runs in a couple of seconds.
"""

from __future__ import annotations

import base64
import io
import json
import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hera.errors import HeraError
from hera.instance import FamilyRef, Header, InstanceFileError, checksums as crclib, codec, load, now, read_header, save
from hera.instance.scanner import MAX_DEPTH, ScanError, Scanner

#: A small chunk: a multiple of 3 (base64 joins) and of 8 (every itemsize).
SMALL_CHUNK = 3 * 8 * 40


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(codec, "CHUNK", SMALL_CHUNK)
    monkeypatch.setattr(codec, "TEXT_CHUNK", SMALL_CHUNK // 3 * 4)
    return SMALL_CHUNK


def header() -> Header:
    return Header(
        uuid="6f1c1a52-55d8-4a4c-9d8f-3d8b1d2f6a10",
        callsign="codec-test",
        family=FamilyRef(name="test", version="0"),
        layout="example",
        params={"n": 1},
        seed=7,
        created=now(),
    )


def random_array(rng: np.random.Generator, code: str, count: int) -> np.ndarray:
    """Random bit patterns of ``code`` (so floats include NaNs with payloads, infinities, -0.0)."""
    dtype = np.dtype(code)
    if dtype.kind == "b":
        return rng.integers(0, 2, count).astype(bool)
    return rng.integers(0, 256, count * dtype.itemsize, dtype=np.uint8).view(dtype)


def stored(array: np.ndarray) -> np.ndarray:
    """What a load must give back: the same values, C order, little-endian."""
    little = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    return np.array(array, order="C").astype(little)


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def round_trip(tmp_path: Path, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    path = tmp_path / "instance.json"
    save(path, header(), arrays)
    return load(path).arrays


def variants(rng: np.random.Generator, code: str, chunk: int) -> dict[str, np.ndarray]:
    """Every layout a caller may hand over, for one dtype; some span several chunks."""
    itemsize = np.dtype(code).itemsize
    many = (chunk * 3 + 5) // itemsize  # over three chunks, and not a multiple of 3 bytes
    base = random_array(rng, code, many)
    big = base.astype(base.dtype.newbyteorder(">")) if itemsize > 1 else base
    one = random_array(rng, code, 1)
    return {
        "flat": base,
        "big_endian": big,
        "big_endian_strided": big[::-3],
        "transposed": random_array(rng, code, 2 * 3 * 50).reshape(2, 3, 50).transpose(2, 0, 1),
        "strided_2d": random_array(rng, code, 7 * 60).reshape(7, 60)[1::2, ::-5],
        "short": random_array(rng, code, 5),
        "zero_size": np.zeros((3, 0, 2), dtype=code),
        "empty": np.zeros(0, dtype=code),
        "scalar": one.reshape(()),
        "fill": np.full((4, 5), one[0], dtype=code),
        "fill_big_endian": np.full(9, one[0], dtype=code).astype(big.dtype),
        "fill_multi_chunk": np.full(many, one[0], dtype=code),
    }


@pytest.mark.parametrize("code", sorted(codec.DTYPES))
def test_every_dtype_and_layout_round_trips_bit_for_bit(tmp_path: Path, small_chunks: int, code: str) -> None:
    rng = np.random.default_rng(zlib.crc32(code.encode()))
    arrays = variants(rng, code, small_chunks)
    loaded = round_trip(tmp_path, arrays)
    assert list(loaded) == list(arrays)
    for name, array in arrays.items():
        assert_same_bits(loaded[name], stored(array))
        assert loaded[name].flags.writeable and loaded[name].flags.c_contiguous, name


def test_full_size_chunks_round_trip(tmp_path: Path) -> None:
    """The real chunk size once: an array of two and a half chunks, not a multiple of 3 bytes."""
    rng = np.random.default_rng(1)
    array = random_array(rng, "<f4", (codec.CHUNK * 5 // 2 + 4) // 4)
    loaded = round_trip(tmp_path, {"w": array, "t": array[: 3 * 1000].reshape(3, 1000).T})
    assert_same_bits(loaded["w"], array)
    assert_same_bits(loaded["t"], stored(array[: 3 * 1000].reshape(3, 1000).T))


def test_nan_payloads_survive_in_data_and_in_fill(tmp_path: Path) -> None:
    payloads = np.array([0x7FC00001, 0xFFC12345, 0x7F800001, 0x80000000], dtype="<u4")
    nans = payloads.view("<f4")
    arrays = {
        "data": nans,
        "fill_nan": np.full(1000, payloads[1], dtype="<u4").view("<f4"),
        "fill_nan_be": np.full(10, payloads[2], dtype="<u4").view("<f4").astype(">f4"),
        "fill_neg_zero": np.full(10, -0.0, dtype="<f8"),
        "half_nan": np.full(3, 0x7E01, dtype="<u2").view("<f2"),
    }
    loaded = round_trip(tmp_path, arrays)
    for name, array in arrays.items():
        assert_same_bits(loaded[name], stored(array))


def test_constant_arrays_cost_nothing_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "zeros.json"
    save(path, header(), {"zeros": np.zeros((1000, 1000), dtype="<f8"), "ones": np.ones(10**6, dtype="<i2")})
    assert path.stat().st_size < 2000
    entries = json.loads(path.read_text())["arrays"]
    assert entries["zeros"]["encoding"] == entries["ones"]["encoding"] == "fill"
    loaded = load(path).arrays
    assert not loaded["zeros"].any() and (loaded["ones"] == 1).all()


def test_one_differing_element_anywhere_defeats_the_fill(small_chunks: int) -> None:
    for position in (0, 1, 50, 999, 1000 - 1):
        array = np.zeros(1000, dtype="<f4")
        array[position] = -0.0  # differs only in its sign bit
        assert not codec.is_constant(array)
        assert not codec.is_constant(array.astype(">f4")[::-1])
    assert codec.is_constant(np.zeros((10, 20), dtype=">i8").T)


def write_entry(array: np.ndarray, out: Any) -> bytes:
    codec.write_array(out, array)
    out.flush()
    return out.getvalue() if isinstance(out, io.BytesIO) else b""


def test_positional_and_streamed_writes_make_the_same_bytes(tmp_path: Path, small_chunks: int) -> None:
    """Files take the pwrite path (chunks written where they belong); other streams are written in order."""
    array = random_array(np.random.default_rng(2), "<f8", 1000).reshape(10, 100)
    streamed = write_entry(array, io.BytesIO())
    for buffering in (0, -1):
        path = tmp_path / f"entry-{buffering}"
        with open(path, "wb", buffering=buffering) as out:
            out.write(b"prefix:")
            codec.write_array(out, array)
            out.write(b":suffix")
        assert path.read_bytes() == b"prefix:" + streamed + b":suffix"


# --- damage ---------------------------------------------------------------


def saved(tmp_path: Path, arrays: dict[str, np.ndarray]) -> tuple[Path, bytearray]:
    path = tmp_path / "brain.json"
    save(path, header(), arrays)
    return path, bytearray(path.read_bytes())


def data_span(content: bytes, name: str) -> tuple[int, int]:
    """Where array ``name``'s base64 lies in a file hera wrote."""
    key = content.index(json.dumps(name).encode() + b": ")
    start = content.index(b'"data": "', key) + len(b'"data": "')
    return start, content.index(b'"', start)


def load_error(path: Path) -> str:
    with pytest.raises(HeraError) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_a_flipped_bit_in_the_data_is_caught_and_names_the_array(tmp_path: Path, small_chunks: int) -> None:
    rng = np.random.default_rng(3)
    arrays = {"good": random_array(rng, "<f4", 2000), "weights": random_array(rng, "<f4", 2000)}
    path, content = saved(tmp_path, arrays)
    start, end = data_span(content, "weights")
    for where in (start, start + small_chunks, end - 5):
        damaged = bytearray(content)
        # Another valid base64 digit: one raw bit differs, the text stays well-formed.
        damaged[where] = ord("B") if damaged[where] == ord("A") else ord("A")
        path.write_bytes(damaged)
        message = load_error(path)
        assert "arrays.weights" in message and "checksum" in message


def test_an_invalid_base64_character_is_an_error(tmp_path: Path, small_chunks: int) -> None:
    rng = np.random.default_rng(4)
    path, content = saved(tmp_path, {"weights": random_array(rng, "<u2", 3000)})
    start, end = data_span(content, "weights")
    for char in b"!= \n\\":
        for where in (start, (start + end) // 2, end - 1):
            damaged = bytearray(content)
            damaged[where] = char
            path.write_bytes(damaged)
            assert "arrays.weights" in load_error(path) or "malformed JSON" in load_error(path)


def test_unused_padding_bits_must_be_zero(tmp_path: Path) -> None:
    """With padding, one character's low bits are ignored by decoders; changing them is still damage."""
    array = np.arange(5, dtype="<u2")  # 10 bytes: the last quantum carries one byte and two pads
    path, content = saved(tmp_path, {"weights": array})
    start, end = data_span(content, "weights")
    assert content[end - 2 : end] == b"=="
    damaged = bytearray(content)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    damaged[end - 3] = alphabet[alphabet.index(damaged[end - 3]) ^ 1]  # only an unused bit
    path.write_bytes(damaged)
    assert "arrays.weights" in load_error(path)
    # and the same for a fill
    path, content = saved(tmp_path, {"fill": np.full(7, 1, dtype="<u2")})
    start, end = data_span(content, "fill")
    damaged = bytearray(content)
    damaged[end - 2] = alphabet[alphabet.index(damaged[end - 2]) ^ 1]
    path.write_bytes(damaged)
    assert "arrays.fill" in load_error(path)


def test_a_changed_fill_value_is_caught_by_its_checksum(tmp_path: Path) -> None:
    """A fill's one value stands for every element, so it carries the whole array's CRC-32 too."""
    array = np.zeros((300, 7), dtype="<f4")
    path, content = saved(tmp_path, {"weights": array})
    entry = json.loads(content)["arrays"]["weights"]
    # Format 2: the checksum covers the name, dtype and shape before the bytes, so a renamed or reshaped array fails it.
    assert entry["encoding"] == "fill" and entry["crc32"] == zlib.crc32(b"weights\x00<f4\x00300,7\x00" + array.tobytes())
    path.write_bytes(bytes(content).replace(b'"data": "AAAAAA=="', b'"data": "AAAAQA=="'))  # 0.0 -> 2.0
    assert "arrays.weights" in load_error(path)
    # Files from before fills had a checksum (format 1 only) still load; a checksum of the wrong type does not.
    document = json.loads(content)
    document["format_version"] = 1
    del document["arrays"]["weights"]["crc32"]
    path.write_text(json.dumps(document))
    assert not load(path).arrays["weights"].any()
    document["arrays"]["weights"]["crc32"] = "0"
    path.write_text(json.dumps(document))
    assert "arrays.weights.crc32" in load_error(path)


def test_a_truncated_file_is_an_error_wherever_it_was_cut(tmp_path: Path, small_chunks: int) -> None:
    rng = np.random.default_rng(5)
    path, content = saved(tmp_path, {"a": random_array(rng, "<f8", 500), "b": random_array(rng, "<i4", 700)})
    start, end = data_span(content, "b")
    for cut in (10, 200, start + 3, start + small_chunks + 1, end - 1, end + 1, len(content) - 3):
        path.write_bytes(content[:cut])
        load_error(path)


def test_a_wrong_length_or_checksum_field_is_an_error(tmp_path: Path, small_chunks: int) -> None:
    path, content = saved(tmp_path, {"w": np.arange(1000, dtype="<i4")})
    document = json.loads(content)
    for field, value in (("shape", [999]), ("shape", [1001]), ("crc32", 12345), ("dtype", "<f8"), ("crc32", -1)):
        edited = json.loads(content)
        edited["arrays"]["w"][field] = value
        path.write_text(json.dumps(edited))
        assert "arrays.w" in load_error(path)
    assert document["arrays"]["w"]["crc32"] == zlib.crc32(b"w\x00<i4\x001000\x00" + np.arange(1000, dtype="<i4").tobytes())


# --- crc ------------------------------------------------------------------


def test_crc_combine_matches_zlib_on_random_splits() -> None:
    rng = random.Random(6)
    data = bytes(rng.getrandbits(8) for _ in range(5000))
    for _ in range(200):
        cuts = sorted(rng.sample(range(len(data) + 1), rng.randint(1, 6)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        crc = 0
        for piece in pieces:
            crc = crclib.combine(crc, zlib.crc32(piece), len(piece))
        assert crc == zlib.crc32(data)
    for piece in (b"\x00\x00\x80\x3f", b"\x01", b"abcdefgh", b""):
        for count in (0, 1, 2, 3, 7, 100, 1025):
            assert crclib.repeat(zlib.crc32(piece), len(piece), count) == zlib.crc32(piece * count)
    big = np.random.default_rng(7).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    half = len(big) // 2 + 1
    assert crclib.combine(zlib.crc32(big[:half]), zlib.crc32(big[half:]), len(big) - half) == zlib.crc32(big)


# --- jsonscan -------------------------------------------------------------


def test_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="duplicate"):
        Scanner(b'{"a": 1, "b": {"c": 2, "c": 3}}').document()
    path, content = saved(tmp_path, {"w": np.arange(10, dtype="<i4")})
    text = content.decode()
    twice = text.replace('"encoding": "base64"', '"encoding": "base64", "encoding": "fill"', 1)
    path.write_text(twice)
    assert "duplicate" in load_error(path)
    path.write_text(text.replace('"format": "hera-instance",', '"format": "hera-instance", "format": "x",', 1))
    with pytest.raises(HeraError, match="duplicate"):
        read_header(path)


def test_deep_nesting_is_rejected_without_exhausting_the_stack(tmp_path: Path) -> None:
    deep = b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2)
    with pytest.raises(ScanError, match="deep"):
        Scanner(deep).document()
    Scanner(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH).document()
    path = tmp_path / "deep.json"
    path.write_bytes(b'{"format": "hera-instance", "format_version": 1, "header": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert "nesting" in load_error(path)


def test_a_reordered_and_reindented_file_loads_identically(tmp_path: Path, small_chunks: int) -> None:
    rng = np.random.default_rng(8)
    arrays = {"w": random_array(rng, "<f4", 2000), "fill": np.full(50, 3, dtype="<i8"), "s": np.arange(3, dtype="|u1")}
    path, _ = saved(tmp_path, arrays)
    original = load(path)
    with open(path) as handle:
        document = json.load(handle)
    path.write_text(json.dumps(document, indent=4, sort_keys=True))
    reread = load(path)
    assert reread.header == original.header == read_header(path)
    assert list(reread.arrays) == sorted(arrays)
    for name, array in original.arrays.items():
        assert_same_bits(reread.arrays[name], array)


def test_a_hint_that_lands_on_a_quote_cannot_smuggle_fields(tmp_path: Path) -> None:
    """A length hint skips the search for the closing quote; base64 validation must catch a wrong skip."""
    path, content = saved(tmp_path, {"w": np.arange(30, dtype="<u1")})
    start, end = data_span(content, "w")
    length = end - start
    # Shorter data followed by another field, arranged so the hinted end lands on a quote.
    forged = content[:start] + b"A" * (length - 9) + b'", "x": "' + content[end:]
    path.write_bytes(forged)
    message = load_error(path)
    assert "arrays.w" in message or "malformed" in message


def test_instance_errors_are_instance_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{}")
    with pytest.raises(InstanceFileError):
        load(path)


# --- format 3: zstd -------------------------------------------------------------


def sparse_array(rng: np.random.Generator, code: str, count: int, density: float = 0.03) -> np.ndarray:
    """Mostly zero, the rest random bit patterns: how a learned brain's weights look to the codec."""
    array = np.zeros(count, dtype=code)
    hits = rng.random(count) < density
    array[hits] = random_array(rng, code, int(hits.sum()))
    return array


def entries_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())["arrays"]


@pytest.mark.parametrize("code", sorted(codec.DTYPES))
def test_sparse_arrays_are_compressed_and_round_trip_bit_for_bit(tmp_path: Path, small_chunks: int, code: str) -> None:
    rng = np.random.default_rng(zlib.crc32(code.encode()) + 1)
    many = (small_chunks * 40 + 5) // np.dtype(code).itemsize  # 40 frames and a short one
    base = sparse_array(rng, code, many)
    arrays = {
        "flat": base,
        "big_endian": base.astype(base.dtype.newbyteorder(">")) if base.itemsize > 1 else base[::-1],
        "transposed": sparse_array(rng, code, 60 * 200).reshape(60, 200).T,
        "strided": base[::-3],
    }
    path = tmp_path / "sparse.json"
    save(path, header(), arrays)
    entries = entries_of(path)
    loaded = load(path).arrays
    for name, array in arrays.items():
        assert entries[name]["encoding"] == "zstd" and entries[name]["chunk"] == small_chunks, name
        assert len(entries[name]["data"]) == -(-array.nbytes // small_chunks), name
        assert_same_bits(loaded[name], stored(array))


def test_compression_is_chosen_only_where_it_pays(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    arrays = {
        "noise": rng.standard_normal(500_000).astype("<f4"),  # dense floats: base64 decodes faster than zstd inflates
        "sparse": sparse_array(rng, "<f4", 500_000),
        "small_sparse": sparse_array(rng, "<f4", 500),  # a few KiB: not worth sampling
        "zeros": np.zeros(500_000, "<f4"),
    }
    path = tmp_path / "mixed.json"
    save(path, header(), arrays)
    entries = entries_of(path)
    encodings = {name: entry["encoding"] for name, entry in entries.items()}
    assert encodings == {"noise": "base64", "sparse": "zstd", "small_sparse": "base64", "zeros": "fill"}
    # the sparse array costs a tenth of its base64
    assert sum(map(len, entries["sparse"]["data"])) < arrays["sparse"].nbytes * 4 // 3 // 10
    loaded = load(path).arrays
    for name, array in arrays.items():
        assert_same_bits(loaded[name], array)


def frame_text(raw: bytes, extra: bytes = b"", **options: Any) -> str:
    """A zstd frame of ``raw`` (then ``extra``) in base64, made by zstandard itself."""
    import pybase64
    import zstandard

    return pybase64.b64encode(zstandard.ZstdCompressor(**options).compress(raw) + extra).decode()


def zstd_file(tmp_path: Path, small_chunks: int) -> tuple[Path, dict[str, Any], np.ndarray]:
    array = sparse_array(np.random.default_rng(9), "<i4", small_chunks * 5 // 4)  # five frames
    path = tmp_path / "z.json"
    save(path, header(), {"w": array})
    document = json.loads(path.read_text())
    assert document["arrays"]["w"]["encoding"] == "zstd" and len(document["arrays"]["w"]["data"]) == 5
    return path, document, array


def test_damaged_or_hostile_zstd_entries_are_one_line_errors(tmp_path: Path, small_chunks: int) -> None:
    path, document, array = zstd_file(tmp_path, small_chunks)
    frames = document["arrays"]["w"]["data"]
    raw = array.tobytes()
    flipped = frames[1][:20] + ("B" if frames[1][20] == "A" else "A") + frames[1][21:]
    bomb = frame_text(bytes(small_chunks * 1000))  # a few hundred bytes that would inflate to ~1 MB
    cases: dict[str, tuple[Any, str]] = {
        "flipped": ({"data": [frames[0], flipped, *frames[2:]]}, "arrays.w"),
        "frame-missing": ({"data": frames[:-1]}, "arrays.w.data: holds 4 frames but dtype, shape and chunk need 5"),
        "frames-swapped": ({"data": [frames[1], frames[0], *frames[2:]]}, "arrays.w: checksum mismatch"),
        "bomb": ({"data": [bomb, *frames[1:]]}, "arrays.w.data[0]: the frame declares 960000 bytes"),
        "no-size": ({"data": [frame_text(raw[:small_chunks], write_content_size=False), *frames[1:]]}, "declares no size"),
        "trailing": ({"data": [frame_text(raw[:small_chunks], b"\0\0\0"), *frames[1:]]}, "arrays.w.data[0]: not a valid zstd frame"),
        "two-frames": ({"data": [frame_text(raw[:small_chunks], base64.b64decode(frames[0])), *frames[1:]]}, "arrays.w.data[0]"),
        "not-base64": ({"data": ["*" * 8, *frames[1:]]}, "arrays.w.data[0]: not valid base64"),
        "not-zstd": ({"data": ["AAAAAAAA", *frames[1:]]}, "arrays.w.data[0]: not a zstd frame"),
        "odd-length": ({"data": [frames[0][:-1], *frames[1:]]}, "arrays.w.data[0]: expected a zstd frame in base64"),
        "oversized": ({"data": ["A" * 4 * small_chunks, *frames[1:]]}, "arrays.w.data[0]: expected a zstd frame"),
        "not-a-string": ({"data": [12, *frames[1:]]}, "arrays.w.data[0]"),
        "not-a-list": ({"data": frames[0]}, "arrays.w.data: expected a list"),
        "chunk-odd": ({"chunk": small_chunks + 4}, "arrays.w.chunk"),
        "chunk-zero": ({"chunk": 0}, "arrays.w.chunk"),
        "chunk-huge": ({"chunk": 1 << 40}, "arrays.w.chunk"),
        "chunk-text": ({"chunk": str(small_chunks)}, "arrays.w.chunk"),
        "chunk-missing": ({"chunk": None}, "arrays.w.chunk"),
        "no-crc": ({"crc32": None}, "arrays.w.crc32"),
    }
    for case, (change, fragment) in cases.items():
        edited = json.loads(json.dumps(document))
        edited["arrays"]["w"].update(change)
        edited["arrays"]["w"] = {key: value for key, value in edited["arrays"]["w"].items() if value is not None}
        path.write_text(json.dumps(edited))
        message = load_error(path)
        assert fragment in message and "\n" not in message, (case, message)
    # Unused padding bits of a frame's last character must be zero, as in base64 data.
    odd = next(text for text in frames if text.endswith("=") and not text.endswith("=="))
    last = odd[-2]
    changed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    tweaked = odd[:-2] + changed[changed.index(last) ^ 1] + "="
    edited = json.loads(json.dumps(document))
    edited["arrays"]["w"]["data"] = [tweaked if text == odd else text for text in frames]
    path.write_text(json.dumps(edited))
    assert "not valid base64" in load_error(path)


def test_zstd_needs_format_3_and_chunk_belongs_to_zstd(tmp_path: Path, small_chunks: int) -> None:
    path, document, _ = zstd_file(tmp_path, small_chunks)
    older = json.loads(json.dumps(document))
    older["format_version"] = 2
    path.write_text(json.dumps(older))
    assert "arrays.w.encoding: expected 'base64' or 'fill', got 'zstd'" in load_error(path)
    save(path, header(), {"b": np.arange(10.0)})
    based = json.loads(path.read_text())
    based["arrays"]["b"]["chunk"] = 960
    path.write_text(json.dumps(based))
    assert "arrays.b.chunk: unknown field" in load_error(path)


#: A format-2 file written by hera before format 3 (tests/data/formats), and what each array holds:
#: dtype, shape and the first 16 hex digits of the SHA-256 of its little-endian C-order bytes.
V2_FILE = Path(__file__).parent / "data" / "formats" / "v2-arrays.json"
V2_ARRAYS = {
    "weights": ("<f4", (64, 50), "19669c0fe42eeeae"),
    "state.v": ("<f8", (300,), "61aed2b66aee987a"),
    "state.spikes": ("|b1", (30, 7), "dbd4f20b3f9bbf2a"),
    "state.count": ("<i2", (10, 10), "0c7c3591393ecb73"),
    "state.nan": ("<f4", (4,), "916209c32602e1c6"),
    "zeros": ("<f4", (128, 128), "de2f256064a0af79"),
    "scalar": ("<u8", (), "aae89fc0f03e2959"),
    "empty": ("<i4", (0, 3), "e3b0c44298fc1c14"),
}


def assert_v2_arrays(arrays: dict[str, np.ndarray]) -> None:
    import hashlib

    assert list(arrays) == list(V2_ARRAYS)
    for name, (code, shape, digest) in V2_ARRAYS.items():
        array = arrays[name]
        assert (array.dtype.str, array.shape) == (code, shape), name
        assert hashlib.sha256(array.tobytes()).hexdigest()[:16] == digest, name


def test_a_format_2_file_reads_bit_for_bit_and_transcribes_to_format_3(tmp_path: Path) -> None:
    from hera.instance import FORMAT_VERSION, transcribe

    assert V2_FILE.read_bytes().startswith(b'{"format": "hera-instance", "format_version": 2,')
    instance = load(V2_FILE)
    assert instance.header.callsign == "format-two" and instance.header.iteration == 77
    assert_v2_arrays(instance.arrays)
    copy = tmp_path / "copy.json"
    transcribe(V2_FILE, copy, instance.header.model_copy(update={"callsign": "format-three"}))
    assert copy.read_bytes().startswith(f'{{"format": "hera-instance", "format_version": {FORMAT_VERSION},'.encode())
    again = load(copy)
    assert again.header.callsign == "format-three"
    assert_v2_arrays(again.arrays)
    # The sparse weights are compressed on the way (the rest is copied through); verified as they pass.
    entries = entries_of(copy)
    assert entries["weights"]["encoding"] == "zstd" and entries["state.v"]["encoding"] == "base64"
    damaged = tmp_path / "damaged.json"
    content = V2_FILE.read_bytes()
    at = content.index(b'"weights": {') + 200
    damaged.write_bytes(content[:at] + (b"B" if content[at] == ord("A") else b"A") + content[at + 1 :])
    with pytest.raises(HeraError) as caught:
        transcribe(damaged, tmp_path / "nothing.json", instance.header)
    assert caught.value.line().startswith(f"{damaged}: arrays.weights"), caught.value.line()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.json", "damaged.json"]
