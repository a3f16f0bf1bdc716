"""A failed ``hera up FILE`` leaves nothing behind: the install it made is rolled back, an earlier one never.

``up FILE`` installs the file on its first up (the spec). When that same up is
then refused (the brain does not fit the device, the device does not exist)
the user has an agent in the cache they never upped and did not ask for;
the next ``hera agents`` lists it and the disk keeps a copy of the brain. These
tests up files the way a user would and look only at what they can see: the
exit status, the message, ``hera agents`` and the cache directory.
"""

from __future__ import annotations

import json

import pytest

from agent_helpers import build, module_tick_world
from cachekit import cached
from herakit import one_error_line


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from module_tick_world(tmp_path_factory, "rollback")


@pytest.fixture(autouse=True)
def empty_cache(world):
    """Every test starts with nothing installed (they share one world)."""
    for path in cached(world):
        world("destroy", path.stem, "--yes", check=True)
    yield


def installed(world) -> list[str]:
    return [row["uuid"] for row in json.loads(world("agents", "--json", check=True).out)]


def test_an_up_that_does_not_fit_rolls_back_its_install_and_says_what_is_needed_and_what_would_fit(world):
    brain = build(world, "big.json", layout="huge")
    refused = world("up", "big.json")
    assert refused.rc == 1 and "Traceback" not in refused.err, str(refused)
    text = refused.err
    assert "needs     1024.0 TiB on the device" in text and "free " in text and "would fit tick/example" in text
    assert refused.err.splitlines()[-1].startswith(f"hera: agent {brain.callsign} needs more than cpu has free")
    assert installed(world) == [] and cached(world) == []
    assert "installed" not in refused.out  # nothing claims an install that is not there


def test_an_up_on_a_device_that_does_not_exist_rolls_back_its_install(world):
    build(world, "small.json")
    one_error_line(world("up", "small.json", "--device", "cuda:7"), "no device 'cuda:7'")
    assert installed(world) == [] and cached(world) == []


def test_a_refused_up_never_removes_an_agent_installed_before_it(world):
    brain = build(world, "huge.json", layout="huge")
    world("install", "huge.json", check=True)
    refused = world("up", "huge.json")
    assert refused.rc == 1 and "needs more than cpu has free" in refused.err, str(refused)
    assert installed(world) == [brain.uuid]
    one_error_line(world("up", "huge.json", "--device", "cuda:7"), "no device 'cuda:7'")
    assert installed(world) == [brain.uuid]
