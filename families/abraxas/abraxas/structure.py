"""The shape of an abraxas brain: its sheets, their projections, and their sizes.

Pure arithmetic (no numpy), shared by build, estimate, the runtime and grow,
so all agree on where every neuron and weight lives.

* Areas are sheets of ``width × height`` neurons, laid out one after another in
  a single neuron index space: input, hidden[0..depth-1], output.
* Projections: input → hidden0 → hidden1 → …; every hidden sheet → output;
  input → output. A projection gives each neuron of its post sheet a receptive field in its pre
  sheet: a window of ``(2r+1) × (2r+1)`` cells centred on the neuron's position
  scaled into the pre sheet, wrapping at the edges (so every neuron has the
  same field), ``r = dendrite_length``, capped at the pre sheet's size. The
  input-to-output projection sees the whole input sheet.
* Every (pre, post) pair has ``taps`` synapses with delays ``delay_step``,
  ``2·delay_step``, … up to ``axon_length`` iterations, so a neuron hears the
  same presynaptic cell several bytes into the past.
* Weights are stored per projection as ``[post, field_height, field_width, taps]``.
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


class Neuron(Strict):
    """Leaky integrate-and-fire dynamics shared by the hidden and output sheets."""

    leak: float = Field(0.5, gt=0, lt=1, description="fraction of the membrane potential kept each iteration")
    threshold: float = Field(1.0, gt=0, description="firing threshold (hidden: plus its adaptive part)")
    refractory: int = Field(2, ge=0, le=1000, description="iterations a hidden neuron stays silent after a spike")
    noise: float = Field(0.35, ge=0, description="standard deviation of the noise current per iteration")


class Plasticity(Strict):
    """The two learning rules: surprise-gated onto the output sheet, competitive in the hidden sheets."""

    rate: float = Field(0.25, ge=0, description="output rule: weight change per eligible synapse")
    margin: float = Field(0.5, ge=0, description="output rule: how far past the threshold counts as confident")
    hidden_rate: float = Field(0.05, ge=0, le=1, description="hidden rule: step of the weights towards the input")
    adaptation: float = Field(0.05, ge=0, description="hidden threshold rise per spike")
    adaptation_decay: float = Field(0.999, gt=0, le=1, description="fraction of the threshold rise kept per iteration")
    weight_limit: float = Field(8.0, gt=0, le=1000, description="weights are clipped to ±weight_limit")


class AbraxasParams(Strict):
    input: Sheet = Sheet()
    hidden: HiddenSheets = HiddenSheets()
    output: Sheet = Sheet()
    dendrite_length: int = Field(2, ge=0, le=64, description="receptive field radius, in cells")
    axon_length: int = Field(16, ge=1, le=1024, description="longest synaptic delay, in iterations")
    delay_step: int = Field(4, ge=1, le=1024, description="iterations between delay taps")
    ticks_per_byte: int = Field(4, ge=1, le=1024, description="iterations each input byte is presented")
    neuron: Neuron = Neuron()
    plasticity: Plasticity = Plasticity()

    @model_validator(mode="after")
    def _fits_bytes(self) -> AbraxasParams:
        for name in ("input", "output"):
            sheet = getattr(self, name)
            if sheet.width < BYTE_SIDE or sheet.height < BYTE_SIDE:
                raise ValueError(f"{name} must be at least {BYTE_SIDE}×{BYTE_SIDE} (one neuron per byte value)")
        if self.axon_length < self.delay_step:
            raise ValueError("axon_length must be at least delay_step")
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
    name: str
    pre: Area
    post: Area
    field_width: int
    field_height: int
    taps: int
    delay_step: int

    @property
    def synapses(self) -> int:
        return self.post.size * self.field_width * self.field_height * self.taps

    @property
    def delays(self) -> list[int]:
        return [self.delay_step * (k + 1) for k in range(self.taps)]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape of ``weights.<name>``."""
        return (self.post.size, self.field_height, self.field_width, self.taps)

    def pre_cell(self, post_x: int, post_y: int, fx: int, fy: int) -> tuple[int, int]:
        """The pre-sheet cell that field position (fx, fy) of post cell (post_x, post_y) sees.

        The field is centred on the post cell scaled into the pre sheet and wraps
        at its edges. The kernels compute the same thing; this is the reference.
        """
        cx = post_x * self.pre.width // self.post.width
        cy = post_y * self.pre.height // self.post.height
        return (
            (cx - self.field_width // 2 + fx) % self.pre.width,
            (cy - self.field_height // 2 + fy) % self.pre.height,
        )


class Structure:
    """Areas and projections of one parameter set."""

    def __init__(self, params: AbraxasParams) -> None:
        self.params = params
        sheets = [("input", params.input.width, params.input.height)]
        sheets += [(f"hidden{i}", params.hidden.width, params.hidden.height) for i in range(params.hidden.depth)]
        sheets += [("output", params.output.width, params.output.height)]
        offset = 0
        self.areas: list[Area] = []
        for name, width, height in sheets:
            self.areas.append(Area(name, width, height, offset))
            offset += width * height
        self.neurons = offset
        taps = params.axon_length // params.delay_step
        r = params.dendrite_length
        self.projections: list[Projection] = []
        first, hidden, last = self.areas[0], self.areas[1:-1], self.areas[-1]

        def local(pre: Area, post: Area) -> Projection:
            fw, fh = min(2 * r + 1, pre.width), min(2 * r + 1, pre.height)
            return Projection(f"{pre.name}-{post.name}", pre, post, fw, fh, taps, params.delay_step)

        # The stack: input -> hidden0 -> hidden1 -> ..., each sheet seeing a field of the one below.
        for pre, post in pairwise([first, *hidden]):
            self.projections.append(local(pre, post))
        # Every hidden sheet is read by the output sheet, so deepening adds projections and
        # never re-routes an existing one (grow keeps every weight where it was).
        self.projections += [local(sheet, last) for sheet in hidden]
        # And the output sees the whole input sheet: the bytes themselves, several lags back.
        self.projections.append(
            Projection("input-output", first, last, first.width, first.height, taps, params.delay_step)
        )
        self.synapses = sum(p.synapses for p in self.projections)
        #: Slots of the spike-history and current rings: one per iteration of the longest delay, plus now.
        self.ring_slots = params.axon_length + 1

    def state_arrays(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """The dynamic state a running brain exports beside its weights: name -> (dtype, shape).

        ``state.spikes[n, t % ring_slots]`` is 1 where neuron n fired at
        iteration t; ``state.current[n, slot]`` is input already on its way to
        n (fixed point, see the runtime). The rings' head is
        ``iteration % ring_slots``, so the iteration is the only head to keep.
        ``io.pending`` (input fed but not yet presented) has its own length.
        """
        n, slots = self.neurons, self.ring_slots
        return {
            "state.potential": ("float32", (n,)),
            "state.threshold": ("float32", (n,)),
            "state.refractory": ("int32", (n,)),
            "state.spikes": ("uint8", (n, slots)),
            "state.current": ("int32", (n, slots)),
            "state.iteration": ("int64", (1,)),
            "state.rng_key": ("uint32", (2,)),
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
            "projections": [
                {
                    "name": p.name,
                    "pre": p.pre.name,
                    "post": p.post.name,
                    "field": [p.field_height, p.field_width],
                    "delays": p.delays,
                    "synapses": p.synapses,
                }
                for p in self.projections
            ],
        }
