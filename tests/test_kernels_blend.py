"""`blend_items`: exact counts, each domain's items in order, the prefix error it reports is the
stream's own, and never above Megatron's greedy blend given the same unrounded weights."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.megatron_blend import blend_port
from mixer.kernels.blend import (
    blend_items,
    edf_weights,
    full_pass,
    lane_splits,
    megatron_error,
    scan_lanes,
    smallest,
)
from mixer.kernels.blend_lanes import WIDE, wide_pass
from mixer.kernels.deviation import max_prefix_deviation_items
from mixer.kernels.targets import largest_remainder


def megatron(w, n):
    di, si = np.zeros(n, np.int16), np.zeros(n, np.int64)
    blend_port(di, si, w, len(w), n)
    return di


def blended(w, n, lanes=4):
    counts = largest_remainder(w, n)
    d, p = np.empty(n, np.int32), np.empty(n, np.int64)
    dev = blend_items(w, counts, d, p, lanes)
    return counts, d, p, dev


@settings(max_examples=60, deadline=None)
@given(k=st.integers(2, 60), n=st.integers(50, 3000), seed=st.integers(0, 2**32 - 1))
def test_never_worse_than_megatron_on_unrounded_weights(k, n, seed):
    w = np.random.default_rng(seed).dirichlet(np.ones(k))
    counts, d, p, dev = blended(w, n)
    assert np.array_equal(np.bincount(d, minlength=k), counts)  # exact largest-remainder counts
    for i in range(k):
        assert np.array_equal(p[d == i], np.arange(counts[i]))  # each domain's items in order
    assert abs(dev - max_prefix_deviation_items(d, w)) < 1e-12  # the error it reports is the stream's
    theirs = max_prefix_deviation_items(megatron(w, n), w)
    assert dev <= theirs + 1e-12
    assert abs(megatron_error(w, n) - theirs) < 1e-12  # the cap is Megatron's own measure


def test_strictly_better_than_megatron_at_k7():
    """At K = 7 Megatron's greedy strays past one item; the EDF order stays near 0.8."""
    rng = np.random.default_rng(7)
    for _ in range(5):
        w = rng.dirichlet(np.ones(7))
        dev = blended(w, 20_000)[3]
        assert dev < 0.95 < max_prefix_deviation_items(megatron(w, 20_000), w)


def test_lanes_give_the_same_stream():
    w = np.array([0.31, 0.27, 0.2, 0.12, 0.1])
    n = 300_000
    counts = largest_remainder(w, n)
    bounds = lane_splits(w, counts, 0.8, 8)[0]
    assert len(bounds) == 9 and bounds[0] == 0 and bounds[-1] == n  # forced slots were found
    outs = []
    for lanes in (1, 3, 8):
        d, p, dev = np.empty(n, np.int32), np.empty(n, np.int64), np.zeros(1)
        assert full_pass(w, counts, 0.8, lanes, d, p, dev) == -1
        outs.append((d, dev[0]))
    for d, dev in outs[1:]:
        assert np.array_equal(d, outs[0][0]) and dev == outs[0][1]


def test_side_by_side_lanes_give_the_one_lane_stream():
    """`wide_pass` (32 lanes side by side) gives one lane's stream and error, bit for bit; where
    one lane misses late (b = 0.82: at slot 253,945), it misses too."""
    w = np.random.default_rng(7).dirichlet(np.ones(7))
    n = 300_000
    counts = largest_remainder(w, n)
    assert len(lane_splits(w, counts, 0.86, WIDE, False)[0]) == WIDE + 1
    d1, p1, dev = np.empty(n, np.int32), np.empty(n, np.int64), np.zeros(1)
    d2, p2 = np.empty(n, np.int32), np.empty(n, np.int64)
    assert full_pass(w, counts, 0.86, 1, d1, p1, dev) == -1
    assert wide_pass(w, counts, 0.86, d2, p2) == dev[0] > 0.85
    assert np.array_equal(d1, d2) and np.array_equal(p1, p2)
    assert full_pass(w, counts, 0.82, 1, d1, p1, dev) == 253_945
    assert wide_pass(w, counts, 0.82, d2, p2) == -1.0


def test_side_by_side_lanes_of_odd_lengths():
    """Lanes whose lengths are no multiple of the slots a lane stages (a few lanes of ~3,700 slots;
    the output prefilled with -5): every staged tail is written, bit for bit one lane's stream."""
    w = np.random.default_rng(7).dirichlet(np.ones(7))
    n = 33_333
    counts = largest_remainder(w, n)
    lanes = len(lane_splits(w, counts, 0.86, WIDE, False)[0]) - 1
    assert WIDE // 4 <= lanes < WIDE
    d1, p1, dev = np.empty(n, np.int32), np.empty(n, np.int64), np.zeros(1)
    d2, p2 = np.full(n, -5, np.int32), np.full(n, -5, np.int64)
    assert full_pass(w, counts, 0.86, 1, d1, p1, dev) == -1
    assert wide_pass(w, counts, 0.86, d2, p2) == dev[0]
    assert np.array_equal(d1, d2) and np.array_equal(p1, p2)


def test_heaps_and_scan_agree():
    """Past 48 domains EDF keeps heaps; the linear scan gives the same stream."""
    w = np.random.default_rng(3).dirichlet(np.ones(60))
    n = 20_000
    counts = largest_remainder(w, n)
    b = 0.99
    d1, p1, dev = np.empty(n, np.int32), np.empty(n, np.int64), np.zeros(1)
    assert edf_weights(w, counts, b, n, d1, p1, dev) == -1
    d2, p2, res = np.empty(n, np.int32), np.empty(n, np.int64), np.empty((1, 2))
    scan_lanes(w, counts, b, (np.array([0, n], np.int64), np.zeros((1, 60), np.int64)), True, d2, p2, res)
    assert res[0, 0] == -1 and np.array_equal(d1, d2) and abs(res[0, 1] - dev[0]) < 1e-12


def test_smallest_is_the_smallest_edf_meets():
    w = np.array([0.5, 0.3, 0.15, 0.05])
    n = 5000
    counts = largest_remainder(w, n)
    d, p = np.empty(n, np.int32), np.empty(n, np.int64)
    dev = smallest(w, counts, d, p)
    assert abs(dev - max_prefix_deviation_items(d, w)) < 1e-12
    tmp_d, tmp_p, tmp = np.empty(n, np.int32), np.empty(n, np.int64), np.zeros(1)
    assert edf_weights(w, counts, dev - 1e-9, n, tmp_d, tmp_p, tmp) >= 0  # a hair less fails
    assert dev <= blended(w, n)[3] + 1e-12


def test_prefix_probes_on_lanes_give_one_lanes_verdict():
    """`_probe` (the search's probe of a long prefix: 24 lanes side by side, else 8 in lock-step)
    gives `edf_weights`' one-lane verdict, and where it holds the same error and stream, bit for
    bit, over random weights, tolerances and prefix lengths."""
    from mixer.kernels.blend import PROBE_LANES, PROBE_LANES_FROM, _probe, edf_weights, lower_bound

    rng = np.random.default_rng(0)
    n, held, on_lanes = 300_000, 0, 0
    for _ in range(60):
        k = int(rng.choice([2, 3, 5, 7, 12, 20]))
        w = rng.dirichlet(np.ones(k))
        counts = largest_remainder(w, n)
        b = lower_bound(w, counts) + rng.uniform(0.0, 0.3)
        limit = int(rng.integers(PROBE_LANES_FROM, n))
        d1, p1, dev1 = np.empty(n, np.int32), np.empty(n, np.int64), np.zeros(1)
        d2, p2, dev2 = np.empty(n, np.int32), np.empty(n, np.int64), np.zeros(1)
        one, lanes = edf_weights(w, counts, b, limit, d1, p1, dev1), _probe(w, counts, b, limit, d2, p2, dev2)
        assert (one >= 0) == (lanes >= 0)
        if one < 0:
            held += 1
            assert dev1[0] == dev2[0]
            assert np.array_equal(d1[:limit], d2[:limit]) and np.array_equal(p1[:limit], p2[:limit])
        on_lanes += len(lane_splits(w, counts, b, PROBE_LANES, True, limit)[0]) > 2
    assert held >= 20 and on_lanes >= 20  # (both verdicts, and lanes, seen often)
