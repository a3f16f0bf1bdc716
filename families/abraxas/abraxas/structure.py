"""The shape of an abraxas brain: its sheets, their projections, and their sizes.

Pure arithmetic (no numpy), shared by build, estimate, the runtime and grow,
so all agree on where every neuron and weight lives.

* Areas are sheets of ``width × height`` neurons, laid out one after another in
  a single neuron index space: input, hidden[0..depth-1], output.
* A projection gives each neuron of its post sheet a receptive field in its pre
  sheet: a window of ``(2r+1) × (2r+1)`` cells centred on the neuron's position
  scaled into the pre sheet, wrapping at the edges (so every neuron has the
  same field), ``r = dendrite_length``, capped at the pre sheet's size. The
  input-to-output projection sees the whole input sheet.
* Every (pre, post) pair has ``taps`` synapses with delays ``delay_step``,
  ``2·delay_step``, … up to ``axon_length`` iterations, so a neuron hears the
  same presynaptic cell several bytes into the past.
* Weights are stored per projection as ``[post, field_height, field_width, taps]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from hera.family import Params

BYTE_VALUES = 256


class Sheet(Params):
    width: int = Field(16, ge=1, le=65536)
    height: int = Field(16, ge=1, le=65536)

    @property
    def size(self) -> int:
        return self.width * self.height


class HiddenSheets(Sheet):
    width: int = Field(32, ge=1, le=65536)
    height: int = Field(32, ge=1, le=65536)
    depth: int = Field(1, ge=0, le=64, description="number of hidden sheets stacked in depth")


class AbraxasParams(Params):
    input: Sheet = Sheet()
    hidden: HiddenSheets = HiddenSheets()
    output: Sheet = Sheet()
    dendrite_length: int = Field(2, ge=0, le=64, description="receptive field radius, in cells")
    axon_length: int = Field(16, ge=1, le=1024, description="longest synaptic delay, in iterations")
    delay_step: int = Field(4, ge=1, le=1024, description="iterations between delay taps")
    ticks_per_byte: int = Field(4, ge=1, le=1024, description="iterations each input byte is presented")

    @model_validator(mode="after")
    def _fits_bytes(self) -> AbraxasParams:
        for name in ("input", "output"):
            if getattr(self, name).size < BYTE_VALUES:
                raise ValueError(f"{name} needs at least {BYTE_VALUES} neurons (one per byte value)")
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
        for pre, post in zip(self.areas, self.areas[1:]):
            fw, fh = min(2 * r + 1, pre.width), min(2 * r + 1, pre.height)
            self.projections.append(Projection(f"{pre.name}-{post.name}", pre, post, fw, fh, taps, params.delay_step))
        if params.hidden.depth:
            first, last = self.areas[0], self.areas[-1]
            self.projections.append(
                Projection("input-output", first, last, first.width, first.height, taps, params.delay_step)
            )
        self.synapses = sum(p.synapses for p in self.projections)

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
