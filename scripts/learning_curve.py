#!/usr/bin/env python3
"""abraxas learns while it runs: does its depth matter? Online next-byte prediction against count models and ablations.

Usage::

    python scripts/learning_curve.py [--layout example] [--streams sentence,latin2,...] [--length N]
        [--brains abraxas,depth=0,hidden_rate=0] [--set KEY=VALUE ...] [--seed N] [--arch cpu|cuda]
        [--out PNG | --no-png] [--json [PATH]]

Each stream is fed, one byte every ``ticks_per_byte`` iterations, to a fresh
(zero-weight) brain of the layout, whose output sheet predicts every byte
before it arrives, and to two ablations of the same layout: ``depth=0`` (no
hidden sheet: the direct ``input → output`` path alone) and ``hidden_rate=0``
(the hidden sheets there but never learning). Streams (scripts/learning_sources.py
says what each is built to show):

* ``sentence``: ``the quick brown fox jumps over the lazy dog. `` repeated.
  Mid-stream the full brain is downed (its state written to an instance
  file) and upped from that file; a twin that never stopped runs beside it,
  and the two must predict alike, give the same log-loss and end in the same
  state (exit status 1 if not).
* ``high_order``: sequences whose last byte depends on the byte three back;
  halfway the source switches to new sequences of the same kind.
* ``latin2``: a noisy order-2 Markov source (a conjunction of the two bytes before).
* ``lag_pair``: a decisive byte fixed by a byte 6, 7 or 8 back combined with the byte one back.
* ``prose``: a paragraph of public-domain prose repeated.

Figures, for every brain and for the online count models of order 1…8 on the
same bytes (one implementation, scripts/learning_sources.py):

* ``accuracy``: top-1 accuracy over the last quarter of the stream (of its
  first source, where it switches);
* ``bits_per_byte``: log-loss over the same bytes, ``-log2 p(actual byte)``
  averaged; the brain's from its decision log (the output sheet's softmax),
  the count models' from additive smoothing; ``None`` ("n/a") where the
  decision log has no such column;
* ``bytes_to_90``: bytes until the trailing accuracy over ``SPAN`` bytes
  first reaches 90 % of ``accuracy``; where the source switches, also
  ``regain_bytes`` (the same, from the switch, towards the same level) and
  ``accuracy_after_switch`` (the last quarter after it);
* ``lag_pair`` also ``decisive_accuracy`` (the decisive bytes of the last
  quarter) and ``decisive_by_distance``.

The JSON also has ``speed`` (per stream and brain, the iterations stepped
and their rate per wall-clock and per CPU second: the stepping alone, not
the build, the load, or the first 64 bytes, whose launches compile) and
``targets`` (issue 11's, each with what was measured and whether it was
met). scripts/learning_report.py turns the scores into these figures, the
table and the PNG.

Prints the Markdown table and the targets (``--json`` prints the JSON
instead; ``--json PATH`` writes it to PATH beside the table). The PNG shows
rolling accuracy (for ``lag_pair``, on its decisive bytes) and, where the
brains give it, rolling log-loss. Taichi is started as an agent starts it
(``hera.kernels.init``), on one CPU thread (``--arch cuda``: on a GPU).
``--length 1000`` makes a quick run. Needs matplotlib for the PNG
(``--no-png`` skips it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning_report import SPAN, Refused, Scored, Stream, figures, plot, table, targets  # noqa: E402  (siblings: the line above)
from learning_sources import ALPHA, ORDERS, count_models, lag_pair, prose  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: Bytes presented before the speed is timed (the first launches compile the kernels).
WARM_BYTES = 64
#: The brains: the layout as given, and its ablations (as ``hera build --set`` takes them).
BRAINS: dict[str, tuple[str, ...]] = {
    "abraxas": (),
    "depth=0": ("hidden.depth=0",),
    "hidden_rate=0": ("plasticity.hidden_rate=0",),
}
STREAMS = ("sentence", "high_order", "latin2", "lag_pair", "prose")
#: Default bytes per stream (``high_order``: per source, before and after its switch).
LENGTHS = {"sentence": 2700, "high_order": 3000, "latin2": 8000, "lag_pair": 16000, "prose": 6000}
NO_LOG_LOSS = "n/a: the decision log has no log2 p(actual) column (this kernel gives no output distribution)"


def make_stream(name: str, length: int | None, seed: int) -> Stream:
    from abraxas.streams import SENTENCE, SWITCHED_SEQUENCES, high_order, latin_order2, repeated

    size = length or LENGTHS[name]
    if name == "sentence":
        data = repeated(SENTENCE, size)
        return Stream(name, data, len(data), {"down/up": size // 2 + 7})
    if name == "high_order":
        before = high_order(size, seed=seed + 1)
        after = high_order(size, seed=seed + 2, sequences=SWITCHED_SEQUENCES)
        return Stream(name, before + after, size, {"switch": size})
    if name == "latin2":
        return Stream(name, latin_order2(size, seed=seed), size)
    if name == "lag_pair":
        made = lag_pair(size, seed=seed)
        return Stream(name, made.data, size, decisive=made.decisive, distance=made.distance)
    if name == "prose":
        return Stream(name, prose(size), size)
    raise Refused(f"no stream {name!r}; choose from {', '.join(STREAMS)}")


# -- the brains --------------------------------------------------------------------------------------


def init_taichi(arch: str) -> None:
    """Taichi as an agent starts it (hera's offline cache, no fast math); on a CPU, one thread."""
    from hera.errors import HeraError
    from hera.kernels import init

    try:
        init(arch, threads=1 if arch == "cpu" else None)
    except HeraError as error:  # no CUDA GPU here
        raise Refused(f"--arch {arch}: {error.message}" + ("; use --arch cpu" if arch != "cpu" else "")) from None


def resolve(layout: str, assignments: tuple[str, ...]) -> Any:
    """The layout's parameters with ``--set`` assignments applied, as ``hera build --set`` applies them."""
    from abraxas import Abraxas
    from hera.config import parse_assignment
    from hera.errors import HeraError

    try:
        return Abraxas().resolve(layout, [(f"--set {text}", parse_assignment(text)) for text in assignments])
    except HeraError as error:
        raise Refused(error.line()) from None


def new_agent(params: Any, layout: str, seed: int, arch: str) -> tuple[Any, Any]:
    """A freshly built instance's header and its runtime (as ``hera up`` of a new file would make)."""
    from abraxas import Abraxas

    family = Abraxas()
    built = family.build(params, seed)
    header = family.new_header(layout, params, seed, callsign="learning-curve", summary=built.summary)
    return header, family.runtime(header, built.arrays, arch)


def down_and_up(header: Any, rt: Any, folder: Path, arch: str) -> Any:
    """Export the whole state to an instance file, and load a new runtime from it."""
    from abraxas import Abraxas
    from hera import instance
    from hera.runtime import dynamic_header

    path = folder / f"{header.uuid}.json"
    instance.save(path, dynamic_header(header, rt), rt.export_state())
    loaded = instance.load(path)
    return Abraxas().runtime(loaded.header, loaded.arrays, arch)


def present(rt: Any, data: bytes) -> Scored:
    """Feed ``data`` and run until all of it was presented; per byte, the hit and (if logged) log2 p."""
    rt.feed(data)
    ticks = rt.params.ticks_per_byte
    # Untimed first bytes: Taichi compiles a kernel at its first launch. Two steps run exactly what one would.
    warm = min(len(data), WARM_BYTES)
    rt.step(warm * ticks)
    wall, cpu = time.perf_counter(), time.process_time()
    ran = rt.step((len(data) - warm) * ticks).iterations
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    log = rt.take_decisions()
    log = log[log[:, 2] >= 0]
    if bytes(log[:, 2].astype(np.uint8)) != data:
        raise RuntimeError("the agent skipped or reordered input")
    log2p = np.asarray(log[:, 3], np.float64) if log.shape[1] > 3 else None
    return Scored(log[:, 1] == log[:, 2], log2p, ran, wall, cpu)


def joined(parts: list[Scored]) -> Scored:
    logs = [p.log2p for p in parts]
    return Scored(
        np.concatenate([p.hits for p in parts]),
        None if any(x is None for x in logs) else np.concatenate(logs),  # type: ignore[arg-type]
        sum(p.iterations for p in parts),
        sum(p.wall_s for p in parts),
        sum(p.cpu_s for p in parts),
    )


def run_brain(
    stream: Stream, params: Any, args: argparse.Namespace, twin: bool
) -> tuple[Scored, bool | None]:
    """The brain's score on the stream; with ``twin``, downed and upped mid-stream beside a twin that is not."""
    layout, seed, arch = args.layout, args.seed, args.arch
    header, rt = new_agent(params, layout, seed, arch)
    if not twin:
        return present(rt, stream.data), None
    half = stream.marks["down/up"]
    _, other = new_agent(params, layout, seed, arch)
    with tempfile.TemporaryDirectory() as folder:
        first = present(rt, stream.data[:half])
        rt = down_and_up(header, rt, Path(folder), arch)
    scored = joined([first, present(rt, stream.data[half:])])
    straight = present(other, stream.data)
    same_logs = (scored.log2p is None and straight.log2p is None) or (
        scored.log2p is not None and straight.log2p is not None and np.array_equal(scored.log2p, straight.log2p)
    )
    mine, theirs = rt.export_state(), other.export_state()
    identical = (
        np.array_equal(scored.hits, straight.hits)
        and same_logs
        and mine.keys() == theirs.keys()
        and all(np.array_equal(mine[k], theirs[k]) for k in mine)
    )
    return scored, identical


# -- the figures --------------------------------------------------------------------------------------


def machine(arch: str) -> str:
    from hera.devices import cpu

    host = cpu()
    if arch == "cpu":
        return f"{host.name}, {host.cores} cores (1 Taichi thread), Python {platform.python_version()}"
    from hera.devices import gpus

    names = ", ".join(g.name for g in gpus()) or "a CUDA GPU"
    return f"{names} (host {host.name}, {host.cores} cores), Python {platform.python_version()}"


def kernel_state() -> dict[str, Any]:
    """Which abraxas measured: its version, and the tree's commit (and whether the tree had changes)."""
    import abraxas

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    package = Path(abraxas.__file__).resolve().parent.parent
    if not package.is_relative_to(ROOT):  # PYTHONPATH pointed the run at another copy of the family
        return {"abraxas_version": abraxas.__version__, "imported_from": str(package)}
    return {
        "abraxas_version": abraxas.__version__,
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "uncommitted_changes": bool(git("status", "--porcelain", "--", str(package))),
    }


def benchmark(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, Scored]], list[Stream]]:
    brains = {name: resolve(args.layout, (*args.set, *BRAINS[name])) for name in args.brains}
    streams = [make_stream(name, args.length, args.seed) for name in args.streams]
    init_taichi(args.arch)
    report: dict[str, Any] = {
        "layout": args.layout,
        "arch": args.arch,
        "seed": args.seed,
        "set": list(args.set),
        "brains": {name: list(BRAINS[name]) for name in args.brains},
        "count_models": f"online, orders {ORDERS[0]}-{ORDERS[-1]}; log-loss by additive smoothing, alpha {ALPHA}",
        "quarter": "accuracy and bits_per_byte over the last quarter of the stream (before a switch)",
        "span_bytes": SPAN,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(args.arch),
        "kernel": kernel_state(),
        "streams": {},
        "seconds": {},
        "speed": {},
    }
    scores: dict[str, dict[str, Scored]] = {}
    with_log_loss = True
    for stream in streams:
        entry: dict[str, Any] = {"bytes": len(stream.data), "marks": stream.marks, "columns": {}}
        scores[stream.name] = {}
        for name, params in brains.items():
            started = time.perf_counter()
            twin = stream.name == "sentence" and name == "abraxas"
            scored, identical = run_brain(stream, params, args, twin)
            report["seconds"][f"{stream.name}/{name}"] = round(time.perf_counter() - started, 1)
            report["speed"][f"{stream.name}/{name}"] = {
                "iterations": scored.iterations,
                "per_second": round(scored.iterations / scored.wall_s) if scored.wall_s else None,
                "per_cpu_second": round(scored.iterations / scored.cpu_s) if scored.cpu_s else None,
            }
            if identical is not None:
                entry["down_up_curve_identical"] = identical
            with_log_loss = with_log_loss and scored.log2p is not None
            scores[stream.name][name] = scored
            entry["columns"][name] = figures(stream, scored)
        for order, model in count_models(stream.data).items():
            scored = Scored(model.hits, model.log2p)
            scores[stream.name][f"order-{order}"] = scored
            entry["columns"][f"order-{order}"] = figures(stream, scored)
        report["streams"][stream.name] = entry
    report["targets"] = targets(report)
    report["log_loss"] = "from the decision log: log2 p(actual byte), the output sheet's softmax" if with_log_loss else NO_LOG_LOSS
    return report, scores, streams


def listed(text: str, choices: tuple[str, ...], what: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"no {what} {', '.join(unknown) or repr(text)}; choose from {', '.join(choices)}")
    return names


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--layout", default="example")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--arch", choices=("cpu", "cuda"), default="cpu", help="where the brains run (cpu: one thread)")
    parser.add_argument(
        "--streams", type=lambda t: listed(t, STREAMS, "stream"), default=list(STREAMS), help=",".join(STREAMS)
    )
    parser.add_argument(
        "--brains", type=lambda t: listed(t, tuple(BRAINS), "brain"), default=list(BRAINS), help=",".join(BRAINS)
    )
    parser.add_argument(
        "--length", type=int, help="bytes of every stream (high_order: per source); default: " + ", ".join(
            f"{k} {v}" for k, v in LENGTHS.items()
        ),
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as hera build --set")
    parser.add_argument("--out", type=Path, default=Path("learning_curve.png"), help="the PNG")
    parser.add_argument("--no-png", action="store_true")
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="the figures as JSON: to stdout instead of the table, or to PATH"
    )
    args = parser.parse_args(argv)
    if args.length is not None and args.length < 2 * SPAN:
        parser.error(f"--length must be at least {2 * SPAN} bytes (twice the {SPAN}-byte window of bytes to 90 %)")
    args.set = tuple(args.set)
    return args


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Taichi prints its banner to stdout (from C++ too): keep stdout for the table or the JSON alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    try:
        with stdout_to_stderr():
            report, scores, streams = benchmark(args)
        report["seconds"]["total"] = round(time.perf_counter() - started, 1)
        if not args.no_png:
            plot(report, scores, streams, args.out)
            report["png"] = str(args.out)
    except Refused as refused:
        print(f"learning_curve.py: {refused}", file=sys.stderr)
        return 2
    if args.json and args.json != "-":
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.json == "-":
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
        print(f"\n{report['log_loss']}; count models: {report['count_models']}\n")
        for target in report["targets"]:
            print(f"- {'met' if target['met'] else 'MISSED'}: {target['target']} ({target['measured']})")
        if "sentence" in report["streams"] and "abraxas" in args.brains:
            print(f"down/up mid-stream, curve identical to a twin's: {report['streams']['sentence']['down_up_curve_identical']}")
    identical = report["streams"].get("sentence", {}).get("down_up_curve_identical", True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
