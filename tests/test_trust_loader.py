"""No file, however damaged or hostile, gives a wrong brain, a hang or a traceback.

Issue 16, items 6, 7, 8 (the loader's part) and 11, each as a user meets it:

* an array renamed by one bit (``state.potential`` -> ``state.potentiam``) in
  a real abraxas agent's cached file: the name is covered by the checksum, so
  ``up`` falls back to the previous good save with a warning; an edit the
  checksum cannot catch (a file of the previous format, or one resealed by
  hera's own writer) is refused by the family in one line. Never a brain with
  zeroed state, never a damaged file overwritten by one;
* files of the previous format (1) still load, and an agent cached in it
  resumes and is rewritten in the current one;
* shapes whose product passes 2**63 (a hang), 2**64 elements or the memory of
  this machine (tracebacks), a 5,000-digit number: one line, at once;
* header parameters the family rejects: ``install`` refuses them (it used to
  accept them and leave ``up`` to crash), ``up --simulate`` says so in a line;
* ``summary.neurons: "lots"``: ``inspect`` shows it;
* a directory or a FIFO named ``x.json`` in the cache: listed as broken, every
  other command still works, nothing blocks;
* file names of 237-255 bytes (legal on Linux) build, inspect and install.

Real ``hera`` processes throughout; the agents are real abraxas processes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent_helpers import cache_path, kernel_cache, reap_agents, snapshot, wait_for
from herakit import World, leftovers, one_error_line

DATA = Path(__file__).resolve().parent / "data" / "trust_loader"
# The two abraxas files are remade by data/trust_loader/make_v1.py whenever abraxas's version, params or
# state arrays change (abraxas refuses such a file): hera's own files re-encoded in format 1, headers unchanged.
#: An abraxas/example agent in format 1: upped paused, stepped 16,150 iterations unfed, fed a line
#: while paused (so io.pending is queued), downed and uninstalled.
V1_LIVED = DATA / "v1-lived-abraxas.json"
#: ``hera --family abraxas --seed 5 build`` in format 1.
V1_BUILT = DATA / "v1-built-abraxas.json"
#: Arrays of every kind (base64 of several dtypes, fills, empty, 0-d) saved by format 1's writer.
V1_ARRAYS = DATA / "v1-arrays.json"
#: One bit of the name changed: 'l' (0x6c) -> 'm' (0x6d).
POTENTIAL, POTENTIAM = b'"state.potential"', b'"state.potentiam"'


@pytest.fixture
def world(hera: World) -> Iterator[World]:
    """A user's world whose abraxas agents share the run's compiled kernels; no agent outlives the test."""
    hera.env["XDG_CACHE_HOME"] = str(kernel_cache())
    try:
        yield hera
    finally:
        reap_agents(hera)


def up_paused(world: World, *args: str) -> Any:
    """``hera up ARGS --daemon --paused`` (a paused agent's state is exactly what it loaded)."""
    return world("up", *args, "--daemon", "--paused")


def down(world: World, uuid: str) -> None:
    world("--uuid", uuid, "down", check=True)


def uuid_of(path: Path) -> str:
    from hera.instance import read_header

    return read_header(path).uuid


def installed(world: World) -> list[Path]:
    """The agent files in the world's cache."""
    cache = cache_path(world, "x").parent
    return sorted(cache.glob("*.json")) if cache.is_dir() else []


def lived_agent(world: World) -> str:
    """The format-1 agent installed, upped and downed: its cached file is the current format, its .prev the old one."""
    shutil.copy(V1_LIVED, world.workdir / "lived.json")
    world("install", "lived.json", check=True)
    uuid = uuid_of(V1_LIVED)
    world("--uuid", uuid, "up", "--daemon", check=True)
    time.sleep(0.2)  # let it run, so the two saves differ
    down(world, uuid)
    return uuid


# -- item 6: a renamed array ------------------------------------------------------------------


def test_a_state_array_renamed_by_one_bit_falls_back_to_the_previous_save_never_to_zeroed_state(world: World) -> None:
    from hera.instance import load
    from hera.instance.atomic import previous_path

    uuid = lived_agent(world)
    cached = cache_path(world, uuid)
    previous = load(previous_path(cached))
    assert previous.arrays["state.potential"].any()
    data = cached.read_bytes()
    assert data.count(POTENTIAL) == 1
    cached.write_bytes(data.replace(POTENTIAL, POTENTIAM))

    upped = up_paused(world, "--uuid", uuid)

    assert upped.rc == 0, upped
    assert "warning" in upped.err and "state.potentiam" in upped.err and "previous good copy" in upped.err, upped
    iteration, arrays = snapshot(world, uuid)
    assert iteration == previous.header.iteration
    for name in ("state.potential", "state.threshold", "state.clocked", "state.spikes"):
        assert arrays[name].tobytes() == previous.arrays[name].tobytes(), name
    down(world, uuid)
    saved = load(cached)
    assert saved.header.iteration == previous.header.iteration
    assert saved.arrays["state.potential"].tobytes() == previous.arrays["state.potential"].tobytes()


@pytest.mark.parametrize("how", ["format-1 file", "resealed by hera's writer"])
def test_a_dynamic_agent_missing_a_state_array_is_refused_by_its_family_in_one_line(world: World, how: str) -> None:
    """Edits no checksum can catch: the header says dynamic, so the family needs every state array."""
    from hera.instance import load, save

    if how == "format-1 file":  # format 1's checksums do not cover names
        damaged = world.workdir / "renamed.json"
        damaged.write_bytes(V1_LIVED.read_bytes().replace(POTENTIAL, POTENTIAM))
        world("install", damaged.name, check=True)
        uuid = uuid_of(damaged)
    else:  # every checksum right, the name included
        good = load(V1_LIVED)
        arrays = {(POTENTIAM.strip(b'"').decode() if n == "state.potential" else n): a for n, a in good.arrays.items()}
        save(world.workdir / "renamed.json", good.header, arrays)
        world("install", "renamed.json", check=True)
        uuid = good.header.uuid
    cached = cache_path(world, uuid)
    before = cached.read_bytes()

    refused = up_paused(world, "--uuid", uuid)

    one_error_line(refused, "state.potential")
    assert cached.read_bytes() == before  # never overwritten by a zeroed brain
    wait_for(lambda: not list((world.runtime_dir / "hera").glob("*.pid")), 20, "the refusing agent to exit")


# -- the format: names covered, the previous format still read --------------------------------


def v1_expected() -> dict[str, np.ndarray]:
    """What tests/data/trust_loader/v1-arrays.json was written from (by format 1's writer)."""
    return {
        "f4": (np.arange(1000, dtype="<f4") * 0.5 - 7).reshape(10, 100),
        "f8-big-endian": np.linspace(-1, 1, 77, dtype=">f8"),
        "i8": np.arange(-50, 50, dtype="<i8") * 1234567,
        "u1": (np.arange(300) % 256).astype("|u1"),
        "bool": (np.arange(33) % 3 == 0),
        "fill-nonzero": np.full((3, 4, 5), 2.5, dtype="<f4"),
        "fill-zero": np.zeros((64, 64), dtype="<i4"),
        "empty": np.zeros((0, 5), dtype="<u2"),
        "scalar": np.array(42, dtype="<i2"),
    }


def test_files_of_the_previous_format_still_load_bit_for_bit() -> None:
    from hera.instance import load

    assert b'"format_version": 1,' in V1_ARRAYS.read_bytes()[:64]
    loaded = load(V1_ARRAYS)

    expected = v1_expected()
    assert list(loaded.arrays) == list(expected)
    for name, array in expected.items():
        got = loaded.arrays[name]
        assert got.shape == array.shape and got.dtype == array.dtype.newbyteorder("<"), name
        assert got.tobytes() == array.astype(array.dtype.newbyteorder("<")).tobytes(), name


def test_an_agent_cached_in_the_previous_format_resumes_exactly_and_is_rewritten_in_the_current_one(world: World) -> None:
    from hera.instance import FORMAT_VERSION, load

    old = load(V1_LIVED)
    shutil.copy(V1_LIVED, world.workdir / "lived.json")
    world("install", "lived.json", check=True)
    uuid = old.header.uuid

    assert up_paused(world, "--uuid", uuid).rc == 0
    iteration, arrays = snapshot(world, uuid)
    down(world, uuid)

    assert iteration == old.header.iteration
    rewritten = cache_path(world, uuid)
    assert FORMAT_VERSION > 1 and f'"format_version": {FORMAT_VERSION},'.encode() in rewritten.read_bytes()[:80]
    again = load(rewritten)
    assert sorted(again.arrays) == sorted([*old.arrays, "hera.io"])  # the agent's I/O counts are saved now too
    assert again.arrays["hera.io"].tolist() == [len(old.arrays["io.pending"]), 0, 0]  # what was queued was fed
    for name, array in old.arrays.items():
        assert again.arrays[name].tobytes() == array.tobytes(), name
        if name in arrays:
            assert arrays[name].tobytes() == array.tobytes(), name


EDITS = {
    "one bit of a name": [(POTENTIAL, POTENTIAM)],
    "two names swapped": [(POTENTIAL, b'"swap"'), (b'"state.threshold"', POTENTIAL), (b'"swap"', b'"state.threshold"')],
    "a dtype of the same size": [(b'"dtype": "<i4"', b'"dtype": "<f4"')],  # the same bytes, another brain
    "a shape of the same size": [(b'"shape": [64]', b'"shape": [8, 8]')],
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_array_names_dtypes_and_shapes_are_covered_by_their_checksums(tmp_path: Path, edit: str) -> None:
    from hera.errors import HeraError
    from hera.instance import load, save

    header = load(V1_ARRAYS).header
    arrays = {"state.potential": np.arange(64, dtype="<i4"), "state.threshold": np.arange(64, dtype="<i4")[::-1].copy()}
    path = tmp_path / "named.json"
    save(path, header, arrays)
    data = path.read_bytes()
    for old, new in EDITS[edit]:
        assert old in data
        data = data.replace(old, new, 1)
    path.write_bytes(data)

    with pytest.raises(HeraError) as refused:
        load(path)

    assert "checksum mismatch" in refused.value.line() and str(path) in refused.value.line()


# -- item 7: shapes that claim the impossible ---------------------------------------------------

FILL_SHAPE = b'"shape": [256, 16, 16, 8], "encoding": "fill"'


def claiming(world: World, shape: str) -> Path:
    """A built abraxas file whose fill array ``weights.input-output`` claims ``shape``."""
    data = V1_BUILT.read_bytes()
    assert data.count(FILL_SHAPE) == 1
    path = world.workdir / "claims.json"
    path.write_bytes(data.replace(FILL_SHAPE, f'"shape": {shape}, "encoding": "fill"'.encode()))
    return path


@pytest.mark.parametrize(
    "shape",
    [
        "[2147483648, 2147483648, 2]",  # 2**63 elements: int64 wrapped negative, crc.repeat looped for ever
        "[4294967296, 4294967296]",  # 2**64 elements
        "[1099511627775, 1099511627775, 1099511627775, 1099511627775, 4]",  # each dim allowed, the product absurd
        "[-1, 4]",
        "[1" + "0" * 5000 + "]",  # a number of 5,001 digits: past Python's int parsing limit
    ],
    ids=["2^63", "2^64", "product", "negative", "5000-digits"],
)
def test_absurd_shapes_are_refused_in_one_line_at_once_by_inspect_and_install(world: World, shape: str) -> None:
    path = claiming(world, shape)
    for command in (("inspect", path.name), ("install", path.name)):
        started = time.monotonic()
        refused = world(*command, timeout=30)
        one_error_line(refused, str(path))
        assert time.monotonic() - started < 10, command
    assert installed(world) == []


def memory_of_this_machine() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_a_fill_larger_than_this_machines_memory_is_shown_by_inspect_and_installed_without_allocating_it(world: World) -> None:
    """A legal file (a huge layout's zero weights) that this machine cannot hold: described and installed, never allocated.

    install streams the file and decodes nothing (it used to load the brain, so it refused this one); loading it
    is what needs the memory, and that is refused where it happens.
    """
    from hera.instance import load, save

    header = load(V1_BUILT).header
    count = max(1 << 34, 2 * memory_of_this_machine() // 4)  # float32s: twice this machine's memory, 64 GiB at least
    save(world.workdir / "huge.json", header, {"weights.huge": np.broadcast_to(np.float32(0.5), (count,))})

    started = time.monotonic()
    shown = world("inspect", "huge.json", "--json", timeout=30)
    installed = world("install", "huge.json", timeout=30)

    assert shown.rc == 0 and "Traceback" not in shown.err, shown
    row = json.loads(shown.out)["arrays"]["weights.huge"]
    assert (row["shape"], row["bytes"], row["min"], row["max"], row["nonzero"]) == ([count], 4 * count, 0.5, 0.5, 1.0)
    assert installed.rc == 0 and "Traceback" not in installed.err, installed
    assert time.monotonic() - started < 20


# -- item 8: header params the family rejects, summaries of the wrong type ---------------------

PARAMS = b'"params": {'


@pytest.mark.parametrize(
    "edit, field",
    [
        ((PARAMS, PARAMS + b'"bogus": 1, '), "header.params.bogus"),
        ((b'"width": 32', b'"width": -32'), "header.params.hidden.width"),
        ((b'"width": 32', b'"width": 10000000000'), "header.params.hidden.width"),
        ((b'"threshold": 1.0', b'"threshold": 1e999'), "header.params.neuron.threshold"),  # infinity
    ],
    ids=["extra-key", "negative-width", "huge-width", "infinite-threshold"],
)
def test_install_refuses_params_the_family_rejects_naming_file_and_field(world: World, edit: tuple[bytes, bytes], field: str) -> None:
    data = V1_BUILT.read_bytes()
    assert data.count(edit[0]) >= 1
    (world.workdir / "bad.json").write_bytes(data.replace(*edit, 1))

    refused = world("install", "bad.json")
    planned = world("up", "bad.json", "--simulate")

    one_error_line(refused, str(world.workdir / "bad.json"), field)
    one_error_line(planned, field)
    assert installed(world) == []  # (the same file unedited installs: see the cache test below)


def test_a_nan_in_the_params_is_malformed_json_for_every_reader(world: World) -> None:
    """The header's fast reader parsed NaN (Python's json does), the strict one did not: ``up --simulate`` crashed."""
    (world.workdir / "nan.json").write_bytes(V1_BUILT.read_bytes().replace(b'"leak": 0.5', b'"leak": NaN', 1))

    for command in (("up", "nan.json", "--simulate"), ("install", "nan.json")):
        one_error_line(world(*command), "nan.json", "malformed JSON")


def test_inspect_shows_a_summary_of_the_wrong_type_instead_of_a_traceback(world: World) -> None:
    document = json.loads(V1_BUILT.read_text())
    document["header"]["summary"] |= {"neurons": "lots", "synapses": [1], "areas": [7, {"name": 3}, {"width": "x"}]}
    (world.workdir / "odd.json").write_text(json.dumps(document))

    shown = world("inspect", "odd.json")

    assert shown.rc == 0 and shown.err == "", shown
    assert "lots" in shown.out and "7" in shown.out
    document["header"]["summary"] = {"areas": "many"}
    (world.workdir / "odd.json").write_text(json.dumps(document))
    again = world("inspect", "odd.json")
    assert again.rc == 0 and "many" in again.out, again


# -- item 8: a directory or a FIFO in the cache --------------------------------------------------


def test_a_directory_or_a_fifo_named_like_an_agent_breaks_no_command_and_blocks_none(world: World) -> None:
    shutil.copy(V1_BUILT, world.workdir / "real.json")
    world("install", "real.json", check=True)
    real = uuid_of(V1_BUILT)
    cache = cache_path(world, real).parent
    (cache / "x.json").mkdir()
    os.mkfifo(cache / "y.json")

    listed = world("agents", "--json", timeout=30)
    shown = world("--uuid", real[:8], "inspect", timeout=30)
    directory = world("inspect", str(cache / "x.json"), timeout=30)
    fifo = world("inspect", str(cache / "y.json"), timeout=30)

    assert listed.rc == 0 and listed.err == "", listed
    rows = {Path(row["path"]).name: row for row in json.loads(listed.out)}
    assert rows[f"{real}.json"]["state"] == "built"
    for name in ("x.json", "y.json"):
        assert rows[name]["state"] == "broken" and "not a regular file" in rows[name]["error"], rows[name]
    assert shown.rc == 0, shown
    one_error_line(directory, "x.json", "directory")
    one_error_line(fifo, "y.json", "not a regular file")
    (world.workdir / "other.json").write_bytes(
        V1_BUILT.read_bytes().replace(real.encode(), b"0f0e0d0c-0000-4000-8000-000000000002", 1)
    )
    world("install", "other.json", check=True, timeout=30)
    world("--uuid", real[:8], "destroy", "--yes", check=True, timeout=30)


# -- item 11: names of 237-255 bytes --------------------------------------------------------------


@pytest.mark.parametrize("name", ["n" * 232 + ".json", "n" * 250 + ".json", "é" * 125 + ".json"], ids=["237", "255", "255-utf8"])
def test_files_named_with_up_to_255_bytes_can_be_built_and_installed(world: World, name: str) -> None:
    assert len(os.fsencode(name)) in (237, 255)

    built = world("--family", "abraxas", "build", "-o", name)

    assert built.rc == 0, built
    world("install", name, check=True)  # reads and verifies the whole file
    assert world.files() == [world.workdir / name]
    assert leftovers(world.workdir, world.home) == []
