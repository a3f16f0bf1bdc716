"""Large brains in bounded memory: install, copy, uninstall, inspect and grow never hold the whole brain.

Each command runs as a user runs it (``python -m hera``), under a limit on
its data segment (``RLIMIT_DATA``, set in the child before hera starts)
smaller than the brain's arrays. A read-only mapping of the file does not
count against that limit; every array decoded into memory does. So a
command that decoded the brain (as install, copy, inspect and grow all did
before they streamed) fails here with "the memory to load it is not
available", and one that streams succeeds, and its result is checked
bit for bit against the source.

The brains are tens to a couple of hundred MB of incompressible random
state, made once per module with hera's own writer (so every checksum is
right): a tick brain of 160 MiB of arrays (its largest 128 MiB) for
install, copy, uninstall and inspect, and an abraxas brain of four
40 MiB weight arrays for grow. OpenBLAS is kept to one thread and hera to
two CPUs in these commands: per-thread buffers and stacks would otherwise
take most of a limit this small on a machine with many cores.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent_helpers import module_tick_world
from herakit import Result, World, leftovers, one_error_line

#: The data segment every command here may use: far less than the tick brain's 160 MiB of arrays.
LIMIT = 160 << 20
#: A tick brain with this many neurons and delay slots: weights, counts 16 MiB each, its ring 128 MiB.
NEURONS, DELAY = 1 << 22, 8
#: Sizes of the abraxas brain that is grown: four hidden sheets, each projection 40 MiB of weights.
ABRAXAS = {"hidden": {"width": 128, "height": 128, "depth": 4}, "dendrite_length": 4, "axon_length": 32}
#: What grow may use: hera's baseline with abraxas and its writer, one grown array (43 MiB) and a few
#: MiB of the old brain; far less than the old brain and the grown one together (about 330 MiB).
GROW_LIMIT = 192 << 20
QUIET_BLAS = {"OPENBLAS_NUM_THREADS": "1"}


def limited(limit: int) -> Callable[[], None]:
    """preexec_fn: the command's data segment (heap, anonymous memory) may not exceed ``limit``.

    It also runs on two CPUs at most, as on this project's machine: the codec
    starts a thread per CPU (up to 8), and each thread's stack and buffers
    count against the limit, so a larger machine would need a larger one.
    """

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])

    return apply


def run_limited(world: World, *args: str, limit: int = LIMIT) -> Result:
    return world(*args, env=QUIET_BLAS, preexec_fn=limited(limit), timeout=300)


@pytest.fixture(scope="module")
def world(tmp_path_factory: Any) -> Iterator[World]:
    yield from module_tick_world(tmp_path_factory, "large")


@pytest.fixture(scope="module")
def big(world: World) -> Path:
    """A tick brain that has run: 160 MiB of random state, one file of about 215 MB."""
    from hera.instance import read_header, save

    world("--family", "tick", "--set", f"neurons={NEURONS}", "--set", f"delay={DELAY}", "build", "-o", "shape.json", check=True)
    header = read_header(world.workdir / "shape.json").model_copy(update={"dynamic": True, "iteration": 5000})
    rng = np.random.default_rng(12)
    arrays = {
        "weights": rng.standard_normal(NEURONS, dtype=np.float32),
        "counts": rng.integers(0, 1 << 30, NEURONS, dtype=np.int32),
        "ring": rng.integers(-(1 << 30), 1 << 30, (DELAY, NEURONS), dtype=np.int32),
        "pending": np.frombuffer(b"still to come", np.uint8).copy(),
    }
    path = world.workdir / "big.json"
    save(path, header, arrays)
    assert path.stat().st_size > LIMIT and sum(a.nbytes for a in arrays.values()) >= LIMIT
    return path


def same_brain(one: Path, other: Path) -> None:
    """Every array of ``other`` is bit for bit ``one``'s (names, dtypes, shapes, bytes)."""
    from hera.instance import load

    first, second = load(one), load(other)
    assert first.arrays.keys() == second.arrays.keys()
    for name, array in first.arrays.items():
        copy = second.arrays[name]
        assert (copy.dtype, copy.shape) == (array.dtype, array.shape), name
        assert copy.tobytes() == array.tobytes(), name
    assert (second.header.iteration, second.header.dynamic, second.header.params) == (
        first.header.iteration, first.header.dynamic, first.header.params,
    )


@pytest.fixture(scope="module")
def installed(world: World, big: Path) -> dict[str, Any]:
    """``hera install`` of the big brain under the limit: what it said, and the agent it made."""
    result = run_limited(world, "install", str(big), "--json")
    assert result.rc == 0, str(result)
    return json.loads(result.out)


def test_install_streams_a_brain_larger_than_its_memory_limit(world: World, big: Path, installed: dict[str, Any]) -> None:
    cached = Path(installed["path"])
    same_brain(big, cached)
    assert cached.stat().st_mode & 0o777 == 0o600
    assert not leftovers(cached.parent, world.workdir)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to install for another user")
def test_install_for_another_user_streams_from_the_descriptor_root_opened(world: World, big: Path) -> None:
    """``install --user``: root opens a file the user may not read, the child that became the user streams it."""
    from cachekit import throwaway_user

    users = throwaway_user()
    user = next(users)
    try:
        big.chmod(0o600)  # root's alone: the user's process could never open it by its path
        result = run_limited(world, "install", "--as-new", "--user", user.pw_name, str(big), "--json")
        assert result.rc == 0, str(result)
        cached = Path(json.loads(result.out)["path"])
        assert cached.is_relative_to(user.pw_dir) and cached.stat().st_uid == user.pw_uid
        same_brain(big, cached)
        assert not leftovers(cached.parent)
    finally:
        users.close()


def test_copy_of_a_down_agent_streams_it_under_the_same_limit(world: World, big: Path, installed: dict[str, Any]) -> None:
    result = run_limited(world, "copy", installed["callsign"], "-o", "copied.json")
    assert result.rc == 0, str(result)
    same_brain(big, world.workdir / "copied.json")
    assert not leftovers(world.workdir)


def test_copy_verifies_every_checksum_on_the_way_and_refuses_a_damaged_agent(world: World) -> None:
    """A copy is what a user keeps and installs later: a cached file damaged since its save is refused, nothing written.

    (A byte copy used to pass the damage on, found only at the next install or up.)
    """
    from hera.instance import read_header, save

    world("--family", "tick", "--set", "neurons=65536", "build", "-o", "small-shape.json", check=True)
    header = read_header(world.workdir / "small-shape.json")
    weights = np.random.default_rng(5).standard_normal(65536, dtype=np.float32)
    save(world.workdir / "small.json", header, {"weights": weights})
    agent = json.loads(world("install", "small.json", "--json", check=True).out)
    cached = Path(agent["path"])
    data = bytearray(cached.read_bytes())
    at = data.index(b'"data": "', data.index(b'"weights"')) + 9 + 1000
    data[at] = ord("B") if data[at] != ord("B") else ord("C")  # still base64, now other bytes
    cached.write_bytes(bytes(data))
    result = world("copy", agent["callsign"], "-o", "damaged-copy.json")
    one_error_line(result, "checksum mismatch")
    assert not (world.workdir / "damaged-copy.json").exists()
    assert not leftovers(world.workdir)
    world("destroy", agent["callsign"], "--yes", check=True)


def test_inspect_computes_statistics_piece_by_piece_under_the_limit(world: World, big: Path) -> None:
    """The same figures numpy gives for the whole array in float64, with a few MiB of it in hand."""
    result = run_limited(world, "inspect", str(big), "--json")
    assert result.rc == 0, str(result)
    rows = json.loads(result.out)["arrays"]
    from hera.instance import load

    for name, array in load(big).arrays.items():
        values = array.astype(np.float64)
        row = rows[name]
        assert (row["min"], row["max"]) == (values.min(), values.max()), name
        assert row["mean"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-12), name
        assert row["std"] == pytest.approx(values.std(), rel=1e-12), name
        assert row["nonzero"] == np.count_nonzero(array) / array.size, name


def test_uninstall_to_another_file_system_streams_the_agent_out(world: World, big: Path) -> None:
    """Across file systems (the cache here, /dev/shm there) no link is possible: the file is streamed, verified."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(world.workdir).st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    if shutil.disk_usage(shm).free < 2 * big.stat().st_size:
        pytest.skip("/dev/shm has too little room")
    moved = run_limited(world, "install", str(big), "--as-new", "--json")
    assert moved.rc == 0, str(moved)
    agent = json.loads(moved.out)
    outside = Path(tempfile.mkdtemp(prefix="hera-large-", dir=shm))
    try:
        result = run_limited(world, "uninstall", agent["callsign"], "-o", str(outside / "out.json"))
        assert result.rc == 0, str(result)
        same_brain(big, outside / "out.json")
        assert not Path(agent["path"]).exists()
        assert not leftovers(outside, Path(agent["path"]).parent)
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_install_and_copy_draw_their_progress_on_a_terminal(world: World, big: Path) -> None:
    """On a terminal each shows a bar with the bytes verified and written; the report line stays alone after."""
    from terminalkit import Terminal, pexpect, plain

    installing = Terminal(world, "install", "--as-new", str(big), term="xterm")
    try:
        installing.wait(r"install\S*\s.{0,300}?/160\.0 MiB")
        installing.child.expect(pexpect.EOF)
        callsign = plain(installing.child.before).split("installed ", 1)[1].split()[0]
    finally:
        installing.close()
    copying = Terminal(world, "copy", callsign, "-o", "drawn.json", term="xterm")
    try:
        copying.wait(r"copy\S*\s.{0,300}?/160\.0 MiB")
        copying.child.expect(pexpect.EOF)
        assert "copied " in plain(copying.child.before)
    finally:
        copying.close()
    same_brain(big, world.workdir / "drawn.json")


# -- grow: one grown array at a time ------------------------------------------------------------


@pytest.fixture(scope="module")
def learned_abraxas(world: World) -> dict[str, Any]:
    """An installed abraxas brain whose weights are random (dense enough not to shrink to nothing)."""
    from abraxas import Abraxas
    from hera.instance import save

    family = Abraxas()
    params = family.resolve("example", [("test", ABRAXAS)])
    built = family.build(params, 3)
    rng = np.random.default_rng(3)
    arrays = {name: rng.random(array.shape, dtype=np.float32) for name, array in built.arrays.items()}
    path = world.workdir / "learned.json"
    save(path, family.new_header("example", params, 3, summary=built.summary), arrays)
    result = world("install", str(path), "--json")
    assert result.rc == 0, str(result)
    return {"file": path, **json.loads(result.out)}


def test_grow_holds_one_grown_array_at_a_time_and_keeps_every_weight(world: World, learned_abraxas: dict[str, Any]) -> None:
    from abraxas.grow import cell_map
    from abraxas.structure import Structure
    from hera.instance import load

    result = run_limited(world, "grow", learned_abraxas["callsign"], "--set", "hidden.width=136", limit=GROW_LIMIT)
    assert result.rc == 0, str(result)
    before, after = load(learned_abraxas["file"]), load(Path(learned_abraxas["path"]))
    assert after.header.params["hidden"]["width"] == 136 and after.header.layout == "example+grown"
    old, new = Structure(_params(before.header.params)), Structure(_params(after.header.params))
    for proj in new.projections:
        grown = after.arrays[f"weights.{proj.name}"]
        assert grown.shape == proj.shape
        prior = next((p for p in old.projections if p.name == proj.name), None)
        if prior is None:
            assert not grown.any()
            continue
        source = before.arrays[f"weights.{proj.name}"]
        # A whole-sheet field is indexed by pre cell, which keeps its (x, y); a window is kept around its centre.
        fy0 = 0 if proj.full else proj.field_height // 2 - prior.field_height // 2
        fx0 = 0 if proj.full else proj.field_width // 2 - prior.field_width // 2
        rows = cell_map(prior.post, proj.post)
        kept = grown[rows, fy0 : fy0 + prior.field_height, fx0 : fx0 + prior.field_width, : prior.taps]
        assert kept.tobytes() == source.tobytes(), proj.name
        assert np.count_nonzero(grown) == np.count_nonzero(source), proj.name  # and nothing else
    assert not leftovers(Path(learned_abraxas["path"]).parent)


def _params(raw: dict[str, Any]) -> Any:
    from abraxas import AbraxasParams

    return AbraxasParams.model_validate(raw)
