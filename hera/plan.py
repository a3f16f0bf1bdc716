"""The loading plan of an up: what the agent needs, what the device has, whether it fits.

Computed from the header and the family's estimate alone (no arrays, no
Taichi), so ``up`` refuses an impossible agent before any kernel starts and
``--simulate`` can show the whole plan touching no device.

On a GPU the agent needs its brain's memory (the estimate plus headroom,
:func:`hera.devices.pool_bytes`) and its CUDA context. Several agents share a
GPU by this accounting: NVML's free memory no longer holds the memory of the
agents running there, and :func:`sharing` counts in full the memory of those
still coming up (until their brain is loaded), so two ``up`` at once cannot
both count the same free memory. Counted in full because where it is taken
depends on the GPU: Taichi 1.7 preallocates ``device_memory_GB`` as it starts
only on GPUs without CUDA memory pools; on those with them (every current
one) it allocates each dense field as the brain is built, during ``load``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hera.devices import Device, fits, need_bytes, pool_bytes
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
    #: Device memory that agents up on the same GPU will take but NVML does not count yet (see :func:`sharing`).
    pending_bytes: int = 0
    alternatives: list[str] = field(default_factory=list)

    def report(self) -> list[str]:
        need_dev = human_bytes(self.estimate.device_bytes)
        if self.device.kind == "cuda":
            need_dev = (
                f"{human_bytes(need_bytes(self.estimate, self.device))} on the GPU (a Taichi pool of "
                f"{human_bytes(pool_bytes(self.estimate))} for {need_dev} of state, and the CUDA context)"
            )
        else:
            need_dev += " on the device"
        pending = f", {human_bytes(self.pending_bytes)} of it promised to agents still starting" if self.pending_bytes else ""
        lines = [
            f"agent     {self.header.callsign} {self.header.uuid} ({self.header.family.name}/{self.header.layout})",
            f"device    {self.device.id} ({self.device.name})",
            f"brain     {self.estimate.neurons:,} neurons, {self.estimate.synapses:,} synapses, iteration {self.header.iteration}",
            f"needs     {need_dev}, {human_bytes(self.estimate.host_bytes)} host memory",
            f"free      {human_bytes(self.device.free_bytes)} on {self.device.id}{pending}"
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
    pending_bytes: int = 0,
) -> Plan:
    params = validated_params(header, family, source)
    estimate = family.estimate(params)
    plan = Plan(header, device, estimate, cache_bytes, others, pending_bytes=pending_bytes)
    plan.fits = fits(estimate, device, host, pending_bytes)
    if plan.fits is False:
        for name in family.layouts:
            try:
                if fits(family.estimate(family.resolve(name)), device, host, pending_bytes):
                    plan.alternatives.append(f"{family.name}/{name}")
            except Exception:  # a layout that does not resolve is simply not suggested
                continue
    return plan


@dataclass(frozen=True)
class Sharing:
    """The other agents up on a device, and the GPU memory those still starting will take."""

    names: list[str]
    pending_bytes: int = 0




def sharing(installed: Iterable[tuple[Any, Any]], uuid: str, device: Device, workdir: Path) -> Sharing:
    """Who else is up on ``device`` (their status says where they run; else their header), and what they still take.

    ``installed``: (store, agent) pairs as :func:`hera.commands.target.installed`
    lists them. An agent counts as pending while its status is missing, an
    earlier run's, or still before Taichi's start; its pool is then reckoned
    from its family's estimate (an agent whose family cannot say is not counted).
    """
    from hera.cache.paths import RuntimeFiles
    from hera.manager.files import LiveStatus

    names: list[str] = []
    pending = 0
    for store, agent in installed:
        if agent.uuid == uuid or agent.header is None:
            continue
        live = store.liveness(agent.uuid)
        if not live.up:
            continue
        status = LiveStatus.read(RuntimeFiles(store.runtime_dir, agent.uuid).status) if store.runtime_dir else None
        current = status is not None and status.pid == live.pid
        where = status.device if status is not None and current else agent.header.device
        if where != device.id:
            continue
        names.append(agent.callsign)
        starting = not current or (status is not None and status.state == "loading")
        if device.kind == "cuda" and starting:
            pending += _pool_of(agent.header, workdir)
    return Sharing(names, pending)


def _pool_of(header: Header, workdir: Path) -> int:
    """The Taichi pool (and CUDA context) an agent on a GPU will take; 0 where its family cannot say."""
    from hera.family import get

    try:
        family = get(header.family.name, workdir)
        return need_bytes(family.estimate(family.params_model.model_validate(header.params)), Device(id="cuda", kind="cuda", name=""))
    except Exception:  # a family gone or changed: that agent's own up answered for it
        return 0
