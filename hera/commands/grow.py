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
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

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
exactly its parameters, else LAYOUT+grown. The brain is grown one array at
a time (memory: its largest grown array, not the brain), and the cached
file is replaced atomically only once the grown brain is complete."""

if TYPE_CHECKING:
    import numpy as np

    from hera.family import ArraySpec
    from hera.instance import InstanceFile

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
    from hera.instance import InstanceFile, save
    from hera.progress import meter

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
        with InstanceFile(agent.path, follow=False) as opened, meter(ctx) as progress:
            header = opened.header
            params = grown_params(family, header, patches)
            with progress.phase("read", opened.nbytes) as reading, progress.phase("write") as writing:
                summary, pairs = family.grow(header, LazyBrain(opened, reading), params)
                layout = grown_layout(family, header.layout, params.model_dump(mode="json"), ctx.args.to)
                grown = header.model_copy(update={"params": params.model_dump(mode="json"), "summary": summary, "layout": layout})
                try:
                    save(agent.path, grown, OneByOne(pairs), mode=0o600, on_bytes=writing)
                except OSError as exc:
                    raise HeraError(f"cannot write {agent.path}: {exc.strerror or exc}; the agent is unchanged") from None
                except MemoryError:
                    raise HeraError(
                        f"not enough memory to grow {agent.callsign}: growing holds its largest grown array at once; "
                        "the agent is unchanged",
                        hint="free some memory, or grow it in smaller steps",
                    ) from None
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


class LazyBrain(Mapping[str, "np.ndarray"]):
    """The old brain as :meth:`hera.family.Family.grow` reads it: decoded on lookup, never all at once.

    Looking an array up decodes and verifies it then (nothing keeps it);
    :meth:`spec` says an array's dtype and shape from the file alone, and
    :meth:`pieces` gives its verified elements a few MiB at a time, which
    :func:`hera.family.row_blocks` assembles into rows. Membership and
    iteration never decode (Mapping's own ``in`` would look the array up).
    Every byte decoded counts towards ``on_bytes`` (the ``read`` phase).
    """

    def __init__(self, opened: InstanceFile, on_bytes: Any = None) -> None:
        self._opened = opened
        self._on_bytes = on_bytes

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._opened.entries:
            raise KeyError(name)
        return self._opened.array(name, on_bytes=self._on_bytes)

    def __contains__(self, name: object) -> bool:
        return name in self._opened.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._opened.entries)

    def __len__(self) -> int:
        return len(self._opened.entries)

    def spec(self, name: str) -> ArraySpec:
        from hera.family import ArraySpec

        entry = self._opened.entries[name]
        return ArraySpec(entry.dtype, entry.shape)

    def pieces(self, name: str) -> Iterator[np.ndarray]:
        return self._opened.pieces(name, on_bytes=self._on_bytes)


class OneByOne(Mapping[str, "np.ndarray"]):
    """The grown arrays as ``save`` takes them, made one at a time by the family and freed once written.

    ``save`` walks ``items()`` once, writing each array before it asks for
    the next, so a family's generator makes each only then. What ``save``
    has written is still named by its loop (and the family's generator)
    while the next is made; :func:`_release` frees its memory there and
    then, so growing holds one grown array, not two. Nothing else may look
    the arrays up: this is a stream, not a mapping to keep.
    """

    def __init__(self, pairs: Iterable[tuple[str, np.ndarray]]) -> None:
        self._pairs = pairs

    def items(self) -> Iterator[tuple[str, np.ndarray]]:  # type: ignore[override]
        for name, array in self._pairs:
            yield name, array
            _release(array)
            del array

    def __getitem__(self, name: str) -> np.ndarray:
        raise KeyError(name)  # a stream: arrays are only walked, by items()

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.items())

    def __len__(self) -> int:
        raise TypeError("the grown arrays are a stream of unknown length")


def _release(array: np.ndarray) -> None:
    """Give a written array's memory back now, whoever still names it (it is never read again).

    Only an array that owns its memory: a view's base may be something the
    family keeps, and freeing under it would be a use-after-free.
    """
    if array.flags.owndata and array.base is None and array.size:
        array.resize(0, refcheck=False)
