"""Finding the agent a user means, from a UUID, a prefix of one, a callsign, or a prefix of one.

Order, as docker taught its users (and as its bugs taught us): an exact UUID,
then an exact callsign, then a unique prefix: of a UUID (dashes and case
ignored) for ``--uuid``, of a callsign for ``--callsign``, and for
``--identifier`` (and a positional) of either, counted together, so
``3f2a`` or ``brisk`` names an agent only when nothing else could be meant.
An ambiguous prefix is an error that lists every candidate; hera never
guesses the most recent one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hera.errors import HeraError, NotFound, UsageError


class Identified(Protocol):
    @property
    def uuid(self) -> str: ...

    @property
    def callsign(self) -> str: ...


def _bare(text: str) -> str:
    return text.replace("-", "").lower()


def resolve(records: Sequence[Identified], text: str, kind: str = "identifier") -> Identified:
    """The one record ``text`` names; ``kind`` is ``uuid``, ``callsign`` or ``identifier`` (either)."""
    if not text:
        raise UsageError(f"--{kind} needs a value")
    if kind in ("uuid", "identifier"):
        exact = [r for r in records if _bare(r.uuid) == _bare(text)]
        if exact:
            return exact[0]
    if kind in ("callsign", "identifier"):
        named = [r for r in records if r.callsign == text]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise ambiguous(text, named)
    matches: list[Identified] = []
    if kind in ("uuid", "identifier"):
        prefix = _bare(text)
        if prefix and all(c in "0123456789abcdef" for c in prefix):
            matches += [r for r in records if _bare(r.uuid).startswith(prefix)]
    if kind in ("callsign", "identifier"):
        matches += [r for r in records if r.callsign.startswith(text) and r not in matches]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ambiguous(text, matches)
    what = {"uuid": "UUID or prefix", "callsign": "callsign", "identifier": "UUID, prefix or callsign"}[kind]
    raise NotFound(f"no installed agent matches {what} {text!r}", hint="'hera agents' lists them")


def ambiguous(text: str, matches: Sequence[Identified]) -> HeraError:
    """A prefix that several agents share: the command line does not say which (a usage error)."""
    listed = ", ".join(f"{r.uuid} ({r.callsign})" for r in sorted(matches, key=lambda r: r.uuid))
    return UsageError(f"{text!r} matches {len(matches)} agents: {listed}", hint="give more of the UUID or callsign")
