"""The per-iteration parallel path (what GPUs run) computes exactly what the fused CPU path does."""

from __future__ import annotations

from abraxas import Abraxas
from abraxas.streams import SENTENCE, repeated
from conftest import header_for, params_for


def test_parallel_phases_match_the_fused_loop_bit_for_bit(taichi: None) -> None:
    family = Abraxas()
    params = params_for()
    runs = []
    for arch in ("cpu", "cuda"):  # "cuda" only selects the per-iteration path; Taichi itself runs on the CPU here
        rt = family.runtime(header_for(params), family.build(params, 7).arrays, arch)
        assert rt.fused == (arch == "cpu")
        rt.feed(repeated(SENTENCE, 300))
        result = rt.step(1000)
        rt.step(203, ["area:output"])
        runs.append((result, rt.iteration, rt.export_state(), rt.take_decisions()))
    (_, it_a, a, log_a), (_, it_b, b, log_b) = runs
    assert it_a == it_b
    assert (log_a == log_b).all()
    assert all(a[name].tobytes() == b[name].tobytes() for name in a), [n for n in a if a[n].tobytes() != b[n].tobytes()]
