"""Finding an agent by what a user types: full UUID, prefix, callsign.

Order (docker's, after its bugs): exact UUID, then exact callsign, then a
unique prefix: of a UUID (with or without dashes, in any case) for --uuid, of
a callsign for --callsign, of either for --identifier. An ambiguous prefix is
an error listing every candidate; hera never guesses.

One population of agents, installed once for the module, serves every lookup;
tests that change it use their own cache.
"""

from __future__ import annotations

import json

import pytest

from cachekit import cached, make_instance, with_private_system_dir
from herakit import World, one_error_line

# uuid -> callsign. B and C share 8 characters (and their title prefix); D shares 'abc' with them.
# 'cafe' is E's callsign and the start of F's uuid; H's callsign is I's full uuid.
POPULATION = {
    "3f2a9c1e-0000-4000-8000-00000000000a": "brisk-otter",
    "abcd1234-aaaa-4000-8000-00000000000b": "amber-heron",
    "abcd1234-bbbb-4000-8000-00000000000c": "calm-lynx",
    "abc09999-0000-4000-8000-00000000000d": "deft-wren",
    "70000000-0000-4000-8000-00000000000e": "cafe",
    "cafe0000-0000-4000-8000-00000000000f": "eager-ibis",
    "71000000-0000-4000-8000-000000000010": "facade00-1111-4222-8333-444455556666",
    "facade00-1111-4222-8333-444455556666": "gentle-koala",
}
BY_CALLSIGN = {callsign: uuid for uuid, callsign in POPULATION.items()}


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """A user with eight agents installed (by ``hera install``, one at a time)."""
    with World(tmp_path_factory.mktemp("crowd")) as hera:
        with_private_system_dir(hera)
        for n, (uuid, callsign) in enumerate(POPULATION.items()):
            make_instance(hera.workdir, f"{n}.json", uuid=uuid, callsign=callsign)
            hera("install", f"{n}.json", check=True)
        listed = json.loads(hera("agents", "--json").out)
        assert {row["uuid"]: row["callsign"] for row in listed} == POPULATION  # no callsign was changed
        yield hera


def chosen(hera, *args):
    """The uuid of the agent ``hera ARGS inspect`` picked."""
    result = hera(*args, "inspect", "--json")
    assert result.rc == 0, result
    return json.loads(result.out)["header"]["uuid"]


@pytest.mark.parametrize(
    "flag, text, meant",
    [
        ("--uuid", "3f2a9c1e-0000-4000-8000-00000000000a", "3f2a9c1e-0000-4000-8000-00000000000a"),
        ("--uuid", "3F2A9C1E-0000-4000-8000-00000000000A", "3f2a9c1e-0000-4000-8000-00000000000a"),
        ("--uuid", "3f2a9c1e000040008000", "3f2a9c1e-0000-4000-8000-00000000000a"),
        ("--uuid", "3f", "3f2a9c1e-0000-4000-8000-00000000000a"),
        ("--uuid", "ABCD1234-AA", "abcd1234-aaaa-4000-8000-00000000000b"),
        ("--callsign", "calm-lynx", "abcd1234-bbbb-4000-8000-00000000000c"),
        ("--identifier", "deft-wren", "abc09999-0000-4000-8000-00000000000d"),
        ("--identifier", "abcd1234-a", "abcd1234-aaaa-4000-8000-00000000000b"),
        # an exact callsign wins over a uuid prefix it happens to be ...
        ("--identifier", "cafe", "70000000-0000-4000-8000-00000000000e"),
        # ... and an exact uuid wins over a callsign that spells it
        ("--identifier", "facade00-1111-4222-8333-444455556666", "facade00-1111-4222-8333-444455556666"),
        ("--callsign", "facade00-1111-4222-8333-444455556666", "71000000-0000-4000-8000-000000000010"),
        # --uuid takes prefixes only, so 'cafe' is F's prefix there
        ("--uuid", "cafe", "cafe0000-0000-4000-8000-00000000000f"),
        # --callsign takes a unique prefix of a callsign, as --uuid does of a UUID ...
        ("--callsign", "calm", "abcd1234-bbbb-4000-8000-00000000000c"),
        # ... and --identifier either, when only one agent could be meant
        ("--identifier", "gentle", "facade00-1111-4222-8333-444455556666"),
    ],
)
def test_lookup_finds_the_one_agent_meant(crowd, flag, text, meant):
    assert chosen(crowd, flag, text) == meant


@pytest.mark.parametrize(
    "flag, text, candidates",
    [
        ("--uuid", "abcd", ["abcd1234-aaaa-4000-8000-00000000000b", "abcd1234-bbbb-4000-8000-00000000000c"]),
        ("--uuid", "ABCD-1234", ["abcd1234-aaaa-4000-8000-00000000000b", "abcd1234-bbbb-4000-8000-00000000000c"]),
        ("--identifier", "abc", ["abc09999-0000-4000-8000-00000000000d", "abcd1234-aaaa-4000-8000-00000000000b", "abcd1234-bbbb-4000-8000-00000000000c"]),
        ("--callsign", "ca", ["70000000-0000-4000-8000-00000000000e", "abcd1234-bbbb-4000-8000-00000000000c"]),
        # a UUID prefix and a callsign prefix together are as ambiguous as two of either
        ("--identifier", "fa", ["71000000-0000-4000-8000-000000000010", "facade00-1111-4222-8333-444455556666"]),
    ],
)
def test_an_ambiguous_prefix_lists_every_candidate(crowd, flag, text, candidates):
    line = one_error_line(crowd(flag, text, "inspect"), f"{text!r} matches {len(candidates)} agents", rc=2)
    for uuid in candidates:
        assert f"{uuid} ({POPULATION[uuid]})" in line
    others = set(POPULATION) - set(candidates)
    assert not any(f"{uuid} (" in line for uuid in others)


@pytest.mark.parametrize(
    "flag, text, what",
    [
        ("--uuid", "0000", "UUID or prefix '0000'"),
        ("--uuid", "brisk-otter", "UUID or prefix 'brisk-otter'"),  # --uuid takes no callsigns
        ("--callsign", "3f2a", "callsign '3f2a'"),  # --callsign takes no uuids
        ("--identifier", "nobody-here", "UUID, prefix or callsign 'nobody-here'"),
        ("--uuid=---", None, "UUID or prefix '---'"),  # dashes alone are no prefix of everything
        ("--uuid", "3f2a9c1e-0000-4000-8000-00000000000a0", "UUID or prefix"),  # longer than any uuid
    ],
)
def test_an_unknown_identifier_says_so(crowd, flag, text, what):
    args = (flag,) if text is None else (flag, text)
    one_error_line(crowd(*args, "inspect"), f"no installed agent matches {what}", "'hera agents' lists them", rc=3)


def test_an_empty_identifier_is_a_usage_error(crowd):
    one_error_line(crowd("--uuid", "", "inspect"), "--uuid needs a value", rc=2)


def test_an_ambiguous_prefix_destroys_and_uninstalls_nothing(crowd):
    before = cached(crowd)
    one_error_line(crowd("--uuid", "abcd", "destroy", "--yes"), "matches 2 agents", rc=2)
    one_error_line(crowd("--uuid", "abcd", "uninstall"), "matches 2 agents", rc=2)
    assert cached(crowd) == before
    assert not any(p.suffix == ".json" and p.stem in POPULATION for p in crowd.workdir.iterdir())

