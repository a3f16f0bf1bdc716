"""Never lose an agent: checkpoint on order, point-in-time copies, damaged files, a full or read-only disk.

Each test ups real tick agents (tests/families/tick) with ``hera up --daemon``
and looks at what a user sees: what hera prints, the cached file and its
``.prev``, and whether the agent still answers and moves on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_helpers import (
    build,
    cache_path,
    cached_header,
    reap_agents,
    request,
    tick_world,
    up_daemon,
    wait_for,
    wait_gone,
)
from herakit import World, leftovers
from reliability_kit import array_offset, fill, flip_bit, note, remount, tmpfs


@pytest.fixture
def world(hera: World) -> World:
    tick_world(hera)
    yield hera
    reap_agents(hera)


def rising(world: World, uuid: str, above: int) -> int:
    """Wait until the agent's iteration passes ``above``: it is running, not merely alive."""
    return wait_for(lambda: (it := request(world, uuid, "status")["iteration"]) > above and it, 20, "the iteration to rise")


def test_checkpoint_writes_the_cache_while_the_agent_runs_and_keeps_the_previous(world: World) -> None:
    built = build(world)
    up = up_daemon(world, str(built.path))
    path = cache_path(world, up.uuid)
    first = world("--uuid", up.uuid, "checkpoint", check=True)
    assert f"-> {path}" in first.out
    saved = int(first.out.split(" at iteration ")[1].split()[0])
    assert cached_header(world, up.uuid).iteration == saved
    rising(world, up.uuid, saved)  # the loop never stopped
    second = world("checkpoint", check=True)  # the only agent up needs no name
    again = int(second.out.split(" at iteration ")[1].split()[0])
    assert again > saved
    from hera.instance import load

    assert load(Path(f"{path}.prev")).header.iteration == saved  # the previous good save, kept beside it
    assert load(path).header.iteration == again
    assert request(world, up.uuid, "status")["state"] == "running"
    world("down", check=True)
    assert not leftovers(path.parent, world.workdir)
    note("checkpoint", trials=2)


def test_copy_of_a_running_agent_is_complete_and_installs_only_as_a_clone(world: World) -> None:
    built = build(world)
    up = up_daemon(world, str(built.path))
    rising(world, up.uuid, 5)
    done = world("--uuid", up.uuid, "copy", "-o", "snap.json", check=True)
    from hera.instance import load

    copy = load(world.workdir / "snap.json")
    assert copy.header.uuid == up.uuid and copy.header.dynamic
    assert f"at iteration {copy.header.iteration}" in done.out
    refused = world("install", "snap.json")
    assert refused.rc != 0 and "--as-new" in refused.err
    again = world("--uuid", up.uuid, "copy", "-o", "snap.json")  # never over an existing file
    assert again.rc != 0 and "already exists" in again.err
    assert request(world, up.uuid, "status")["state"] == "running"
    clone = world("install", "snap.json", "--as-new", check=True)
    assert up.uuid not in clone.out.split("->")[0]
    world("--uuid", up.uuid, "down", check=True)
    note("copy", trials=1)


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped", "edited header"])
def test_a_damaged_cached_file_falls_back_to_the_previous_save_with_one_warning(world: World, damage: str) -> None:
    built = build(world)
    up = up_daemon(world, str(built.path))
    rising(world, up.uuid, 3)
    world("checkpoint", check=True)
    down = world("down", check=True)
    path = cache_path(world, up.uuid)
    from hera.instance import load

    kept = load(Path(f"{path}.prev")).header.iteration
    assert int(down.out.split(" at iteration ")[1].split()[0]) >= kept
    _damage(path, damage)
    result = world("--uuid", up.uuid, "up", "--daemon", "--paused")
    assert result.rc == 0, str(result)
    warnings = [line for line in result.err.splitlines() if line]
    assert len(warnings) == 1 and "damaged" in warnings[0] and f"iteration {kept}" in warnings[0], str(result)
    assert "Traceback" not in result.err
    assert request(world, up.uuid, "status")["iteration"] == kept  # the previous brain, not a silently wrong one
    world("down", check=True)
    assert load(path).header.iteration == kept  # the cached file is whole again
    note("damaged file", trials=1, faults=1)


def test_a_damaged_cached_file_without_a_previous_save_is_refused_in_one_line(world: World) -> None:
    built = build(world)
    up = up_daemon(world, str(built.path))
    world("down", check=True)
    path = cache_path(world, up.uuid)
    Path(f"{path}.prev").unlink(missing_ok=True)
    flip_bit(path, array_offset(path))
    result = world("--uuid", up.uuid, "up", "--daemon")
    assert result.rc != 0 and "Traceback" not in result.err, str(result)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hera: ") and str(path) in lines[0], str(result)
    note("damaged file", trials=1, faults=1)


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif how == "bit-flipped":
        flip_bit(path, array_offset(path))
    else:
        path.write_bytes(data.replace(b'"format_version"', b'"format_versoin"', 1))


@pytest.fixture
def small_cache(world: World, tmp_path: Path) -> Path:
    """The world's cache directory on a 4 MiB tmpfs (skipped where mounting is not allowed)."""
    directory = tmp_path / "cache"
    try:
        with tmpfs(directory, "4m"):
            world.env["HERA_CACHE_DIR"] = str(directory)
            yield directory
            reap_agents(world)
    except OSError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_checkpoint_and_down_on_a_full_or_read_only_disk_fail_clearly_and_the_agent_runs_on(
    world: World, small_cache: Path, fault: str
) -> None:
    built = build(world)
    up = up_daemon(world, str(built.path))
    path = small_cache / f"{up.uuid}.json"
    world("checkpoint", check=True)
    before = path.read_bytes()
    from hera.instance import read_header

    saved = read_header(path).iteration
    filler = None
    if fault == "full":
        filler = fill(small_cache)
    else:
        remount(small_cache, "ro")
    try:
        for verb in ("checkpoint", "down"):
            result = world(verb)
            assert result.rc != 0, str(result)
            lines = result.err.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in result.err, str(result)
            assert f"{verb} failed" in lines[0] and f"iteration {saved}" in lines[0], lines[0]
            assert ("No space" in lines[0]) if fault == "full" else ("Read-only" in lines[0]), lines[0]
            status = request(world, up.uuid, "status")
            assert status["state"] == "running", status  # where it was
            rising(world, up.uuid, status["iteration"])
            assert path.read_bytes() == before  # the previous state, intact
    finally:
        if filler is not None:
            filler.unlink()
        else:
            remount(small_cache, "rw")
    assert not leftovers(small_cache)
    down = world("down", check=True)
    wait_gone(up.pid)
    assert read_header(path).iteration > saved
    assert "at iteration" in down.out
    note("full or read-only disk", trials=2, faults=2)
