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
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
    "shape-edited": ("lived", replace_once(b'"shape": [1024, 5, 5, 4]', b'"shape": [1024, 5, 5, 5]'), ["arrays.", "shape need"]),
    "dtype-edited": ("lived", replace_once(b'"dtype": "<f4"', b'"dtype": "object"'), [".dtype", "'object'"]),
    "header-type-iteration": ("fresh", replace_once(b'"iteration": 0', b'"iteration": "zero"'), ["header.iteration", "integer"]),
    "header-type-seed": ("fresh", replace_once(b'"seed": 5', b'"seed": [5]'), ["header.seed", "integer"]),
    "header-uuid": ("fresh", replace_once(b'"uuid": "', b'"uuid": "x'), ["header.uuid", "not a UUID"]),
    "header-unknown-field": ("fresh", replace_once(b'"iteration": 0', b'"iterations": 0'), ["header."]),
    "invalid-json-comma": ("fresh", replace_once(b'"layout": "example",', b'"layout": "example"'), ["line ", "column ", "malformed JSON"]),
    "invalid-json-quote": ("fresh", replace_once(b'"callsign": "', b'"callsign": '), ["malformed JSON"]),
    "not-an-instance": ("fresh", lambda d: b'{"seed": 5}\n', ["format"]),
    "not-an-object": ("fresh", lambda d: b"[1, 2, 3]\n", ["expected a JSON object"]),
    "newer-format": ("fresh", replace_once(b'"format_version": 2', b'"format_version": 3'), ["format_version", "upgrade hera"]),
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
