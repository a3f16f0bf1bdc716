#!/usr/bin/env python3
"""Iterations per second of an abraxas layout on one CPU core, learning from a byte stream.

Usage: ``python families/abraxas/scripts/speed.py [--layout example] [--iterations 200000]``.
Compilation is excluded (one warm-up step); the brain is fed the repeated
sentence the whole time, so spikes, pushes and both learning rules all run.
"""

from __future__ import annotations

import argparse
import time
import uuid

import taichi as ti

from abraxas import Abraxas
from abraxas.streams import SENTENCE, repeated
from hera.instance import FamilyRef, Header, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="example")
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--arch", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    ti.init(arch=getattr(ti, args.arch), cpu_max_num_threads=1, log_level=ti.WARN)
    family = Abraxas()
    params = family.resolve(args.layout)
    header = Header(
        uuid=str(uuid.uuid4()), callsign="speed", family=FamilyRef(name="abraxas", version=family.version),
        layout=args.layout, params=params.model_dump(mode="json"), seed=1, created=now(),
    )
    rt = family.runtime(header, family.build(params, 1).arrays, args.arch)
    rt.feed(repeated(SENTENCE, args.iterations // params.ticks_per_byte + 2))
    rt.step(params.ticks_per_byte * 2)  # compile
    started = time.perf_counter()
    rt.step(args.iterations)
    seconds = time.perf_counter() - started
    print(f"abraxas/{args.layout} on {args.arch}: {args.iterations / seconds:,.0f} iterations/s "
          f"({rt.structure.neurons} neurons, {rt.structure.synapses} synapses), spikes {rt.stats()['spikes']}")


if __name__ == "__main__":
    main()
