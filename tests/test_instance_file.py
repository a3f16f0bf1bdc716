"""A damaged or tampered instance file is caught, reported in one line, and never changed.

Built once by ``hera build``, then spoiled the ways a user could spoil one: cut
short by a full disk or an interrupted copy, a byte flipped in the weights,
a header field edited to a wrong type, JSON broken by hand. Every way is
checked in-process through :func:`hera.instance.load` (the one reader every
command uses), and the common ones through ``hera inspect FILE`` as a user
meets them: one line naming the file and the field, a non-zero exit, no
traceback, the file untouched and nothing written anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hera.instance import FORMAT_VERSION
from herakit import World, leftovers, one_error_line

BASE64_DATA = b'"encoding": "base64", "data": "'


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Two good files: ``fresh`` as ``hera build`` wrote it, and ``lived`` with learned weights and state.

    ``lived`` is the build rewritten by hera's own writer with random arrays,
    so its data is base64 with checksums, as an agent's is after it has run.
    """
    import numpy as np

    from hera.instance import load, save

    with World(tmp_path_factory.mktemp("originals")) as world:
        world("--family", "abraxas", "--seed", "5", "build", "-o", "fresh.json", check=True)
        fresh = world.workdir / "fresh.json"
        built = load(fresh)
        rng = np.random.default_rng(5)
        arrays = {name: rng.standard_normal(array.shape).astype(array.dtype) for name, array in built.arrays.items()}
        arrays["state.potential"] = rng.standard_normal(built.header.summary["neurons"]).astype(np.float32)
        lived = world.workdir / "lived.json"
        save(lived, built.header.model_copy(update={"dynamic": True, "iteration": 4096}), arrays)
        yield {"fresh": fresh, "lived": lived}


def replace_once(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        assert data.count(old) >= 1, old
        return data.replace(old, new, 1)

    return edit


def _in_data(data: bytes, offset: int) -> int:
    """Where ``offset`` characters into the first base64 array's data lie."""
    return data.index(BASE64_DATA) + len(BASE64_DATA) + offset


def flip_in_data(offset: int) -> Callable[[bytes], bytes]:
    """Change one base64 character of the weights to another valid one."""

    def edit(data: bytes) -> bytes:
        at = _in_data(data, offset)
        return data[:at] + (b"B" if data[at] == ord("A") else b"A") + data[at + 1 :]

    return edit


def put_in_data(offset: int, text: bytes) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        at = _in_data(data, offset)
        return data[:at] + text + data[at + len(text) :]

    return edit


def cut_from_data(offset: int, count: int) -> Callable[[bytes], bytes]:
    """Delete ``count`` characters of the weights' base64 (the JSON stays valid)."""

    def edit(data: bytes) -> bytes:
        at = _in_data(data, offset)
        return data[:at] + data[at + count :]

    return edit


def cut_at(fraction: float) -> Callable[[bytes], bytes]:
    return lambda data: data[: int(len(data) * fraction)]


#: name -> (which original, how it is spoiled, what the error line must say besides the file name)
SPOILED: dict[str, tuple[str, Callable[[bytes], bytes], list[str]]] = {
    "truncated-half-way": ("fresh", cut_at(0.5), ["malformed JSON"]),
    "truncated-last-bytes": ("fresh", lambda d: d[:-3], ["malformed JSON"]),
    "truncated-inside-weights": ("lived", cut_at(0.4), ["malformed JSON"]),
    "empty": ("fresh", lambda d: b"", ["empty"]),
    "byte-flipped-in-weights": ("lived", flip_in_data(1000), ["arrays.", "checksum mismatch"]),
    "weights-not-base64": ("lived", put_in_data(1000, b"*"), ["arrays.", "not valid base64"]),
    "weights-shortened": ("lived", cut_from_data(1000, 4), ["arrays.", ".data: holds", "truncated or edited"]),
    "shape-edited": ("lived", replace_once(b'"shape": [1536, 16, 16, 2]', b'"shape": [1536, 16, 16, 3]'), ["arrays.", "shape need"]),
    "dtype-edited": ("lived", replace_once(b'"dtype": "<f4"', b'"dtype": "object"'), [".dtype", "'object'"]),
    "header-type-iteration": ("fresh", replace_once(b'"iteration": 0', b'"iteration": "zero"'), ["header.iteration", "integer"]),
    "header-type-seed": ("fresh", replace_once(b'"seed": 5', b'"seed": [5]'), ["header.seed", "integer"]),
    "header-uuid": ("fresh", replace_once(b'"uuid": "', b'"uuid": "x'), ["header.uuid", "not a UUID"]),
    "header-unknown-field": ("fresh", replace_once(b'"iteration": 0', b'"iterations": 0'), ["header."]),
    "invalid-json-comma": ("fresh", replace_once(b'"layout": "example",', b'"layout": "example"'), ["line ", "column ", "malformed JSON"]),
    "invalid-json-quote": ("fresh", replace_once(b'"callsign": "', b'"callsign": '), ["malformed JSON"]),
    "not-an-instance": ("fresh", lambda d: b'{"seed": 5}\n', ["format"]),
    "not-an-object": ("fresh", lambda d: b"[1, 2, 3]\n", ["expected a JSON object"]),
    "newer-format": (
        "fresh",
        replace_once(f'"format_version": {FORMAT_VERSION}'.encode(), f'"format_version": {FORMAT_VERSION + 1}'.encode()),
        ["format_version", "upgrade hera"],
    ),
}

# A fill array (every fresh brain's zero weights) is checksummed too: a flipped byte would
# otherwise set every weight of that array (here to 2.0).
SPOILED["byte-flipped-in-a-fill"] = ("fresh", replace_once(b'"data": "AAAAAA=="', b'"data": "AAAAQA=="'), ["arrays."])
# Strings for booleans and numbers: the header's counters and flags are validated strictly.
SPOILED |= {
    "header-type-dynamic": ("fresh", replace_once(b'"dynamic": false', b'"dynamic": "yes"'), ["header.dynamic"]),
    "header-type-iteration-as-text": ("fresh", replace_once(b'"iteration": 0', b'"iteration": "12"'), ["header.iteration"]),
}


def spoil(originals: dict[str, Path], directory: Path, name: str, cases: dict[str, tuple[str, Callable[[bytes], bytes], list[str]]]) -> tuple[Path, list[str]]:
    which, edit, fragments = cases[name]
    path = directory / f"{name}.json"
    path.write_bytes(edit(originals[which].read_bytes()))
    return path, fragments


def test_the_originals_are_good(originals: dict[str, Path]) -> None:
    from hera.instance import load

    fresh, lived = load(originals["fresh"]), load(originals["lived"])
    assert not fresh.header.dynamic and all(not a.any() for a in fresh.arrays.values())
    assert lived.header.dynamic and lived.header.iteration == 4096 and "state.potential" in lived.arrays
    assert BASE64_DATA in originals["lived"].read_bytes() and BASE64_DATA not in originals["fresh"].read_bytes()


def _load_fails(path: Path, fragments: list[str]) -> None:
    from hera.errors import HeraError
    from hera.instance import load

    before = path.read_bytes()
    with pytest.raises(HeraError) as caught:
        load(path)
    line = caught.value.line()
    assert "\n" not in line and line.startswith(f"{path}: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", list(SPOILED))
def test_loading_a_spoiled_file_names_the_file_and_the_field(originals: dict[str, Path], tmp_path: Path, name: str) -> None:
    _load_fails(*spoil(originals, tmp_path, name, SPOILED))


@pytest.mark.parametrize(
    "name", ["truncated-half-way", "byte-flipped-in-weights", "header-type-iteration"]
)
def test_inspect_reports_a_spoiled_file_in_one_line_and_changes_nothing(
    hera: World, originals: dict[str, Path], name: str
) -> None:
    path, fragments = spoil(originals, hera.workdir, name, SPOILED)
    before = path.read_bytes()

    refused = hera("inspect", path.name)

    one_error_line(refused, str(path), *fragments, rc=1)
    assert refused.out == "" and path.read_bytes() == before
    assert hera.files() == [path] and leftovers(hera.workdir, hera.home) == []
    assert [p for p in hera.home.rglob("*") if p.is_file()] == []


def test_inspect_reads_the_good_file(hera: World, originals: dict[str, Path]) -> None:
    shutil.copy(originals["fresh"], hera.workdir / "brain.json")

    shown = hera("inspect", "brain.json", "--json", check=True)

    assert json.loads(shown.out)["header"]["uuid"] == json.loads(originals["fresh"].read_text())["header"]["uuid"]


# -- streaming: transcribe, verify_file, pieces, lazy_arrays, progress ------------------------------------------

#: Raw bytes of the "large" file's arrays: above the data limit its readers run under.
LARGE_ARRAY = 64 * 1024 * 1024
#: RLIMIT_DATA of the children that stream it: Python, numpy and the codec's threads need ~70 MiB.
DATA_LIMIT = 128 * 1024 * 1024

STREAM_CHILD = """
import json, os, resource, sys
resource.setrlimit(resource.RLIMIT_DATA, (int(sys.argv[1]), resource.RLIM_INFINITY))
from pathlib import Path
from hera.errors import HeraError
from hera.instance import read_header, transcribe, verify_file, load
source, target = Path(sys.argv[2]), Path(sys.argv[3])
told = {}
header = read_header(source).model_copy(update={"callsign": "streamed"})
fd = os.open(source, os.O_RDONLY)
transcribe(fd, target, header)  # from a descriptor, as install --user hands one over
os.close(fd)
verify_file(target)
told["streamed"] = True
try:
    load(source)
    told["load"] = "loaded"
except HeraError as exc:
    told["load"] = exc.line()
try:  # the error's line and column are counted without a copy of everything before it
    load(Path(sys.argv[4]))
except HeraError as exc:
    told["truncated"] = exc.line()
print(json.dumps(told))
"""


def streaming_header() -> Any:
    from hera.instance import FamilyRef, Header, now

    return Header(
        uuid="0b8c4f6e-2d7a-4e0b-9d33-5f1a6c2e7b90", callsign="large", family=FamilyRef(name="test", version="0"),
        layout="large", params={}, seed=3, created=now(), dynamic=True,
    )


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A ~260 MB file: three dense arrays (base64) and one sparse one (zstd), 64 MiB each raw, beside their arrays."""
    import numpy as np

    from hera.instance import save

    rng = np.random.default_rng(12)
    count = LARGE_ARRAY // 4
    sparse = np.zeros(count, dtype="<f4")
    sparse[rng.integers(0, count, count // 50)] = rng.random(count // 50, dtype=np.float32)
    arrays = {f"dense{i}": rng.random(count, dtype=np.float32) for i in range(3)} | {"sparse": sparse}
    path = tmp_path_factory.mktemp("large") / "large.json"
    save(path, streaming_header(), arrays)
    yield path, arrays


def test_transcribe_and_verify_stream_a_file_larger_than_the_memory_limit(large: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    import subprocess
    import sys

    from hera.instance import load, read_header

    source, arrays = large
    assert source.stat().st_size > 2 * DATA_LIMIT
    assert b'"encoding": "zstd"' in source.read_bytes()
    target, truncated = tmp_path / "copy.json", tmp_path / "truncated.json"
    with source.open("rb") as whole, truncated.open("wb") as cut:
        shutil.copyfileobj(whole, cut)
        cut.truncate(source.stat().st_size - 1000)
    child = subprocess.run(
        [sys.executable, "-c", STREAM_CHILD, str(DATA_LIMIT), str(source), str(target), str(truncated)],
        capture_output=True, text=True, env=os.environ | {"OPENBLAS_NUM_THREADS": "1"}, timeout=120,
    )
    assert child.returncode == 0, child.stderr
    told = json.loads(child.stdout)
    assert told["streamed"] and told["load"].startswith(f"{source}: ") and "memory" in told["load"], told
    assert told["truncated"].startswith(f"{truncated}: line ") and "malformed JSON" in told["truncated"], told
    assert read_header(target).callsign == "streamed"
    copied = load(target).arrays
    assert list(copied) == list(arrays)
    for name, array in arrays.items():
        assert copied[name].tobytes() == array.tobytes(), name


def _flip_in(data: bytes, marker: bytes, offset: int) -> bytes:
    at = data.index(marker) + len(marker) + offset
    return data[:at] + (b"B" if data[at] == ord("A") else b"A") + data[at + 1 :]


@pytest.mark.parametrize("encoding", ["base64", "zstd"])
def test_transcribe_catches_a_flipped_byte_and_leaves_nothing(tmp_path: Path, encoding: str) -> None:
    import numpy as np

    from hera.errors import HeraError
    from hera.instance import save, transcribe

    rng = np.random.default_rng(4)
    weights = rng.random(300_000, dtype=np.float32)
    if encoding == "zstd":
        weights[rng.random(weights.size) < 0.95] = 0
    source = tmp_path / "source.json"
    save(source, streaming_header(), {"state.v": np.arange(10.0), "weights": weights})
    marker = f'"encoding": "{encoding}", '.encode() + (b'"chunk": 1572864, "data": ["' if encoding == "zstd" else b'"data": "')
    source.write_bytes(_flip_in(source.read_bytes(), marker, 2000))
    target = tmp_path / "target" / "copy.json"
    target.parent.mkdir()

    with pytest.raises(HeraError) as caught:
        transcribe(source, target, streaming_header())

    line = caught.value.line()
    assert "\n" not in line and line.startswith(f"{source}: arrays.weights"), line
    assert list(target.parent.iterdir()) == []


def test_progress_counts_every_raw_byte_once(tmp_path: Path) -> None:
    """on_bytes totals equal the arrays' nbytes for every reader and writer (fills at their full size)."""
    import threading

    import numpy as np

    from hera.instance import InstanceFile, load, save, transcribe, verify_file

    rng = np.random.default_rng(5)
    sparse = np.zeros(2_000_000, dtype="<i2")
    sparse[::97] = 3
    arrays = {"dense": rng.random(1_000_000), "fill": np.zeros((300, 400), dtype="<f4"), "sparse": sparse, "tiny": np.arange(3)}
    nbytes = sum(array.nbytes for array in arrays.values())
    counted: list[int] = []
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        with lock:
            counted.append(n)

    def total() -> int:
        with lock:
            done = sum(counted)
            counted.clear()
        return done

    path = tmp_path / "a.json"
    save(path, streaming_header(), arrays, on_bytes=on_bytes)
    assert total() == nbytes
    load(path, on_bytes=on_bytes)
    assert total() == nbytes
    verify_file(path, on_bytes=on_bytes)
    assert total() == nbytes
    transcribe(path, tmp_path / "b.json", streaming_header(), on_bytes=on_bytes)
    assert total() == nbytes
    with InstanceFile(path) as opened:
        for name in opened.entries:
            for _ in opened.pieces(name, on_bytes=on_bytes):
                pass
        assert total() == nbytes
        lazy = opened.lazy_arrays(on_bytes=on_bytes)
        assert [lazy[name].nbytes for name in lazy] == [array.nbytes for array in arrays.values()]
        assert total() == nbytes


def test_pieces_give_every_element_in_bounded_pieces_and_catch_damage(tmp_path: Path) -> None:
    import numpy as np

    from hera.errors import HeraError
    from hera.instance import InstanceFile, save
    from hera.instance.codec import CHUNK

    rng = np.random.default_rng(6)
    sparse = np.zeros((700, 1000), dtype="<f8")
    sparse[rng.integers(0, 700, 500), rng.integers(0, 1000, 500)] = 1.5
    arrays = {"dense": rng.random((500, 1000), dtype=np.float32), "sparse": sparse, "fill": np.full(10**6, 7, dtype="<i4")}
    path = tmp_path / "p.json"
    save(path, streaming_header(), arrays)
    with InstanceFile(path) as opened:
        for name, array in arrays.items():
            pieces = [piece.copy() for piece in opened.pieces(name)]
            assert all(p.ndim == 1 and p.dtype == array.dtype and 0 < p.nbytes <= CHUNK for p in pieces), name
            assert np.concatenate(pieces).tobytes() == array.tobytes(), name
    for marker in (b'"encoding": "base64", "data": "', b'"chunk": 1572864, "data": ["'):
        damaged = tmp_path / "damaged.json"
        damaged.write_bytes(_flip_in(path.read_bytes(), marker, 100))
        with InstanceFile(damaged) as opened, pytest.raises(HeraError) as caught:
            name = "dense" if b"base64" in marker else "sparse"
            for _ in opened.pieces(name):
                pass
        assert caught.value.line().startswith(f"{damaged}: arrays.{name}"), caught.value.line()


def test_lazy_arrays_decode_on_lookup_and_refuse_what_never_fits(tmp_path: Path) -> None:
    import numpy as np

    from hera.instance import InstanceFile, InstanceTooLarge, checksums, save
    from hera.instance.codec import crc32, seal

    path = tmp_path / "lazy.json"
    save(path, streaming_header(), {"small": np.arange(5.0), "huge": np.zeros(1, dtype="<f4")})
    # A fill claims its size for free: 512 GiB, far beyond this machine, yet valid (below the 1 TiB cap)
    # and sealed as a writer would have sealed it.
    data = path.read_bytes()
    old_crc = seal("huge", "<f4", (1,), crc32(bytes(4)), 4)
    new_crc = seal("huge", "<f4", (2**37,), checksums.repeat(crc32(bytes(4)), 4, 2**37), 2**39)
    data = data.replace(b'"shape": [1], "encoding": "fill"', f'"shape": [{2**37}], "encoding": "fill"'.encode())
    path.write_bytes(data.replace(f'"crc32": {old_crc}'.encode(), f'"crc32": {new_crc}'.encode()))
    with InstanceFile(path) as opened:
        lazy = opened.lazy_arrays()
        assert list(lazy) == ["small", "huge"] and len(lazy) == 2 and "huge" in lazy and "other" not in lazy
        assert lazy["small"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert lazy["small"] is not lazy["small"]  # decoded afresh each time, never kept
        with pytest.raises(InstanceTooLarge) as caught:
            lazy["huge"]
        assert caught.value.line().startswith(f"{path}: arrays.huge: needs 512"), caught.value.line()
        with pytest.raises(KeyError):
            lazy["other"]


def test_a_save_after_one_killed_between_its_two_renames_leaves_no_temporary(tmp_path: Path) -> None:
    """A save killed after it made ``.prev`` and before it replaced the file leaves both names on one inode.

    The next save links the file to a staging name and renames that onto
    ``.prev``: a rename between two links of one file does nothing (POSIX), so
    the staging name stayed behind, where no sweep of a running agent removes
    it (found by tests/test_reliability_kill.py, a SIGKILL at that instant).
    """
    from hera.instance.atomic import atomic_write, previous_path

    path = tmp_path / "agent.json"
    path.write_bytes(b"first")
    os.link(path, previous_path(path))  # what the killed save left: .prev and the file, one inode
    with atomic_write(path, 0o600, keep_previous=True) as out:
        out.write(b"second")
    assert path.read_bytes() == b"second" and previous_path(path).read_bytes() == b"first"
    assert not leftovers(tmp_path)
