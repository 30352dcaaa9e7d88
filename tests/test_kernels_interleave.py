"""The midpoint interleave: equal to a NumPy sort of midpoints, and the prefix bound."""
import numpy as np
import numba
from hypothesis import given, settings, strategies as st

import pytest

from mixer.shards.midpoint import SORT_FROM_DOMAINS, interleave_midpoint_threaded
from mixer.kernels.interleave import (interleave_midpoint, lane_bounds,
                                      merge_lanes, midpoint_keys, prefix_deviation)


def ref_interleave(seg_len, dom_start):
    keys, doms, pos = [], [], []
    for i in range(len(dom_start) - 1):
        lens = seg_len[dom_start[i]:dom_start[i + 1]]
        a = np.concatenate([[0], np.cumsum(lens)[:-1]]) if len(lens) else np.zeros(0)
        keys.append((2 * a + lens) / (2.0 * lens.sum()) if len(lens) else np.zeros(0))
        doms.append(np.full(len(lens), i))
        pos.append(np.arange(len(lens)))
    k, d, p = map(np.concatenate, (keys, doms, pos))
    o = np.lexsort((d, k))
    return d[o], p[o]


domain_lists = st.lists(st.lists(st.integers(1, 200), max_size=40), min_size=1, max_size=8)


def _arrays(domains):
    seg_len = np.array([x for d in domains for x in d], dtype=np.int64)
    dom_start = np.cumsum([0] + [len(d) for d in domains]).astype(np.int64)
    return seg_len, dom_start


@settings(max_examples=200, deadline=None)
@given(domain_lists)
def test_matches_numpy_reference(domains):
    seg_len, dom_start = _arrays(domains)
    d, p = interleave_midpoint(seg_len, dom_start)
    rd, rp = ref_interleave(seg_len, dom_start)
    np.testing.assert_array_equal(d, rd)
    np.testing.assert_array_equal(p, rp)


@settings(max_examples=300, deadline=None)
@given(domain_lists)
def test_prefix_bound_holds_at_every_position(domains):
    """After any segment with key f, each domain's delivered tokens C_i lie within half of
    one of its own documents of f * T_i; and against the share s_i * P of a prefix of P tokens
    the deviation is at most ((1 - s_i) l_i + s_i sum_{j != i} l_j) / 2 (l = longest segment)."""
    seg_len, dom_start = _arrays(domains)
    d, p = interleave_midpoint(seg_len, dom_start)
    k = len(domains)
    totals = np.array([sum(x) for x in domains], dtype=np.float64)
    longest = np.array([max(x) if x else 0 for x in domains], dtype=np.float64)
    share = totals / totals.sum() if totals.sum() else totals
    done = np.zeros(k)
    for t in range(len(d)):
        i = d[t]
        lens = domains[i]
        a = done[i]
        f = (2 * a + lens[p[t]]) / (2 * totals[i])
        done[i] += lens[p[t]]
        for j in range(k):
            if totals[j] == 0:
                continue
            m = int(np.sum(d[: t + 1] == j))  # segments of j taken so far
            last = domains[j][m - 1] if m else 0
            nxt = domains[j][m] if m < len(domains[j]) else 0
            assert f * totals[j] - nxt / 2 - 1e-9 <= done[j] <= f * totals[j] + last / 2 + 1e-9
        P = done.sum()
        bound = ((1 - share) * longest + share * (longest.sum() - longest)) / 2
        assert np.all(np.abs(done - share * P) <= bound + 1e-9)


def test_every_domain_in_order_and_complete():
    seg_len, dom_start = _arrays([[3, 1, 4], [1, 5], [], [9, 2, 6, 5]])
    d, p = interleave_midpoint(seg_len, dom_start)
    for i in range(4):
        assert p[d == i].tolist() == list(range(dom_start[i + 1] - dom_start[i]))


def test_unit_items_stay_within_one_and_a_half_items():
    rng = np.random.default_rng(0)
    for k in (2, 7):
        w = rng.dirichlet(np.ones(k))
        counts = np.floor(w * 10000).astype(np.int64)
        seg_len = np.ones(counts.sum(), np.int64)
        dom_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        d, _ = interleave_midpoint(seg_len, dom_start)
        share = counts / counts.sum()
        assert prefix_deviation(d, seg_len, share) < 0.5 + share.max() * k / 2 + 1e-9


@numba.njit
def _inside(seg_len, dom_start):
    d, p = interleave_midpoint(seg_len, dom_start)
    return d.shape[0]


def test_callable_from_njit():
    assert _inside(np.array([1, 2, 3], np.int64), np.array([0, 1, 3], np.int64)) == 3


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_lanes_and_threads_give_the_same_order(threads):
    rng = np.random.default_rng(threads)
    counts = np.array([30_000, 0, 50_000, 7, 20_000])
    seg_len = np.maximum(1, rng.lognormal(3, 1.2, counts.sum())).astype(np.int64)
    dom_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    d, p = interleave_midpoint_threaded(seg_len, dom_start, threads)
    rd, rp = ref_interleave(seg_len, dom_start)
    np.testing.assert_array_equal(d, rd)
    np.testing.assert_array_equal(p, rp)
    for lanes in (1, 3, 8):
        key = np.empty(len(seg_len))
        midpoint_keys(seg_len, dom_start, key)
        od, op = np.empty_like(d), np.empty_like(p)
        merge_lanes(key, dom_start, lane_bounds(key, dom_start, lanes), od, op)
        np.testing.assert_array_equal(od, rd)
        np.testing.assert_array_equal(op, rp)


@pytest.mark.parametrize("k", [SORT_FROM_DOMAINS, SORT_FROM_DOMAINS + 1, 3000])
def test_many_domains_sort_gives_the_merge_order(k):
    """Past SORT_FROM_DOMAINS domains the order comes from a stable sort of the keys: the same
    as the merge's and the reference's, ties (equal keys in two domains) to the lower domain."""
    rng = np.random.default_rng(k)
    counts = rng.integers(0, 12, k)
    counts[::7], counts[1:3] = 0, 4  # domains with no segment; two alike
    seg_len = np.maximum(1, rng.lognormal(3, 1.2, counts.sum())).astype(np.int64)
    seg_len[: counts[1] + counts[2]] = 5  # domains 1 and 2: the same keys (ties to the lower domain)
    dom_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rd, rp = ref_interleave(seg_len, dom_start)
    d, p = interleave_midpoint_threaded(seg_len, dom_start, 2, out_dom=np.empty(len(seg_len), np.int32))
    np.testing.assert_array_equal(d, rd)
    np.testing.assert_array_equal(p, rp)
    key = np.empty(len(seg_len))
    midpoint_keys(seg_len, dom_start, key)
    od, op = np.empty_like(d), np.empty_like(p)
    merge_lanes(key, dom_start, lane_bounds(key, dom_start, 2), od, op)
    np.testing.assert_array_equal(od, rd)
    np.testing.assert_array_equal(op, rp)
