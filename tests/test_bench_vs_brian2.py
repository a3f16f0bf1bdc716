"""scripts/bench_vs_brian2.py reports what docs/benchmarks.md says it does, on hera's side (no Brian2 needed).

Brian2 lives in a virtual environment of its own and compiles for tens of
seconds per run, so the suite runs hera alone (``--peers`` with nothing): a
tiny STDP network, one repeat. What it checks is what made the comparison
fair: hera's first iteration counts the connectivity build (its parts add up
to it), the float type is stated, and the events are counted from the real
fan-out (the sum over spikes of each spiking neuron's row length, which is not
spikes times the mean fan-out).
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_hera_alone_reports_the_fair_measures(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_vs_brian2.py"), "--peers", "--sizes", "4k", "--stdp", "on",
         "--duration", "0.05", "--repeat", "1", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["floats"] == {"hera": "float32"}
    (row,) = report["rows"]
    hera = row["results"]["hera"]
    assert "error" not in hera, hera
    parts = hera["parts"]
    assert set(parts) == {"build_s", "init_upload_s", "compile_first_step_s"}
    assert parts["build_s"] > 0
    assert abs(sum(parts.values()) - hera["first_iteration_s"]) < 1e-6
    spikes = hera["rate_hz"] * row["neurons"] * row["duration_s"]
    assert spikes > 0
    # the fan-out is Binomial(4000, 0.02) per neuron: counted, the total is not exactly 80 per spike
    assert hera["events"] != round(spikes * 80)
    assert 60 * spikes < hera["events"] < 100 * spikes
    assert hera["weights"]["mean_mv"] > 0
