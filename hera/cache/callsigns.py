"""Callsigns: short readable names for agents, derived from their UUID.

A UUID is what identifies an agent; a callsign is what a person types. It is
derived from the UUID (so the same instance always suggests the same name) and
made unique among installed agents by a numeric suffix when needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container

ADJECTIVES = (
    "amber agile bold brave brisk calm clever cosmic crisp curious dapper deft eager fair fierce "
    "gentle glad golden grand hardy hasty humble jolly keen kind lively lucid lucky merry mighty "
    "misty noble nimble quick quiet rapid rustic sharp shy silent silver sleek snowy solar spry "
    "steady stoic sunny swift tidy vivid wary wild witty young zesty"
).split()
ANIMALS = (
    "otter badger beaver bison crane cricket dingo dolphin eagle falcon ferret finch fox gecko "
    "gibbon heron ibis jackal koala lemur lynx magpie marten mole moose newt ocelot osprey owl "
    "panda puffin quail raven robin salmon seal shrew skunk sparrow stoat swan tapir tern toad "
    "walrus weasel wolf wombat wren yak zebra"
).split()


def suggest(uuid: str) -> str:
    digest = int.from_bytes(hashlib.sha256(uuid.encode()).digest()[:8], "big")
    return f"{ADJECTIVES[digest % len(ADJECTIVES)]}-{ANIMALS[(digest // len(ADJECTIVES)) % len(ANIMALS)]}"


def unique(wanted: str, taken: Container[str]) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3``… whichever is free."""
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"
