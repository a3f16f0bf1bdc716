"""A long fuzz run of the instance loader, the settings and the control protocol.

The suite runs the same hypothesis targets (tests/test_reliability_inputs.py)
with 600 fixed examples each, so that CI stays short. This runs them with
many more, from a seed it prints (so a failure can be replayed with
``--seed``), in a child process held under a memory ceiling (an input that
makes the loader allocate what a header claims fails with MemoryError, which
the targets count as a defect) and a time limit (a hang fails the run).
The live-agent target is left out: an agent process would inherit the
ceiling.

    python scripts/fuzz.py --examples 6000            # ≈ 10× the suite's count
    python scripts/fuzz.py --examples 6000 --seed 1234 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = "tests/test_reliability_inputs.py"


def _ceiling(limit_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=6000, help="examples per target (the suite runs 600)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a fresh seed, printed)")
    parser.add_argument("--memory-gib", type=float, default=3.0, help="address-space ceiling of the fuzzing process")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before the run counts as hung")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    figures = Path(tempfile.mkdtemp()) / "figures.json"
    env = {
        **os.environ,
        "HERA_FUZZ_EXAMPLES": str(args.examples),
        "HERA_FUZZ_SEED": str(seed),
        "HERA_RELIABILITY_FIGURES": str(figures),
    }
    command = [sys.executable, "-m", "pytest", TARGETS, "-q", "-k", "not live_agent", "-p", "no:cacheprovider"]
    limit = int(args.memory_gib * (1 << 30))
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout,
            preexec_fn=lambda: _ceiling(limit),
        )
        rc, output, hung = done.returncode, done.stdout + done.stderr, False
    except subprocess.TimeoutExpired as exc:
        rc, output, hung = -1, str(exc.stdout or "") + str(exc.stderr or ""), True
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    counts = json.loads(figures.read_text()) if figures.exists() else {}
    summary = {
        "seed": seed,
        "examples_per_target": args.examples,
        "inputs": {name: figure.get("inputs", 0) for name, figure in counts.items()},
        "total_inputs": sum(figure.get("inputs", 0) for figure in counts.values()),
        "memory_ceiling_gib": args.memory_gib,
        "peak_rss_mib": round(peak / (1 << 20), 1),
        "wall_s": round(wall, 1),
        "hung": hung,
        "passed": rc == 0,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:>20}: {value}")
    if rc != 0:  # the failures, each line cut short: a falsifying example may be nested 60,000 deep
        tail = output[output.rfind("short test summary info"):] if "short test summary info" in output else output[-4000:]
        sys.stderr.write("\n".join(line[:300] for line in tail.splitlines()) + "\n")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
