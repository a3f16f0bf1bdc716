"""Every shipped family lives a whole life through real processes and ends where a straight run ends.

A family's own resume test proves that its runtime exports and imports its
state; it cannot prove that the *cached file* hera writes is the whole agent,
because hera saves only what ``export_state`` returns and reloads only that.
A family that forgets a static array (vogels-abbott once left out its
connectivity) passes its own test and still loses every agent on the second
``up``. So this file does what a user does, for every family that ships:

    build → up → run N → down → up → run N → down → up → run N → down

with ``hera`` commands and the control requests a controller sends (``step``
for exact iterations, ``feed`` where the family has an input area), and
compares the cached file, array by array and bit for bit, with a second
build of the same seed run 3N iterations straight. Nothing is patched back
into any state. Then two more lives of the same agent:

* the cached file is cut in half, so ``up`` must fall back to ``.prev`` (the
  save before the last, at 2N), which must run on to the straight run's 3N:
  every save the agent ever wrote is a whole agent;
* one state array of the cached file is renamed by one bit: ``up`` must refuse
  in one line naming it, and leave the file as it was (never come up as a
  fresh brain at the same iteration, whose next save would make that permanent).

Starting agents is most of the cost (Python, Taichi, the kernel cache), so
the selected families live at once, each in a thread of its own, when the
first test asks; the tests then check what each life left. A new shipped
family is one more entry in :data:`SHIPPED`;
:func:`test_every_shipped_family_lives_a_whole_life_here` fails until it is added.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent_helpers import (
    BUILT_LINE,
    cache_path,
    cached_arrays,
    client,
    reap_agents,
    request,
    same_arrays,
    snapshot,
    tick_world,
    up_daemon,
    up_daemons,
    wait_gone,
)
from herakit import Result, World, one_error_line

T = TypeVar("T")
#: hera's own arrays in a cached file (unread output), beside the family's.
OWN_PREFIX = "hera."


@dataclass(frozen=True)
class Shipped:
    """One family's smallest layout, and what proves its downs fall mid-flight and its state is checked."""

    family: str
    layout: str
    #: iterations per leg: three legs, three downs
    n: int
    #: bytes fed before the first iteration (None: the family has no input area)
    feed: str | None = None
    #: an array that must be non-zero at the first down, so that the down falls mid-flight
    busy: str | None = None
    #: a state array a fresh build lacks: renamed by one bit in the cached file, it must be refused
    state_array: str = "state.v"

    @property
    def id(self) -> str:
        return f"{self.family}/{self.layout}"


#: Every family that ships with hera (and the test family), at its smallest layout.
SHIPPED = (
    Shipped("tick", "example", 40, "every byte of this line goes down and comes back up\n", "pending", "counts"),
    Shipped("abraxas", "example", 12, "the quick brown fox jumps over the lazy dog. " * 2, "io.pending",
            "state.potential"),
    Shipped("vogels-abbott", "example", 173, busy="state.refractory"),
    Shipped("vogels-abbott", "example-stdp", 173, busy="state.a_pre"),
)
IDS = [brain.id for brain in SHIPPED]

# -- one life, step by step ---------------------------------------------------------------------------


def build_twice(world: World, brain: Shipped) -> tuple[str, str]:
    """Two builds of the same seed (the same brain under two uuids): the straight one and the living one."""
    started = [
        world.popen("--family", brain.family, "--layout", brain.layout, "--seed", "11", "build", "-o", name)
        for name in ("straight.json", "life.json")
    ]
    uuids = []
    for process in started:
        out, err = process.communicate(timeout=120)
        found = BUILT_LINE.search(out)
        assert process.returncode == 0 and found, f"build -> exit {process.returncode}\n{out}{err}"
        uuids.append(found["uuid"])
    return uuids[0], uuids[1]


def step(world: World, uuid: str, n: int, expect: int) -> None:
    """Exactly ``n`` iterations of a paused agent, ending at iteration ``expect``."""
    with client(world, uuid) as agent:
        assert agent.request("step", n=n, timeout=None)["iteration"] == expect


def down(world: World, name: str, pid: int, iteration: int) -> None:
    """``hera down NAME``; the agent is gone and its cache holds ``iteration``."""
    result = world("down", name, check=True)
    assert f" at iteration {iteration} " in result.out, str(result)
    wait_gone(pid)


def up_paused(world: World, name: str, uuid: str, iteration: int) -> int:
    """``hera up NAME --paused --daemon`` of an agent that was down; it must come back at ``iteration``."""
    up = up_daemon(world, name, "--paused")
    assert request(world, uuid, "status")["iteration"] == iteration
    return up.pid


def family_arrays(arrays: dict[str, Any]) -> dict[str, Any]:
    """The arrays the family exported (a cached file adds hera's own, such as unread output)."""
    return {name: array for name, array in arrays.items() if not name.startswith(OWN_PREFIX)}


def straight_run(world: World, brain: Shipped, uuid: str, pid: int) -> dict[str, Any]:
    """3N iterations in one life; returns the live state at 2N (what ``.prev`` of the other must hold)."""
    n = brain.n
    step(world, uuid, 2 * n, 2 * n)
    iteration, at_2n = snapshot(world, uuid)
    assert iteration == 2 * n
    step(world, uuid, n, 3 * n)
    down(world, "straight.json", pid, 3 * n)
    return at_2n


def whole_life(world: World, brain: Shipped, uuid: str, pid: int) -> None:
    """N, down, up, N, down, up, N, down: every leg in a new agent process."""
    n = brain.n
    step(world, uuid, n, n)
    down(world, "life.json", pid, n)
    if brain.busy:
        _, first = cached_arrays(world, uuid)
        assert first[brain.busy].any(), f"choose N so that {brain.busy} is non-zero at the first down"
    for leg in (2, 3):
        pid = up_paused(world, "life.json", uuid, (leg - 1) * n)
        step(world, uuid, n, leg * n)
        down(world, "life.json", pid, leg * n)


def previous_save(world: World, uuid: str) -> tuple[Any, dict[str, Any]]:
    """The header and arrays of ``<uuid>.json.prev``, the save before the last."""
    from hera.instance import load

    cached = cache_path(world, uuid)
    kept = load(cached.with_name(cached.name + ".prev"))
    return kept.header, kept.arrays


def life_from_previous_save(world: World, brain: Shipped, uuid: str) -> None:
    """Cut the cached file in half: ``up`` falls back to ``.prev`` (2N), which runs N more and goes down."""
    cached = cache_path(world, uuid)
    data = cached.read_bytes()
    cached.write_bytes(data[: len(data) // 2])
    pid = up_paused(world, "life.json", uuid, 2 * brain.n)
    step(world, uuid, brain.n, 3 * brain.n)
    down(world, "life.json", pid, 3 * brain.n)


def one_bit_off(name: str) -> str:
    """The name with one bit of its last character flipped (``state.potential`` -> ``state.potentiam``)."""
    return name[:-1] + chr(ord(name[-1]) ^ 1)


@dataclass(frozen=True)
class Renamed:
    """What ``up`` did with a cached file whose state array was renamed by one bit."""

    result: Result
    renamed: bool
    untouched: bool


def up_with_a_renamed_array(world: World, brain: Shipped, uuid: str) -> Renamed:
    """Rename ``brain.state_array`` in the cached file (checksums right), ``up`` it, then put the file back."""
    from hera.instance import load, save

    cached = cache_path(world, uuid)
    original = cached.read_bytes()
    instance = load(cached)
    arrays = {one_bit_off(k) if k == brain.state_array else k: v for k, v in instance.arrays.items()}
    save(cached, instance.header, arrays, mode=0o600)
    damaged = cached.read_bytes()
    try:
        result = world("up", "life.json", "--paused", "--daemon")
        reap_agents(world)  # an agent that came up with a wrong brain must not outlive this
        return Renamed(result, arrays.keys() != instance.arrays.keys(), cached.read_bytes() == damaged)
    finally:
        cached.write_bytes(original)


# -- every selected family lives at once --------------------------------------------------------------


@dataclass
class Lived:
    """What one family's lives left: each part's outcome, or the exception that ended it."""

    brain: Shipped
    world: World
    outcomes: dict[str, Any] = field(default_factory=dict)

    def attempt(self, part: str, action: Callable[[], T]) -> T | None:
        """Run one part of the life; its failure is the failure of the tests that check that part."""
        try:
            self.outcomes[part] = action()
        except BaseException as exc:  # noqa: BLE001 (reported by the test that looks at this part)
            self.outcomes[part] = exc
            return None
        return self.outcomes[part]

    def __getitem__(self, part: str) -> Any:
        found = self.outcomes.get(part, RuntimeError(f"{self.brain.id}: {part} never ran (an earlier part failed)"))
        if isinstance(found, BaseException):
            raise found
        return found


def live(world: World, brain: Shipped) -> Lived:
    """Both agents' lives, then the life from ``.prev``, then the renamed array; the figures each test needs."""
    lived = Lived(brain, world)
    started = time.monotonic()

    def both_lives() -> tuple[str, str]:
        straight, life = build_twice(world, brain)
        first_straight, first_life = up_daemons(world, ("straight.json", "--paused"), ("life.json", "--paused"))
        if brain.feed is not None:
            for uuid in (straight, life):
                request(world, uuid, "feed", text=brain.feed)
        lived.outcomes["at 2N"] = straight_run(world, brain, straight, first_straight.pid)
        whole_life(world, brain, life, first_life.pid)
        return straight, life

    uuids = lived.attempt("uuids", both_lives)
    if uuids is None:
        reap_agents(world)
        return lived
    straight, life = uuids
    lived.attempt("straight", lambda: cached_arrays(world, straight))
    lived.attempt("life", lambda: cached_arrays(world, life))

    def from_previous() -> tuple[Any, dict[str, Any]]:
        life_from_previous_save(world, brain, life)
        return cached_arrays(world, life)

    if lived.attempt("previous", lambda: previous_save(world, life)) is not None:
        lived.attempt("from previous", from_previous)
    reap_agents(world)
    lived.attempt("renamed", lambda: up_with_a_renamed_array(world, brain, life))
    reap_agents(world)
    lived.outcomes["seconds"] = time.monotonic() - started
    return lived


class Lives:
    """The families the selected tests need, living at once (agent starts overlap), each in its own world."""

    def __init__(self, root: Path, brains: list[Shipped]) -> None:
        self.worlds = {brain.id: tick_world(World(root / brain.id.replace("/", "-"))) for brain in brains}
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(brains)), thread_name_prefix="whole-life")
        self.futures: dict[str, Future[Lived]] = {
            brain.id: self.pool.submit(live, self.worlds[brain.id], brain) for brain in brains
        }

    def of(self, brain: Shipped) -> Lived:
        return self.futures[brain.id].result(timeout=600)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for world in self.worlds.values():
            reap_agents(world)
            world.close()


def selected(session: pytest.Session) -> list[Shipped]:
    """The families whose tests this run selected (``-k tick`` lives tick alone)."""
    wanted = {
        item.callspec.params["lived"].id
        for item in session.items
        if item.module is not None and item.module.__name__ == __name__ and hasattr(item, "callspec")
        and "lived" in item.callspec.params
    }
    return [brain for brain in SHIPPED if brain.id in wanted]


@pytest.fixture(scope="module")
def lives(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lives]:
    everyone = Lives(tmp_path_factory.mktemp("lives"), selected(request.session))
    yield everyone
    everyone.close()


@pytest.fixture(params=SHIPPED, ids=IDS)
def lived(request: pytest.FixtureRequest, lives: Lives) -> Lived:
    return lives.of(request.param)


# -- what each life must have left ----------------------------------------------------------------------


def assert_same_agent(straight: tuple[Any, dict[str, Any]], life: tuple[Any, dict[str, Any]], iteration: int) -> None:
    """Both cached files hold ``iteration`` and the same arrays, bit for bit (unread output included)."""
    (straight_header, straight_arrays), (life_header, life_arrays) = straight, life
    assert straight_header.dynamic and life_header.dynamic
    assert straight_header.iteration == life_header.iteration == iteration
    same_arrays(straight_arrays, life_arrays)


def test_build_up_down_three_times_equals_a_straight_run_bit_for_bit(lived: Lived) -> None:
    assert lived["uuids"]
    assert_same_agent(lived["straight"], lived["life"], 3 * lived.brain.n)
    print(f"lives of {lived.brain.id}: {lived['seconds']:.1f} s")


def test_the_save_before_the_last_is_the_straight_run_at_2n(lived: Lived) -> None:
    header, arrays = lived["previous"]
    assert header.dynamic and header.iteration == 2 * lived.brain.n
    same_arrays(family_arrays(arrays), lived["at 2N"])


def test_up_from_the_save_before_the_last_runs_on_to_the_straight_run(lived: Lived) -> None:
    """The cached file cut in half: ``up`` takes ``.prev`` (2N); N more iterations end where the straight run did."""
    assert_same_agent(lived["straight"], lived["from previous"], 3 * lived.brain.n)


def test_a_state_array_renamed_by_one_bit_is_refused_in_one_line_and_the_cache_is_untouched(lived: Lived) -> None:
    renamed: Renamed = lived["renamed"]
    assert renamed.renamed, f"{lived.brain.state_array!r} is not in the cached file"
    one_error_line(renamed.result, repr(lived.brain.state_array))
    assert renamed.untouched, "the refused up rewrote the cached file"


def test_every_shipped_family_lives_a_whole_life_here(hera: World) -> None:
    """A family that ships (installed, or the test family) without an entry in SHIPPED fails here."""
    world = tick_world(hera)
    listed = json.loads(world("families", "--json", check=True).out)
    assert not [row for row in listed if row["error"]], listed
    assert {row["name"] for row in listed} <= {brain.family for brain in SHIPPED}
