"""``hera copy`` never writes through a link it was handed, and the agent takes no path from a message (issue 16, item 5).

A working directory may be shared (a project directory, /tmp), so another
user may have planted a symlink where ``copy -o NAME`` will write, or made a
parent of NAME a symlink to a place of their choosing. hera creates the copy
itself, beside NAME, without following a symlink at the last component, and
follows a symlink in a parent only if the caller (or root) owns it. The
``copy`` request carries no path at all: the agent writes the copy where only
its owner reaches (its cache or runtime directory) under a name it makes, and
``hera copy`` moves it into place. Real agents (tick), real symlinks, and, as root, a symlink
that really belongs to another user.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_helpers import build, cache_path, reap_agents, request, tick_world, up_daemon
from hera.errors import HeraError
from herakit import World, leftovers, one_error_line


@pytest.fixture
def world(hera: World) -> World:
    tick_world(hera)
    yield hera
    reap_agents(hera)


def up_then_down(world: World) -> Iterator[str]:
    """An agent, first up (the agent writes the copy), then down (hera copies its cached file): yields which."""
    built = build(world)
    up = up_daemon(world, str(built.path))
    yield up.uuid
    world("--uuid", up.uuid, "down", check=True)
    yield up.uuid


def a_copy_request_carrying_a_path_is_refused(world: World, uuid: str) -> None:
    """The agent writes no file a message names; without a path it writes where only its owner reaches."""
    target = world.root / "chosen-by-a-message.json"
    with pytest.raises(HeraError, match="args.path"):
        request(world, uuid, "copy", path=str(target))
    assert not target.exists()
    made = Path(request(world, uuid, "copy")["path"])
    assert made.parent in (world.runtime_dir / "hera", cache_path(world, uuid).parent), made
    assert made.name.startswith(f".hera-copy.{uuid}.") and not made.name.endswith(".json")
    assert os.stat(made).st_mode & 0o777 == 0o600
    made.unlink()


def test_copy_to_a_symlink_never_writes_through_it_nor_where_a_message_says(world: World) -> None:
    elsewhere = world.root / "elsewhere"
    elsewhere.mkdir()
    (world.workdir / "dangling.json").symlink_to(elsewhere / "planted.json")
    victim = elsewhere / "victim.json"
    victim.write_text("precious\n")
    (world.workdir / "onto-a-file.json").symlink_to(victim)
    for state, agent in zip(("up", "down"), up_then_down(world), strict=True):
        if state == "up":
            a_copy_request_carrying_a_path_is_refused(world, agent)
        for name in ("dangling.json", "onto-a-file.json"):
            one_error_line(world("--uuid", agent, "copy", "-o", name), name, "already exists")
        assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.json"], state
        assert victim.read_text() == "precious\n"
        assert not leftovers(world.workdir, elsewhere), state
        # An ordinary name still works, and the result is the caller's alone.
        done = world("--uuid", agent, "copy", "-o", f"{state}.json", check=True)
        assert done.out.rstrip().endswith(str(world.workdir / f"{state}.json"))
        assert os.stat(world.workdir / f"{state}.json").st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a symlink that belongs to another user")
def test_copy_through_a_parent_symlink_of_another_user_is_refused_and_ones_own_is_followed(world: World) -> None:
    nobody = pwd.getpwnam("nobody")
    theirs = world.root / "theirs"
    theirs.mkdir()
    planted = world.workdir / "shared"
    planted.symlink_to(theirs)
    os.lchown(planted, nobody.pw_uid, nobody.pw_gid)  # as if nobody had planted it in a shared directory
    mine = world.root / "mine"
    mine.mkdir()
    (world.workdir / "own-link").symlink_to("../mine")  # relative, resolved from where the link is
    for state, agent in zip(("up", "down"), up_then_down(world), strict=True):
        one_error_line(world("--uuid", agent, "copy", "-o", f"shared/{state}.json"), "shared", "symbolic link", "another user")
        assert list(theirs.iterdir()) == [], state
        world("--uuid", agent, "copy", "-o", f"own-link/{state}.json", check=True)
    assert sorted(p.name for p in mine.iterdir()) == ["down.json", "up.json"]
