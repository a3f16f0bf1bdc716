"""Exit codes: one of each, through ``hera`` as a script sees it (the table is in docs/commands.md).

1 anything else, 2 usage, 3 not found, 4 wrong state, 5 the agent's own
failure, 130 interrupted. Every failure is still the one ``hera: ...`` line.
One user's world with two installed agents serves the module; each test
leaves it as it found it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_helpers import reap_agents
from cachekit import cache_of, make_instance, make_lived_instance
from herakit import World, one_error_line

DOWN = "3f2a9c1e-0000-4000-8000-00000000000a"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A user with one installed agent that is down, ``brisk-otter`` (3f2a…)."""
    with World(tmp_path_factory.mktemp("codes")) as hera:
        make_instance(hera.workdir, "brisk.json", uuid=DOWN, callsign="brisk-otter")
        hera("install", "brisk.json", check=True)
        yield hera
        reap_agents(hera)


def test_usage_is_2(world: World) -> None:
    one_error_line(world("down", "--no-such-option"), "unrecognized arguments", rc=2)
    one_error_line(world("--seed", "3", "down"), "down does not take --seed", rc=2)


def test_not_found_is_3(world: World) -> None:
    one_error_line(world("--uuid", "ffff", "down"), "no installed agent matches", rc=3)
    one_error_line(world("inspect", "nobody-here"), "no installed agent matches", rc=3)  # a positional that is no file


def test_wrong_state_is_4(world: World) -> None:
    one_error_line(world("down", "3f2a"), "brisk-otter", "is not up", rc=4)
    one_error_line(world("--family", "abraxas", "build", "-o", "brisk.json"), "already exists", rc=4)


def test_the_agents_own_failure_is_5(world: World) -> None:
    """An agent that finds its cached file damaged while it loads, says so and exits: its failure, not hera's."""
    lived = make_lived_instance(world.workdir, "lived.json", callsign="worn-vole")
    world("install", "lived.json", check=True)
    cached = next(p for p in cache_of(world).glob("*.json") if p.stem != DOWN)
    data = bytearray(cached.read_bytes())
    at = data.index(b'"data": "') + len(b'"data": "') + 100
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    cached.write_bytes(bytes(data))
    try:
        one_error_line(world("--callsign", "worn-vole", "up", "--daemon"), str(cached), rc=5)
    finally:
        world("destroy", "worn-vole", "--yes", check=True)
        lived.unlink()


def test_anything_else_is_1(world: World) -> None:
    one_error_line(world("--family", "abraxas", "build", "-o", "missing/brain.json"), "does not exist", rc=1)


def test_interrupted_is_130(world: World) -> None:
    """Ctrl-C at destroy's question on a terminal: 130, and nothing is destroyed."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable, ["-m", "hera", "destroy", "brisk-otter"], env=world.env, cwd=str(world.workdir), encoding="utf-8", timeout=30
    )
    child.expect("Type its callsign to confirm: ")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, child.before
    assert "hera: interrupted" in child.before and "Traceback" not in child.before
    assert (cache_of(world) / f"{DOWN}.json").is_file()
    assert Path(world.workdir / "brisk.json").is_file()
