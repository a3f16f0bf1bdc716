"""The shape of an abraxas brain: its sheets, their projections, and their sizes.

Pure arithmetic (no numpy), shared by build, estimate, the runtime and grow,
so all agree on where every neuron and weight lives.

* Areas are sheets of ``width × height`` neurons, laid out one after another in
  a single neuron index space: input, hidden[0..depth-1], output.
* A hidden sheet is cut into winner-take-all **groups** of ``hidden.group_rows``
  whole rows each (group ``y // group_rows``: growing a sheet never moves a
  cell to another group). Each group is given one **lag pair**: lag 1 (the
  byte just presented) and a partner lag ``hidden.lags[group % len(lags)]``
  bytes back, so a group's cells learn conjunctions of exactly those two bytes.
* Projections, and the shape of ``weights.<name>``:

  - ``input-hidden0``, ``[post, input h, input w, 2]``: every hidden cell sees
    the whole input sheet (indexed by input cell) at its group's two lags;
  - ``hidden<i>-hidden<i+1>``, ``[post, field h, field w, 2]``: a window of
    ``(2r+1) × (2r+1)`` cells (``r = dendrite_length``) centred on the post cell
    scaled into the pre sheet, wrapping at the edges, at the post group's lags;
  - ``hidden<i>-output``, ``[post, hidden h, hidden w, 1]``: every output cell
    sees every cell of every hidden sheet, one tap: the sheet's latest winners;
  - ``input-output``, ``[post, input h, input w, taps]``: the bytes themselves,
    ``taps = axon_length // delay_step`` of them back.

* Delays: a hop costs one iteration. Input presented on a byte-clock tick
  reaches hidden0 one iteration later, which competes then; hidden<i+1>
  competes one iteration after hidden<i>; each hidden sheet's winners reach the
  output exactly on the next byte-clock tick, where it decides. So the lag-1 ×
  lag-2 conjunction is in time for the next byte. Tap ``k`` of a delay-tap
  projection is ``k·delay_step`` later than its tap 0 (one byte per tap where
  ``delay_step == ticks_per_byte``, the default).
* Byte value ``b`` lives at cell ``(b % 16, b // 16)`` of the input and output
  sheets, whatever their size, so growing a sheet never moves a byte's neuron.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from hera.family import Params
from hera.runtime import check_arrays

BYTE_VALUES = 256
#: Byte values are laid out on a 16 × 16 patch in the corner of the input and output sheets.
BYTE_SIDE = 16
#: Input fed but not yet presented: dynamic state of its own length.
PENDING = "io.pending"
#: The partner lags of the hidden groups' lag pairs: lag 2 (order-2 conjunctions) for half the groups, and
#: each of lags 3..8 in turn, so a byte up to 8 back can be combined with the byte just presented. The far
#: lags come first and twice: the example's 16 groups pair the byte 6, 7 and 8 back twice each (a group of
#: 64 cells must hold every (lag 1, lag k) pair the stream shows, and one group per far lag was too few
#: for the byte 8 back: 0.79 of those decisive bytes, against 0.98 with two), lags 3 and 4 once; a sheet of
#: 24 groups or more has every lag.
DEFAULT_LAGS = (2, 8, 2, 7, 2, 6, 2, 8, 2, 7, 2, 6, 2, 3, 2, 4, 2, 5, 2, 3, 2, 4, 2, 5)
#: Cells a winner-take-all group may have: its winner key packs the index within the group in 24 bits.
GROUP_LIMIT = 1 << 24


class Strict(Params):
    """Parameters that are finite numbers: an infinite threshold or noise passed ``gt=0`` and ran a dead brain."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Sheet(Strict):
    width: int = Field(16, ge=1, le=65536)
    height: int = Field(16, ge=1, le=65536)

    @property
    def size(self) -> int:
        return self.width * self.height


class HiddenSheets(Sheet):
    width: int = Field(32, ge=1, le=65536)
    height: int = Field(32, ge=1, le=65536)
    depth: int = Field(1, ge=0, le=64, description="number of hidden sheets stacked in depth")
    group_rows: int = Field(2, ge=1, le=65536, description="rows of a hidden sheet per winner-take-all group")
    lags: tuple[int, ...] = Field(
        DEFAULT_LAGS,
        min_length=1,
        max_length=256,
        description="partner lags (bytes back) of the groups' lag pairs, taken in turn: group g pairs lag 1 "
        "with lags[g % len(lags)]",
    )


class Neuron(Strict):
    """Leaky integrate-and-fire dynamics of the output sheet, and the hidden sheets' competition."""

    leak: float = Field(0.5, gt=0, lt=1, description="fraction of an output neuron's potential kept each iteration")
    threshold: float = Field(1.0, gt=0, description="an output neuron's firing threshold")
    noise: float = Field(0.35, ge=0, description="standard deviation of an output neuron's noise per iteration")
    hidden_noise: float = Field(0.05, ge=0, description="standard deviation of the noise that breaks hidden ties")


class Plasticity(Strict):
    """The two learning rules: the output's softmax delta rule, and the hidden winners' instar rule."""

    rate: float = Field(
        1.2, ge=0, le=2, description="output rule: dw = rate · (target - p) / (synapses eligible), the step shared by them"
    )
    hidden_rate: float = Field(0.1, ge=0, le=1, description="hidden rule: step of a winner's weights towards its input")
    adaptation: float = Field(0.2, ge=0, description="rise of a hidden cell's threshold per win")
    adaptation_decay: float = Field(0.999, gt=0, le=1, description="fraction of the threshold rise kept per iteration")
    weight_limit: float = Field(8.0, gt=0, le=1000, description="output weights are clipped to ±weight_limit")
    surprise: float = Field(
        2.0,
        ge=0,
        le=100,
        description="output rule: its step grows by this much per bit the recent log-loss is above the long-run one "
        "(0: never)",
    )
    surprise_margin: float = Field(
        0.5, ge=0, le=64, description="bits the recent log-loss may be above the long-run one before the boost starts"
    )
    surprise_limit: float = Field(6.0, ge=1, le=100, description="the most the surprise multiplies the output rule's step by")
    surprise_decay: float = Field(
        0.05, ge=0, le=1, description="fraction of an eligible output weight forgotten per unit of boost above 1"
    )
    surprise_fast: int = Field(30, ge=1, le=1 << 16, description="bytes the recent log-loss is averaged over")
    surprise_slow: int = Field(1000, ge=1, le=1 << 16, description="bytes the long-run log-loss is averaged over")

    @model_validator(mode="after")
    def _forgets_at_most_all(self) -> Plasticity:
        """At the largest boost a weight may be forgotten at most wholly, never turned into its opposite."""
        if self.surprise_decay * (self.surprise_limit - 1) > 1:
            raise ValueError("surprise_decay × (surprise_limit - 1) must be at most 1")
        if self.surprise_fast > self.surprise_slow:
            raise ValueError("surprise_fast must be at most surprise_slow (the recent average spans fewer bytes)")
        return self


#: The parameters abraxas 0.1.0 had and this version does not: a header that has them was built by it.
OLD_PARAMS = (("neuron", "refractory"), ("plasticity", "margin"))


class AbraxasParams(Strict):
    input: Sheet = Sheet()
    hidden: HiddenSheets = HiddenSheets()
    output: Sheet = Sheet()
    dendrite_length: int = Field(2, ge=0, le=64, description="radius of a hidden-to-hidden field, in cells")
    axon_length: int = Field(32, ge=1, le=1024, description="longest input-to-output delay, in iterations")
    delay_step: int = Field(4, ge=1, le=1024, description="iterations between delay taps")
    ticks_per_byte: int = Field(4, ge=1, le=1024, description="iterations each input byte is presented")
    neuron: Neuron = Neuron()
    plasticity: Plasticity = Plasticity()

    @model_validator(mode="before")
    @classmethod
    def _not_old(cls, data: Any) -> Any:
        """A brain of abraxas 0.1.0 (a perceptron read-out, hidden cells that never reached it) is not run as this one."""
        if isinstance(data, dict):
            for group, name in OLD_PARAMS:
                if isinstance(data.get(group), dict) and name in data[group]:
                    raise ValueError(
                        f"{group}.{name} is a parameter of abraxas 0.1.0, whose brain this version does not run"
                    )
        return data

    @model_validator(mode="after")
    def _fits_bytes(self) -> AbraxasParams:
        for name in ("input", "output"):
            sheet = getattr(self, name)
            if sheet.width < BYTE_SIDE or sheet.height < BYTE_SIDE:
                raise ValueError(f"{name} must be at least {BYTE_SIDE}×{BYTE_SIDE} (one neuron per byte value)")
        if self.axon_length < self.delay_step:
            raise ValueError("axon_length must be at least delay_step")
        taps = self.axon_length // self.delay_step
        if any(not 1 <= lag <= taps for lag in self.hidden.lags):
            raise ValueError(f"hidden.lags must be within 1..{taps} (axon_length // delay_step)")
        if self.hidden.width * min(self.hidden.group_rows, self.hidden.height) > GROUP_LIMIT:
            raise ValueError(f"a hidden group (width × group_rows) must have at most {GROUP_LIMIT} cells")
        return self


@dataclass(frozen=True)
class Area:
    name: str
    width: int
    height: int
    offset: int

    @property
    def size(self) -> int:
        return self.width * self.height

    def byte_cell(self, value: int) -> int:
        """Index (within the sheet) of the neuron for byte ``value``."""
        return value % BYTE_SIDE + (value // BYTE_SIDE) * self.width


@dataclass(frozen=True)
class Projection:
    """Synapses from every cell of ``post`` to a field of ``pre``, in taps of delay.

    ``full``: the field is the whole pre sheet, indexed by pre cell (``[post,
    pre y, pre x, tap]``); else a window centred on the post cell
    (:meth:`pre_cell`). ``paired``: two taps, ``first`` and the post group's
    partner lag (``first + (lag - 1) · step``); else ``taps`` taps ``first +
    k · step``.
    """

    name: str
    pre: Area
    post: Area
    field_width: int
    field_height: int
    taps: int
    first: int
    step: int
    full: bool
    paired: bool

    @property
    def synapses(self) -> int:
        return self.post.size * self.field_width * self.field_height * self.taps

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape of ``weights.<name>``."""
        return (self.post.size, self.field_height, self.field_width, self.taps)

    def delays(self, lags: tuple[int, ...]) -> list[int]:
        """Every delay the projection's synapses have (paired: tap 0's, then each partner lag's)."""
        if self.paired:
            return sorted({self.first, *(self.first + (lag - 1) * self.step for lag in lags)})
        return [self.first + k * self.step for k in range(self.taps)]

    def pre_cell(self, post_x: int, post_y: int, fx: int, fy: int) -> tuple[int, int]:
        """The pre-sheet cell that field position (fx, fy) of post cell (post_x, post_y) sees.

        A full field is indexed by pre cell. A window is centred on the post
        cell scaled into the pre sheet and wraps at its edges. The kernels
        compute the same thing; this is the reference.
        """
        if self.full:
            return fx, fy
        cx = post_x * self.pre.width // self.post.width
        cy = post_y * self.pre.height // self.post.height
        return (
            (cx - self.field_width // 2 + fx) % self.pre.width,
            (cy - self.field_height // 2 + fy) % self.pre.height,
        )


def output_delay(sheet: int, ticks: int) -> int:
    """Iterations from hidden sheet ``sheet``'s competition to the next byte-clock tick, where the output decides.

    Sheet i competes ``1 + i`` iterations after a byte is presented, so its
    winners are in time for the first clock tick after that.
    """
    late = (1 + sheet) % ticks
    return ticks - late if late else ticks


class Structure:
    """Areas, projections and winner-take-all groups of one parameter set."""

    def __init__(self, params: AbraxasParams) -> None:
        self.params = params
        hid = params.hidden
        sheets = [("input", params.input.width, params.input.height)]
        sheets += [(f"hidden{i}", hid.width, hid.height) for i in range(hid.depth)]
        sheets += [("output", params.output.width, params.output.height)]
        offset = 0
        self.areas: list[Area] = []
        for name, width, height in sheets:
            self.areas.append(Area(name, width, height, offset))
            offset += width * height
        self.neurons = offset
        self.taps = params.axon_length // params.delay_step
        step, ticks, r = params.delay_step, params.ticks_per_byte, params.dendrite_length
        first, hidden, last = self.areas[0], self.areas[1:-1], self.areas[-1]
        #: Winner-take-all groups per hidden sheet, and the rows of the last (shorter where rows do not divide).
        self.groups_per_sheet = -(-hid.height // hid.group_rows)
        self.groups = self.groups_per_sheet * hid.depth
        self.lags = hid.lags

        def window(pre: Area, post: Area) -> Projection:
            fw, fh = min(2 * r + 1, pre.width), min(2 * r + 1, pre.height)
            return Projection(f"{pre.name}-{post.name}", pre, post, fw, fh, 2, 1, step, False, True)

        def whole(pre: Area, post: Area, taps: int, delay: int, paired: bool) -> Projection:
            return Projection(f"{pre.name}-{post.name}", pre, post, pre.width, pre.height, taps, delay, step, True, paired)

        self.projections: list[Projection] = []
        # The stack: input -> hidden0 -> hidden1 -> ..., a hop of one iteration each.
        for pre, post in pairwise([first, *hidden]):
            self.projections.append(whole(pre, post, 2, 1, True) if pre is first else window(pre, post))
        # Every hidden sheet is read whole by the output sheet, so deepening adds projections and
        # never re-routes an existing one (grow keeps every weight where it was).
        self.projections += [whole(sheet, last, 1, output_delay(i, ticks), False) for i, sheet in enumerate(hidden)]
        # And the output sees the whole input sheet: the bytes themselves, several lags back.
        self.projections.append(whole(first, last, self.taps, step, False))
        self.synapses = sum(p.synapses for p in self.projections)
        #: Slots of the spike-history and current rings: one per iteration of the longest delay, plus now.
        self.ring_slots = max(params.axon_length, ticks) + 1

    def group_lag(self, group: int) -> int:
        """The partner lag of winner-take-all group ``group`` (numbered within its sheet)."""
        return self.lags[group % len(self.lags)]

    def state_arrays(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """The dynamic state a running brain exports beside its weights: name -> (dtype, shape).

        ``state.spikes[n, t % ring_slots]`` is 1 where neuron n fired at
        iteration t; ``state.current[n, slot]`` is input already on its way to
        n (fixed point, see the runtime). The rings' head is
        ``iteration % ring_slots``, so the iteration is the only head to keep.
        ``state.threshold`` is a hidden cell's adaptive threshold (0 elsewhere).
        ``state.surprise`` is the output's log-loss averaged over the last
        ``surprise_fast`` and ``surprise_slow`` bytes (bits), and the bytes
        scored so far, up to ``surprise_slow`` (0, 0, 0 in a fresh brain). ``state.clocked[s]`` is 1 where stage ``s`` (0: the input sheet, s > 0:
        hidden sheet s - 1) fired in the last iteration, so hidden sheet s
        competes in this one. ``io.pending`` (input fed but not yet presented)
        has its own length.
        """
        n, slots = self.neurons, self.ring_slots
        return {
            "state.potential": ("float32", (n,)),
            "state.threshold": ("float32", (n,)),
            "state.spikes": ("uint8", (n, slots)),
            "state.current": ("int32", (n, slots)),
            "state.clocked": ("int32", (self.params.hidden.depth + 1,)),
            "state.iteration": ("int64", (1,)),
            "state.rng_key": ("uint32", (2,)),
            "state.surprise": ("float32", (3,)),
        }

    def check_arrays(self, arrays: Mapping[str, Any], dynamic: bool) -> None:
        """Refuse arrays that are not exactly this brain's: weights always, with ``dynamic`` every state array too."""
        check_arrays(
            arrays,
            structure={f"weights.{p.name}": ("float32", p.shape) for p in self.projections},
            state={**self.state_arrays(), PENDING: ("uint8", None)},
            dynamic=dynamic,
            family="abraxas",
            hint="the file was damaged or edited; restore the agent from a copy, or rebuild it",
        )

    def area(self, name: str) -> Area:
        return next(a for a in self.areas if a.name == name)

    def summary(self) -> dict[str, Any]:
        """What the readable header says about the brain (for people and ``inspect``)."""
        return {
            "neurons": self.neurons,
            "synapses": self.synapses,
            "areas": [{"name": a.name, "width": a.width, "height": a.height, "offset": a.offset} for a in self.areas],
            "groups": self.groups,
            "projections": [
                {
                    "name": p.name,
                    "pre": p.pre.name,
                    "post": p.post.name,
                    "field": [p.field_height, p.field_width],
                    "delays": p.delays(self.lags),
                    "synapses": p.synapses,
                }
                for p in self.projections
            ],
        }
