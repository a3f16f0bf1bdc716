"""``hera --uuid X grow``: enlarge a downed agent, keeping everything it has learnt."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "enlarge a downed agent's brain (wider, deeper, longer dendrites and axons)"
EXAMPLE = """\
examples:
  hera --uuid 3f2a grow --set hidden.width=48 --set hidden.height=48
  hera --uuid 3f2a grow --set hidden.depth=2 --set axon_length=24
  hera --uuid 3f2a grow --to small          # grow to another layout's sizes

The agent must be down. Every existing weight and state value is kept; the
family decides what can grow (see its docs) and refuses anything that would
shrink the brain: shrinking needs retraining, as the spec says. The cached
file is replaced atomically only once the grown brain is complete."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("grow", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    parser.add_argument("--to", metavar="LAYOUT", help="grow to the sizes of another layout of the family")
    return parser


def run(ctx: Any) -> int:
    from hera import family as families
    from hera.commands import target
    from hera.errors import HeraError
    from hera.family import deep_merge
    from hera.instance import load, save

    from hera import config

    store, agent = target.select(ctx, verb="grow")
    assert agent.header is not None or agent.error
    if agent.header is None:
        raise HeraError(f"{agent.path}: {agent.error}")
    family = families.get(agent.header.family.name, ctx.workdir)
    patches: dict[str, Any] = {}
    if ctx.args.to:
        patches = deep_merge(patches, dict(family.resolve(ctx.args.to).model_dump(mode="json")))
    for text in ctx.args.assignments or []:
        patches = deep_merge(patches, config.parse_assignment(text))
    if not patches:
        raise HeraError("nothing to grow", hint="give --set KEY=VALUE (for example --set hidden.width=48) or --to LAYOUT")
    with store.locked():
        store.refuse_if_up(agent, "grow")
        instance = load(agent.path, follow=False)
        header = instance.header
        wanted = deep_merge(dict(header.params), patches)
        params = family.resolve(header.layout, [("grow", wanted)]) if header.layout in family.layouts else family.params_model.model_validate(wanted)
        if params.model_dump(mode="json") == header.params:
            raise HeraError("the brain already has these sizes; nothing to grow")
        summary, arrays = family.grow(header, instance.arrays, params)
        grown = header.model_copy(update={"params": params.model_dump(mode="json"), "summary": summary})
        try:
            save(agent.path, grown, arrays, mode=0o600)
        except OSError as exc:
            raise HeraError(f"cannot write {agent.path}: {exc.strerror or exc}; the agent is unchanged") from None
    before, after = header.summary.get("neurons"), summary.get("neurons")
    ctx.out.write(f"grew {agent.callsign} {agent.uuid}: {before:,} -> {after:,} neurons\n" if before and after else f"grew {agent.callsign} {agent.uuid}\n")
    return 0
