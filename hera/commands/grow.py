"""``hera --uuid X grow``: enlarge a downed agent, keeping everything it has learnt.

Only sizes grow: the family declares which parameters may change
(:attr:`hera.family.Family.growable`, none unless it opts in), and any other
key (a leak, a learning rate) is refused in one line naming it, before the
brain is touched. A grown agent no longer has its layout's sizes, so its
header says so: the layout it was grown exactly to (``--to small``), or its
layout with ``+grown`` (``example+grown``), which ``inspect``, ``agents`` and
the loading plan show.
"""

from __future__ import annotations

import argparse
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument

GLOBALS = (*AGENT_OPTIONS, "set")
HELP = "enlarge a downed agent's brain (wider, deeper, longer dendrites and axons)"
EXAMPLE = """\
examples:
  hera --uuid 3f2a grow --set hidden.width=48 --set hidden.height=48
  hera grow brisk-otter --set hidden.depth=2 --set axon_length=24
  hera --uuid 3f2a grow --to small          # grow to another layout's sizes

The agent must be down. Every existing weight and state value is kept. Only
the sizes the family declares growable can change (abraxas: the sheets'
width and height, hidden.depth, dendrite_length, axon_length); any other
parameter is refused, and so is anything that would shrink the brain:
shrinking needs retraining, as the spec says. --to takes only the other
layout's sizes. The agent's layout becomes that layout when it now has
exactly its parameters, else LAYOUT+grown. The cached file is replaced
atomically only once the grown brain is complete."""

#: Appended to the layout of a grown agent whose parameters are no named layout's.
GROWN = "+grown"
#: The header's limit on a layout's name.
LAYOUT_LENGTH = 64


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("grow", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    agent_argument(parser)
    parser.add_argument("--to", metavar="LAYOUT", help="grow to the sizes of another layout of the family")
    return parser


def run(ctx: Any) -> int:
    from hera import config, family as families
    from hera.commands import target
    from hera.errors import HeraError, UsageError
    from hera.family import deep_merge
    from hera.instance import load, save

    store, agent = target.select(ctx, target.positional(ctx, ctx.args.file), verb="grow")
    if agent.header is None:
        raise HeraError(f"{agent.path}: {agent.error}")
    family = families.get(agent.header.family.name, ctx.workdir)
    patches: dict[str, Any] = {}
    if ctx.args.to:
        patches = sizes_of(family, family.resolve(ctx.args.to).model_dump(mode="json"))
    for text in ctx.args.assignments or []:
        patches = deep_merge(patches, config.parse_assignment(text))
    if not patches:
        raise UsageError("nothing to grow", hint="give --set KEY=VALUE (for example --set hidden.width=48) or --to LAYOUT")
    with store.locked():
        store.refuse_if_up(agent, "grow")
        grown_params(family, agent.header, patches)  # a key grow may not change is refused before the brain is read
        instance = load(agent.path, follow=False)
        header = instance.header
        params = grown_params(family, header, patches)
        summary, arrays = family.grow(header, instance.arrays, params)
        layout = grown_layout(family, header.layout, params.model_dump(mode="json"), ctx.args.to)
        grown = header.model_copy(update={"params": params.model_dump(mode="json"), "summary": summary, "layout": layout})
        try:
            save(agent.path, grown, arrays, mode=0o600)
        except OSError as exc:
            raise HeraError(f"cannot write {agent.path}: {exc.strerror or exc}; the agent is unchanged") from None
    before, after = header.summary.get("neurons"), summary.get("neurons")
    sizes = f": {before:,} -> {after:,} neurons" if before and after else ""
    ctx.out.write(f"grew {agent.callsign} {agent.uuid}{sizes}, layout {layout}\n")
    return 0


def sizes_of(family: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The growable keys of ``params`` alone, as a nested patch: what ``--to`` takes from a layout."""
    patch: dict[str, Any] = {}
    for dotted in sorted(family.growable):
        *groups, leaf = dotted.split(".")
        source: Any = params
        target = patch
        for part in groups:
            source = source.get(part) if isinstance(source, dict) else None
            target = target.setdefault(part, {})
        if isinstance(source, dict) and leaf in source:
            target[leaf] = source[leaf]
    return patch


def grown_params(family: Any, header: Any, patches: dict[str, Any]) -> Any:
    """The header's parameters with ``patches``, validated by the family; refused if they change no size or another key."""
    from pydantic import ValidationError

    from hera.errors import Conflict
    from hera.family import deep_merge, params_error

    wanted = deep_merge(dict(header.params), patches)
    if header.layout in family.layouts:
        params = family.resolve(header.layout, [("grow", wanted)])
    else:  # a grown agent's layout (example+grown) names no layout of the family
        try:
            params = family.params_model.model_validate(wanted)
        except ValidationError as exc:
            raise params_error(family, exc, header.layout, [("grow", patches)]) from None
    dumped = params.model_dump(mode="json")
    refuse_ungrowable(family, header.params, dumped)
    if dumped == header.params:
        raise Conflict("the brain already has these sizes; nothing to grow")
    return params


def refuse_ungrowable(family: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    """One line naming the first changed parameter the family does not let grow change."""
    from hera.errors import UsageError
    from hera.family import changed_keys

    for key in changed_keys(before, after):
        if key not in family.growable:
            growable = ", ".join(sorted(family.growable)) or "nothing (it does not grow)"
            raise UsageError(
                f"grow cannot change {key}: it is not a size family {family.name} can grow",
                hint=f"growable: {growable}; for other parameters build a new instance",
            )


def grown_layout(family: Any, layout: str, params: dict[str, Any], to: str | None) -> str:
    """The layout a grown agent now has: ``to`` when its parameters are exactly that layout's, else ``LAYOUT+grown``."""
    if to is not None and family.resolve(to).model_dump(mode="json") == params:
        return to
    if layout.endswith(GROWN):
        return layout
    return layout[: LAYOUT_LENGTH - len(GROWN)] + GROWN
