"""hera.kernels: the counter-based generator, connectivity, delayed delivery, neuron and plasticity blocks, I/O.

Taichi compiles a ``@ti.func`` only when a kernel calls it, so every block of
the library has a kernel here that calls it, checked against numpy (bit for
bit where the arithmetic is exact), whether or not a shipped family uses it.
"""

# no "from __future__ import annotations": Taichi reads the annotations of the kernels below as objects


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
    nrm = ti.field(ti.f32, 1000)

    @ti.kernel
    def draw(lo: ti.u32, hi: ti.u32, it: ti.i64, stream: ti.u32):
        for i in out:
            b = rng.bits(lo, hi, it, i, stream)
            out[i] = b
            uni[i] = rng.uniform(b)
            nrm[i] = rng.normal_clt(b)

    seed = (123 << 32) | 456
    for iteration, stream in ((0, 0), (7, 1), (2**40 + 3, 5)):
        lo, hi = rng.seed_words(seed)
        draw(lo, hi, iteration, stream)
        host = rng.bits_np(seed, iteration, np.arange(1000), stream)
        np.testing.assert_array_equal(out.to_numpy(), host)
        np.testing.assert_array_equal(uni.to_numpy(), rng.uniform_np(host))
        np.testing.assert_array_equal(nrm.to_numpy(), rng.normal_clt_np(host))
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


def test_one_weight_and_one_delay_for_all_push_into_a_lane_vector_ring(cpu: None) -> None:
    from hera.kernels import synapses as syn

    n, lanes, slots, scale = 16, 8, 4, 2.0**10
    csr = connectivity.csr_from_pairs(n, [0, 0, 3, 9, 9], [1, 9, 9, 15, 0], weight=np.full(5, 0.75, np.float32))
    ring = ti.Vector.field(lanes, ti.i32, (1, slots, n // lanes))
    ptr, post = ti.field(ti.i32, n + 1), ti.field(ti.i32, 5)
    ptr.from_numpy(csr.ptr.astype(np.int32))
    post.from_numpy(csr.post)
    state, seen = ti.Vector.field(lanes, ti.f32, n // lanes), ti.field(ti.f32, n)
    state.from_numpy(np.arange(n, dtype=np.float32).reshape(-1, lanes))

    @ti.kernel
    def push(t: ti.i64, i: ti.i32):
        syn.push_row(ring, 0, t, i, ptr, post, 0.75, 2, scale)  # weight and delay decided at compile time
        for p in range(n):
            seen[p] = syn.value_at(state, p)  # neuron p of a lane-vector field

    host = np.zeros((1, slots, n), np.int32)
    for t, i in ((5, 0), (5, 3), (6, 9)):
        push(t, i)
        syn.push_np(host, 0, t, [i], csr, scale, delay=2)
        np.testing.assert_array_equal(ring.to_numpy().reshape(1, slots, n), host)
    assert host[0, 7 % slots, 9] == 2 * 768  # neurons 0 and 3 both reach 9 at iteration 7
    assert seen.to_numpy().tolist() == list(range(n))


def test_delay_one_rows_add_straight_into_scalar_and_lane_vector_state(cpu: None) -> None:
    from hera.kernels import synapses as syn

    n, lanes = 16, 8
    weights = np.array([0.5, -1.25, 2.0, 0.75, 0.125], np.float32)
    csr = connectivity.csr_from_pairs(n, [0, 0, 3, 9, 9], [1, 9, 9, 15, 0], weight=weights)
    ptr, post, w = ti.field(ti.i32, n + 1), ti.field(ti.i32, 5), ti.field(ti.f32, 5)
    ptr.from_numpy(csr.ptr.astype(np.int32))
    post.from_numpy(csr.post)
    w.from_numpy(csr.weight)
    flat, grouped = ti.field(ti.f32, n), ti.Vector.field(lanes, ti.f32, n // lanes)

    @ti.kernel
    def deliver(i: ti.i32):
        syn.add_row(flat, i, ptr, post, w)  # the rows' own weights
        syn.add_row(grouped, i, ptr, post, 0.25)  # one weight for all, into lane vectors

    host_flat, host_grouped = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for i in (0, 3, 9, 0):
        deliver(i)
        k = slice(int(csr.ptr[i]), int(csr.ptr[i + 1]))
        np.add.at(host_flat, csr.post[k], csr.weight[k])
        np.add.at(host_grouped, csr.post[k], np.float32(0.25))
    np.testing.assert_array_equal(flat.to_numpy(), host_flat)
    np.testing.assert_array_equal(grouped.to_numpy().reshape(-1), host_grouped)
    assert host_flat[9] == 2 * -1.25 + 2.0


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


def test_leak_and_adaptive_threshold_match_numpy_on_scalars_and_lane_vectors(cpu: None) -> None:
    from hera.kernels import lif

    n, steps = 16, 40
    rng = np.random.default_rng(2)
    x0 = (-70 + 20 * rng.random(n)).astype(np.float32)
    spikes = rng.random((steps, n)) < 0.2
    decay = np.float32(lif.decay_factor(0.1, 20.0))
    th_decay, th_jump, rest = np.float32(lif.decay_factor(0.1, 100.0)), np.float32(0.05), np.float32(-65.0)
    x, extra = ti.field(ti.f32, n), ti.Vector.field(8, ti.f32, n // 8)
    fired = ti.Vector.field(8, ti.i32, n // 8)
    x.from_numpy(x0)
    extra.from_numpy(np.zeros((n // 8, 8), np.float32))

    @ti.kernel
    def step():
        for i in x:
            x[i] = lif.leak(x[i], rest, decay)
        for g in extra:
            extra[g] = lif.adapt(extra[g], fired[g] != 0, th_decay, th_jump)

    host_x, host_extra = x0.copy(), np.zeros(n, np.float32)
    for s in range(steps):
        fired.from_numpy(spikes[s].astype(np.int32).reshape(-1, 8))
        step()
        host_x = rest + (host_x - rest) * decay
        host_extra = host_extra * th_decay + np.where(spikes[s], th_jump, np.float32(0))
    np.testing.assert_array_equal(x.to_numpy(), host_x)
    np.testing.assert_array_equal(extra.to_numpy().reshape(-1), host_extra)
    assert host_extra.max() > th_jump  # some neuron spiked twice close together: the jumps add up


def test_traces_and_rate_estimates_match_numpy_step_by_step(cpu: None) -> None:
    from hera.kernels import plasticity as pl

    n, steps = 12, 200
    spikes = np.random.default_rng(3).random((steps, n)) < 0.1
    decay, jump = np.float32(0.95), np.float32(0.5)
    spiked, tr, rt = ti.field(ti.i32, n), ti.field(ti.f32, n), ti.field(ti.f32, n)

    @ti.kernel
    def step():
        for i in spiked:
            tr[i] = pl.trace(tr[i], decay, spiked[i], jump)
            rt[i] = pl.rate(rt[i], spiked[i], decay)

    host_tr, host_rt = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for s in range(steps):
        spiked.from_numpy(spikes[s].astype(np.int32))
        step()
        host_tr = host_tr * decay + np.where(spikes[s], jump, np.float32(0))
        host_rt = host_rt * decay + np.where(spikes[s], np.float32(1) - decay, np.float32(0))
    np.testing.assert_array_equal(tr.to_numpy(), host_tr)
    np.testing.assert_array_equal(rt.to_numpy(), host_rt)
    # the rate estimate is spikes per step: near the 0.1 the spikes were drawn with
    assert abs(float(rt.to_numpy().mean()) - 0.1) < 0.05


def test_triplet_rule_moves_weights_like_pfister_and_gerstner_and_stays_bounded(cpu: None) -> None:
    from hera.kernels import plasticity as pl

    m = 64
    rng = np.random.default_rng(4)
    w0 = rng.random(m).astype(np.float32)
    o1, r2, r1, o2 = (rng.random(m).astype(np.float32) for _ in range(4))
    a2m, a3m, a2p, a3p = np.float32(0.2), np.float32(0.05), np.float32(0.3), np.float32(0.1)  # large: bounds reached
    lo, hi = np.float32(0.0), np.float32(1.0)
    w = ti.field(ti.f32, m)
    fields = [ti.field(ti.f32, m) for _ in range(4)]
    for fld, arr in zip(fields, (o1, r2, r1, o2), strict=True):
        fld.from_numpy(arr)
    f_o1, f_r2, f_r1, f_o2 = fields

    @ti.kernel
    def on_pre():
        for k in w:
            pl.triplet_on_pre(w, k, f_o1[k], f_r2[k], a2m, a3m, lo, hi)

    @ti.kernel
    def on_post():
        for k in w:
            pl.triplet_on_post(w, k, f_r1[k], f_o2[k], a2p, a3p, lo, hi)

    w.from_numpy(w0)
    on_pre()
    host = np.clip(w0 - o1 * (a2m + a3m * r2), lo, hi)
    np.testing.assert_array_equal(w.to_numpy(), host)
    assert (host <= w0).all() and (host == lo).any()  # depressed, some to the floor
    on_post()
    host = np.clip(host + r1 * (a2p + a3p * o2), lo, hi)
    np.testing.assert_array_equal(w.to_numpy(), host)
    assert (host == hi).any()  # potentiated, some to the cap


def test_scaling_and_normalisation_of_incoming_weights_match_numpy(cpu: None) -> None:
    from hera.kernels import plasticity as pl

    rng = np.random.default_rng(5)
    n_pre, n_post = 30, 20
    ptr, post = connectivity.fixed_probability(n_pre, n_post, 0.3, rng)
    in_ptr, in_syn, _ = connectivity.incoming(ptr, post, n_post)
    m = len(post)
    w0 = rng.random(m).astype(np.float32)
    w0[in_syn[in_ptr[3] : in_ptr[4]]] = 0.0  # a silent neuron: normalisation leaves it alone (no division by 0)
    w0[in_syn[in_ptr[5] : in_ptr[6]]] *= np.float32(0.01)  # a weakly driven one: normalisation lifts it
    factor = (0.5 + rng.random(n_post)).astype(np.float32)
    w, f_factor = ti.field(ti.f32, m), ti.field(ti.f32, n_post)
    f_ptr, f_syn = ti.field(ti.i32, n_post + 1), ti.field(ti.i32, m)
    f_ptr.from_numpy(in_ptr.astype(np.int32))
    f_syn.from_numpy(in_syn.astype(np.int32))
    f_factor.from_numpy(factor)
    lo, hi, total = np.float32(0.0), np.float32(0.9), np.float32(2.5)

    @ti.kernel
    def scale():
        for j in range(n_post):
            pl.scale_incoming(w, f_ptr, f_syn, j, f_factor[j], lo, hi)

    @ti.kernel
    def normalise():
        for j in range(n_post):
            pl.normalise_incoming(w, f_ptr, f_syn, j, total)

    w.from_numpy(w0)
    scale()
    host = w0.copy()
    for j in range(n_post):
        ks = in_syn[in_ptr[j] : in_ptr[j + 1]]
        host[ks] = np.clip(host[ks] * factor[j], lo, hi)
    np.testing.assert_array_equal(w.to_numpy(), host)
    normalise()
    for j in range(n_post):
        ks = in_syn[in_ptr[j] : in_ptr[j + 1]]
        s = np.float32(0.0)
        for k in ks:  # the kernel's order: one incoming synapse after the other
            s = np.float32(s + host[k])
        if s > 0:
            host[ks] *= total / s
    np.testing.assert_array_equal(w.to_numpy(), host)
    sums = [host[in_syn[in_ptr[j] : in_ptr[j + 1]]].sum() for j in range(n_post)]
    assert sums[3] == 0.0 and all(abs(s - total) < 1e-5 for j, s in enumerate(sums) if j != 3)



# -- io ----------------------------------------------------------------------------------------------


def test_kept_values_are_flushed_below_two_to_the_minus_64_and_products_keep_their_bits(cpu: None) -> None:
    """The driver's same-arithmetic-everywhere blocks: what a GPU would flush is zero on the CPU too."""
    from hera.kernels.driver import FLUSH_BELOW, Area, Driver

    driver = Driver(fused=True, neurons=1, areas=[Area("all", 0, 1)])
    rounded, flushed = driver.rounded, driver.flushed
    values = np.array([0.0, 1e-38, -1e-38, 2.0**-65, -(2.0**-65), 2.0**-64, -(2.0**-64), 0.5, -3.0, 1e-30],
                      np.float32)
    factors = np.array([0.9, 0.1, 7.0, 0.3, 3.0, 0.25, 1.5, 1.0 / 3.0, 0.7, 0.99], np.float32)
    x = ti.field(ti.f32, len(values))
    y = ti.field(ti.f32, len(values))
    kept = ti.field(ti.f32, len(values))
    fused_add = ti.field(ti.f32, len(values))
    x.from_numpy(values)
    y.from_numpy(factors)

    @ti.kernel
    def apply():
        for i in range(values.shape[0]):
            kept[i] = flushed(x[i])
            fused_add[i] = rounded(x[i] * y[i]) + y[i]

    apply()
    expected = np.where(np.abs(values) < np.float32(FLUSH_BELOW), np.float32(0.0), values)
    assert kept.to_numpy().tobytes() == expected.tobytes()
    # two roundings, as numpy's float32 does them: the product on its own, then the sum
    assert fused_add.to_numpy().tobytes() == ((values * factors) + factors).astype(np.float32).tobytes()


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


def test_presented_byte_clock_matches_what_the_encoder_schedules_and_consumes(cpu: None) -> None:
    from hera.kernels import io
    from hera.kernels.io import LineEncoder

    capacity = 64 + 2  # as a family sizes it: the ticks one launch of 64 iterations can hold, and two more
    schedule, got = ti.field(ti.i32, capacity), ti.field(ti.i32, 64)

    @ti.kernel
    def clock(start: ti.i64, first_tick: ti.i64, ticks: ti.i32):
        for s in got:
            got[s] = io.presented(schedule, start + s, first_tick, ticks)

    for ticks, start, queued in ((4, 1, b"hello"), (3, 30, b"ab"), (1, 7, b"0123456789abc"), (5, 0, b"")):
        enc = LineEncoder(ticks_per_byte=ticks, pending=queued)
        schedule.from_numpy(enc.schedule(start, 64, capacity))
        clock(start, enc.first_tick(start), ticks)
        expected = [-1] * 64
        for s in range(64):
            t = start + s
            slot = t // ticks - enc.first_tick(start)
            if t % ticks == 0 and slot < min(len(queued), capacity):
                expected[s] = queued[slot]
        assert got.to_numpy().tolist() == expected
        ran = 64 - 5  # a launch that stopped early consumes exactly the bytes its iterations presented
        assert enc.consume(start, ran) == bytes(b for b in expected[:ran] if b >= 0)
