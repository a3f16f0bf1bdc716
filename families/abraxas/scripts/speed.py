#!/usr/bin/env python3
"""Iterations per second of an abraxas layout on one CPU core (or a GPU), learning from a byte stream.

Usage: ``python families/abraxas/scripts/speed.py [--layout example] [--iterations 200000] [--arch cpu|cuda] [--set KEY=VALUE]``.
Compilation is excluded (one warm-up step); the brain is fed the repeated
sentence the whole time, so spikes, pushes and both learning rules all run.
Taichi is started by hera's own :func:`hera.kernels.init`, with the options an
agent runs with (no fast math), so the figure is an agent's.
"""

from __future__ import annotations

import argparse
import time
import uuid

from abraxas import Abraxas
from abraxas.streams import SENTENCE, repeated
from hera.devices import pool_bytes
from hera.instance import FamilyRef, Header, now
from hera.kernels import init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="example")
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--arch", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the fused CPU path uses one)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a parameter, as hera build --set")
    args = parser.parse_args()
    family = Abraxas()
    from hera.config import parse_assignment
    from hera.family import deep_merge

    overrides: dict = {}
    for text in args.set:
        overrides = deep_merge(overrides, parse_assignment(text))
    params = family.resolve(args.layout, [("--set", overrides)] if overrides else [])
    # On a GPU, the CUDA pool an agent of this layout would get (Taichi's default 1 GiB is too small for large).
    pool = pool_bytes(family.estimate(params)) if args.arch == "cuda" else None
    init(args.arch, threads=args.threads, device_memory_bytes=pool)
    header = Header(
        uuid=str(uuid.uuid4()), callsign="speed", family=FamilyRef(name="abraxas", version=family.version),
        layout=args.layout, params=params.model_dump(mode="json"), seed=1, created=now(),
    )
    rt = family.runtime(header, family.build(params, 1).arrays, args.arch)
    rt.feed(repeated(SENTENCE, args.iterations // params.ticks_per_byte + 2))
    rt.step(params.ticks_per_byte * 2)  # compile
    started, cpu = time.perf_counter(), time.process_time()
    rt.step(args.iterations)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    # Per CPU second too: on a shared, loaded host it moves far less than the wall-clock rate.
    print(f"abraxas/{args.layout} on {args.arch}: {args.iterations / seconds:,.0f} iterations/s "
          f"({args.iterations / cpu:,.0f} per CPU second; {rt.structure.neurons} neurons, "
          f"{rt.structure.synapses} synapses), spikes {rt.stats()['spikes']}")


if __name__ == "__main__":
    main()
