"""The loading plan of an up: what the agent needs, what the device has, whether it fits.

Computed from the header and the family's estimate alone (no arrays, no
Taichi), so ``up`` refuses an impossible agent before any kernel starts and
``--simulate`` can show the whole plan touching no device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from hera.devices import Device, fits
from hera.errors import HeraError
from hera.family import Family, Params, ResourceEstimate
from hera.instance import Header
from hera.instance.scanner import label
from hera.table import human_bytes


@dataclass
class Plan:
    header: Header
    device: Device
    estimate: ResourceEstimate
    cache_bytes: int
    others: list[str] = field(default_factory=list)  # other up agents on the same device
    fits: bool | None = None
    alternatives: list[str] = field(default_factory=list)

    def report(self) -> list[str]:
        need_dev = human_bytes(self.estimate.device_bytes)
        lines = [
            f"agent     {self.header.callsign} {self.header.uuid} ({self.header.family.name}/{self.header.layout})",
            f"device    {self.device.id} ({self.device.name})",
            f"brain     {self.estimate.neurons:,} neurons, {self.estimate.synapses:,} synapses, iteration {self.header.iteration}",
            f"needs     {need_dev} on the device, {human_bytes(self.estimate.host_bytes)} host memory",
            f"free      {human_bytes(self.device.free_bytes)} on {self.device.id}"
            + (f" (with {len(self.others)} other agent(s) up there: {', '.join(self.others)})" if self.others else ""),
            f"loads     {human_bytes(self.cache_bytes)} from the cache"
            + ("" if self.header.dynamic else " (fresh: no dynamic state, starts at iteration 0)"),
        ]
        verdict = {True: "fits", False: "does NOT fit", None: "unknown (free memory not reported)"}[self.fits]
        lines.append(f"verdict   {verdict}")
        if self.fits is False:
            lines.append(
                "would fit " + (", ".join(self.alternatives) if self.alternatives else "no layout of this family")
            )
        return lines


def validated_params(header: Header, family: Family, source: Path | str | None = None) -> Params:
    """The header's parameters as its family reads them, or one line naming the file and the field.

    ``build`` makes parameters through the family, but a file can come from
    anywhere: ``install`` checks them the same way before the file enters
    the cache, and ``up`` again before it plans (a family may have changed
    since). ``source`` names the file; without it, the agent.
    """
    where = source if source is not None else f"agent {header.callsign} ({header.uuid[:8]})"
    try:
        return family.params_model.model_validate(header.params)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(label(str(part), 60) for part in ("header", "params", *first["loc"]))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise HeraError(
            f"{where}: {field}: {first['msg']}{more}",
            hint=f"these parameters are not valid for family {family.name} {family.version}; rebuild the instance",
        ) from None
    except (RecursionError, ValueError, TypeError) as exc:  # a family's own validator that raised oddly
        raise HeraError(f"{where}: header.params: {type(exc).__name__}: {str(exc)[:200]}") from None


def make(
    header: Header,
    family: Family,
    device: Device,
    cache_bytes: int,
    others: list[str],
    host: Device | None,
    source: Path | str | None = None,
) -> Plan:
    params = validated_params(header, family, source)
    estimate = family.estimate(params)
    plan = Plan(header, device, estimate, cache_bytes, others)
    plan.fits = fits(estimate, device, host)
    if plan.fits is False:
        for name in family.layouts:
            try:
                if fits(family.estimate(family.resolve(name)), device, host):
                    plan.alternatives.append(f"{family.name}/{name}")
            except Exception:  # a layout that does not resolve is simply not suggested
                continue
    return plan
