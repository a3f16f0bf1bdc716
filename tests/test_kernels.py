"""hera.kernels: the counter-based generator, connectivity, delayed delivery, neuron and plasticity blocks, I/O."""

# no "from __future__ import annotations": Taichi reads the annotations of the kernels below as objects

import subprocess
import sys

import numpy as np
import pytest

ti = pytest.importorskip("taichi")

from hera.kernels import connectivity, init, initialised_arch  # noqa: E402


@pytest.fixture(scope="module")
def cpu() -> None:
    init("cpu")
    assert initialised_arch() == "cpu"
    assert init("cpu") == "cpu"  # a second call is a no-op


# -- rng ---------------------------------------------------------------------------------------------


def test_counter_rng_kernel_matches_host_twin_and_is_reproducible(cpu: None) -> None:
    from hera.kernels import rng

    out = ti.field(ti.u32, 1000)
    uni = ti.field(ti.f32, 1000)

    @ti.kernel
    def draw(lo: ti.u32, hi: ti.u32, it: ti.i64, stream: ti.u32):
        for i in out:
            b = rng.bits(lo, hi, it, i, stream)
            out[i] = b
            uni[i] = rng.uniform(b)

    seed = (123 << 32) | 456
    for iteration, stream in ((0, 0), (7, 1), (2**40 + 3, 5)):
        lo, hi = rng.seed_words(seed)
        draw(lo, hi, iteration, stream)
        host = rng.bits_np(seed, iteration, np.arange(1000), stream)
        np.testing.assert_array_equal(out.to_numpy(), host)
        np.testing.assert_array_equal(uni.to_numpy(), rng.uniform_np(host))
    first = out.to_numpy().copy()
    draw(lo, hi, 2**40 + 3, 5)
    np.testing.assert_array_equal(out.to_numpy(), first)  # same key, same numbers: nothing to save
    assert len(np.unique(first)) == 1000
    u = rng.uniform_np(rng.bits_np(1, 0, np.arange(200_000)))
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.005
    z = rng.normal_clt_np(rng.bits_np(1, 1, np.arange(200_000)))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert not np.array_equal(rng.bits_np(1, 0, np.arange(10)), rng.bits_np(2, 0, np.arange(10)))


# -- connectivity ------------------------------------------------------------------------------------


def test_fixed_probability_is_bernoulli_per_pair_in_csr_order() -> None:
    rng = np.random.default_rng(0)
    ptr, post = connectivity.fixed_probability(500, 400, 0.05, rng)
    counts = np.diff(ptr)
    assert abs(counts.mean() - 20) < 1.0 and abs(counts.var() - 400 * 0.05 * 0.95) < 4
    pre = np.repeat(np.arange(500), counts)
    flat = pre * 400 + post
    assert (np.diff(flat) > 0).all()  # sorted by pre then post, no pair twice
    assert np.bincount(post, minlength=400).min() > 0


def test_csr_from_pairs_and_incoming_index_are_transposes() -> None:
    pre = np.array([2, 0, 2, 1, 0])
    post = np.array([1, 3, 0, 1, 1])
    csr = connectivity.csr_from_pairs(3, pre, post, weight=np.arange(5, dtype=np.float32), delay=[1, 2, 3, 4, 5])
    assert csr.ptr.tolist() == [0, 2, 3, 5]
    assert csr.post.tolist() == [3, 1, 1, 1, 0] and csr.weight.tolist() == [1, 4, 3, 0, 2]
    in_ptr, in_syn, in_pre = connectivity.incoming(csr.ptr, csr.post, 4)
    for j in range(4):
        ks = in_syn[in_ptr[j] : in_ptr[j + 1]]
        assert (csr.post[ks] == j).all()
        assert in_pre[in_ptr[j] : in_ptr[j + 1]].tolist() == csr.pre()[ks].tolist()
    assert in_ptr[-1] == 5
    with pytest.raises(ValueError):
        connectivity.csr_from_pairs(3, [0], [0], delay=[0])


# -- synapses: delays through the ring ---------------------------------------------------------------


def test_each_synapse_delivers_at_exactly_its_delay(cpu: None) -> None:
    from hera.kernels import synapses as syn

    csr = connectivity.csr_from_pairs(
        2, [0, 0, 0, 1], [1, 2, 1, 2], weight=np.array([0.5, -0.25, 1.0, 2.0], np.float32), delay=[1, 3, 5, 5]
    )
    slots, scale = 5, 2.0**16
    ring = ti.field(ti.i32, (1, slots, 3))
    ptr, post, w, d = (ti.field(ti.i32, 3), ti.field(ti.i32, 4), ti.field(ti.f32, 4), ti.field(ti.u8, 4))
    ptr.from_numpy(csr.ptr.astype(np.int32))
    post.from_numpy(csr.post)
    w.from_numpy(csr.weight)
    d.from_numpy(csr.delay)
    got = ti.field(ti.f32, 3)

    @ti.kernel
    def tick(t: ti.i64, spiking: ti.i32):
        slot = syn.slot_of(ring, t)
        for i in range(3):
            got[i] = syn.take(ring, 0, slot, i, scale)
        if spiking >= 0:
            syn.push_row(ring, 0, t, spiking, ptr, post, w, d, scale)

    arrivals = {}
    host = np.zeros((1, slots, 3), np.int32)
    for t in range(100, 112):
        spiking = 0 if t == 102 else 1 if t == 103 else -1
        tick(t, spiking)
        expected = syn.take_np(host, 0, t, scale)
        if spiking >= 0:
            syn.push_np(host, 0, t, [spiking], csr, scale)
        np.testing.assert_array_equal(got.to_numpy(), expected)
        arrivals[t] = got.to_numpy().tolist()
    assert arrivals[103] == [0, 0.5, 0]  # delay 1
    assert arrivals[105] == [0, 0, -0.25]  # delay 3
    assert arrivals[107] == [0, 1.0, 0]  # delay 5 (the slot it was pushed from, cleared first)
    assert arrivals[108] == [0, 0, 2.0]
    assert sum(map(sum, arrivals.values())) == 3.25 and not ring.to_numpy().any()


def test_fixed_point_rounds_like_the_host_twin(cpu: None) -> None:
    from hera.kernels import synapses as syn

    values = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, 1e-3], np.float32)
    src, dst = ti.field(ti.f32, len(values)), ti.field(ti.i32, len(values))
    src.from_numpy(values)

    @ti.kernel
    def fix():
        for i in src:
            dst[i] = syn.to_fixed(src[i], 1.0)

    fix()
    np.testing.assert_array_equal(dst.to_numpy(), syn.to_fixed_np(values, 1.0))


# -- neurons and plasticity --------------------------------------------------------------------------


def test_lif_blocks_on_lane_vectors_match_numpy(cpu: None) -> None:
    from hera.kernels import lif

    f = lif.CubaFactors.from_times(0.1, 20.0, 5.0, 10.0, -49.0)
    assert lif.brian2_refractory_steps(5.0, 0.1) == 49
    n = 64
    rng = np.random.default_rng(1)
    v0 = (-60 + 12 * rng.random(n)).astype(np.float32)
    ge0 = rng.random(n).astype(np.float32)
    gi0 = -rng.random(n).astype(np.float32)
    c0 = rng.integers(0, 3, n).astype(np.int32)
    v, ge, gi = (ti.Vector.field(8, ti.f32, n // 8) for _ in range(3))
    count = ti.Vector.field(8, ti.i32, n // 8)
    for fld, arr in ((v, v0), (ge, ge0), (gi, gi0), (count, c0)):
        fld.from_numpy(arr.reshape(-1, 8))

    @ti.kernel
    def step():
        for g in v:
            free, c = lif.refractory_tick(count[g])
            x = lif.hold(free, lif.cuba_membrane(v[g], ge[g], gi[g], f), v[g])
            spiked, x, c = lif.fire(x, free, -50.0, -60.0, c, 49)
            v[g] = x
            count[g] = c

    step()
    free = c0 == 0
    x = np.where(free, lif.cuba_membrane_np(v0, ge0, gi0, f), v0)
    spiked = free & (x > np.float32(-50))
    np.testing.assert_array_equal(v.to_numpy().reshape(-1), np.where(spiked, np.float32(-60), x))
    np.testing.assert_array_equal(count.to_numpy().reshape(-1), np.where(spiked, 49, np.maximum(c0 - 1, 0)))
    # exactness of the integration factors against the closed form, in float64
    assert abs(lif.current_to_voltage(0.1, 20.0, 5.0) - 5 / (5 - 20) * (np.exp(-0.1 / 5) - np.exp(-0.1 / 20))) < 1e-15
    assert abs(lif.current_to_voltage(0.1, 20.0, 20.0) - 0.1 / 20 * np.exp(-0.1 / 20)) < 1e-15


def test_plasticity_blocks_bound_weights_and_decay_eligibility_lazily(cpu: None) -> None:
    from hera.kernels import plasticity as pl

    w = ti.field(ti.f32, 4)
    e = ti.field(ti.f32, 4)
    stamp = ti.field(ti.i64, 4)
    in_ptr, in_syn, in_pre = ti.field(ti.i32, 3), ti.field(ti.i32, 4), ti.field(ti.i32, 4)
    in_ptr.from_numpy(np.array([0, 2, 4], np.int32))
    in_syn.from_numpy(np.array([0, 1, 2, 3], np.int32))
    in_pre.from_numpy(np.array([0, 1, 0, 1], np.int32))
    trace = ti.field(ti.f32, 2)
    trace.from_numpy(np.array([1.0, 0.0], np.float32))

    @ti.kernel
    def run():
        w[0] = 0.9
        pl.pair_on_post(w, 0, 0.5, 0.0, 1.0)  # capped at w_max
        w[1] = 0.1
        pl.pair_on_pre(w, 1, -0.5, 0.0, 1.0)  # floored at 0
        pl.eligibility_add(e, stamp, 2, 10, ti.log(0.5), 1.0)
        pl.eligibility_add(e, stamp, 2, 12, ti.log(0.5), 1.0)  # 1 * 0.5**2 + 1
        w[2] = 0.0
        w[3] = 0.0
        pl.eligibility_apply(w, e, stamp, 2, 13, ti.log(0.5), 1.0, -5.0, 5.0)
        pl.nudge_incoming(w, in_ptr, in_syn, in_pre, 1, trace, 0.25, 0.0, 1.0)  # grows only the active input

    run()
    got = w.to_numpy()
    assert got[0] == 1.0 and got[1] == 0.0
    assert abs(e.to_numpy()[2] - 1.25) < 1e-6 and abs(got[2] - (1.25 * 0.5 + 0.25)) < 1e-6
    assert got[3] == 0.0


# -- io ----------------------------------------------------------------------------------------------


def test_line_encoder_presents_one_byte_per_tick_and_consumes_exactly_what_ran() -> None:
    from hera.kernels.io import LineDecoder, LineEncoder

    enc = LineEncoder(ticks_per_byte=4)
    enc.feed(b"hi\n")
    assert enc.schedule(1, 8, 4).tolist() == [ord("h"), ord("i"), -1, -1]  # ticks at 4 and 8
    assert enc.consume(1, 4) == b"h"  # iterations 1..4 ran: the tick at 4 presented 'h'
    assert enc.pending.tobytes() == b"i\n"
    dec = LineDecoder(copies=2)
    counts = np.zeros(512, np.int32)
    counts[2 * ord("o") + 1] = 3
    dec.push(dec.decode(counts))
    dec.push(dec.decode(np.zeros(512, np.int32)))  # silence decodes to nothing
    dec.push(ord("\n"))
    dec.push(ord("k"))
    assert dec.lines() == [b"o\n"] and dec.read() == b"k"


# -- the GPU -----------------------------------------------------------------------------------------

GPU_CHILD = """
import sys
from hera.kernels import init
assert init("cuda") == "cuda"
from vogels_abbott import VogelsAbbott
from vogels_abbott.runtime import CubaRuntime
fam = VogelsAbbott()
p = fam.resolve("example", [("t", {"neurons": 300, "fan_in": 30})])
rt = CubaRuntime(p, 3, fam.build(p, 3).arrays, "cuda")
assert not rt.fused
r = rt.step(500, stop_on=["neuron:7"])
print(r.iteration, r.stopped_on)
"""


@pytest.mark.gpu
def test_stepwise_driver_runs_on_cuda() -> None:
    from hera.devices import gpus

    if not any("cuda" in d.backends for d in gpus()):
        pytest.skip("no CUDA GPU on this host")
    done = subprocess.run([sys.executable, "-c", GPU_CHILD], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
