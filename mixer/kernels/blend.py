"""The interleave of unit items with a small prefix error against the *given* weights.

`mixer.kernels.edf` minimises the prefix deviation against the shares of the rounded counts,
T_i / N. A user (and Megatron's `build_blending_indices`) states weights w_i, and the counts are
their largest-remainder rounding, so the deviation a user sees is |C_i(n) - w_i n| with the
unrounded w. This module bounds that one, keeping the exact counts T_i:

Item j (1-based) of domain i placed at slot p (0-based) keeps every prefix within B iff
    p >= release = ceil((j - B) / w_i) - 1     (C_i(p + 1) = j <= w_i (p + 1) + B)
    p <= deadline = floor((j - 1 + B) / w_i)   (C_i(n) = j - 1 >= w_i n - B for n <= p),
and after its last item, |T_i - w_i N| <= B. Unit jobs with integer windows: earliest deadline
first (EDF) meets them whenever any order can. `blend_items` picks the tolerance: the smallest
one EDF meets on a prefix of the stream plus a margin, but never above the error that
Megatron's greedy reaches on a prefix (which its whole stream reaches too); so its order is
never worse than Megatron's on the same weights (measured: 0.1-0.2 items better at K = 7,
equal at K >= 30 where both meet the first item's bound 1 - max w). If EDF misses both, a
search finds the smallest tolerance it meets on the whole stream (slow: a bisection over
ever longer prefixes; not seen on random weights).

Speed. At a tolerance B < 1, the counts after p slots are forced wherever every domain's
window [w_i p - B, w_i p + B] holds one integer; from such a slot on, EDF's choices do not
depend on what came before. The stream is cut at forced slots into lanes that one thread
advances together (their dependency chains overlap in the CPU) or several threads share; the
result is the same for any number of lanes or threads. Small K scan the K heads: the whole
stream on 24 lanes side by side (`blend_lanes`: the scan is vector code over the lanes), the
prefix probes and a missed pass on a few lanes in lock-step (a min over packed
(deadline << 16 | domain) keys, whose first miss steers the search); large K keep two heaps
(waiting by release, ready by deadline): O(N log K).
"""
from __future__ import annotations

import numpy as np

from mixer.kernels._jit import njit
from mixer.kernels.blend_lanes import lane_splits, wide_ok, wide_pass
from mixer.kernels.edf import _ipop, _ipush  # the same binary heap of int64 keys

_BIG = np.int64(2**62)
_SCAN_K = 48  # up to this many domains the linear scan beats the heaps
MARGIN = 0.05  # above the prefix's smallest tolerance: long streams need a little more
PREFIX = 4096  # slots of the first search


@njit
def _window(j, b, inv_w):
    """(release, deadline) of item j (1-based) of a domain of weight 1 / inv_w at tolerance b
    (a multiply, not a divide: it is on the chain from one slot to the next)."""
    return np.int64(np.ceil((j - b) * inv_w)) - 1, np.int64(np.floor((j - 1 + b) * inv_w))


@njit
def _inverse(w, counts):
    inv = np.zeros(w.shape[0])
    for i in range(w.shape[0]):
        if counts[i] > 0:
            inv[i] = 1.0 / w[i]
    return inv


@njit
def scan_lanes(w, counts, b, lanes, check_end, out_dom, out_pos, res):
    """EDF by a linear scan over the K heads, on lanes q = 0..L-1 in lock-step (`lanes` =
    (bounds, start)): lane q fills slots bounds[q]..bounds[q + 1] from the counts start[q] (those
    after bounds[q] slots).
    res[q] = (first slot that fails or -1, the lane's largest prefix error); the first failure
    stops every lane. A lane that ends on counts other than the next lane's start fails; with
    `check_end` the last lane too, when it ends on counts other than `counts`."""
    bounds, start = lanes
    k = counts.shape[0]
    n_lanes = bounds.shape[0] - 1
    inv = _inverse(w, counts)
    rel = np.full((n_lanes, k), _BIG, np.int64)
    key = np.empty((n_lanes, k), np.int64)  # the min is the earliest deadline, ties the lower domain
    taken = start.copy()
    worst = np.zeros(n_lanes)
    pos = bounds[:-1].copy()
    longest = 0
    nrel = np.full((n_lanes, k), _BIG, np.int64)  # the window of each domain's next item, a step
    nkey = np.empty((n_lanes, k), np.int64)  # ahead: off the chain from one slot to the next
    for q in range(n_lanes):
        res[q, 0] = -1
        longest = max(longest, bounds[q + 1] - bounds[q])
        for i in range(k):
            if taken[q, i] < counts[i]:
                r, d = _window(taken[q, i] + 1.0, b, inv[i])
                rel[q, i] = r
                key[q, i] = (d << 16) | i
            if taken[q, i] + 1 < counts[i]:
                r, d = _window(taken[q, i] + 2.0, b, inv[i])
                nrel[q, i] = r
                nkey[q, i] = (d << 16) | i
    for _ in range(longest):
        for q in range(n_lanes):
            p = pos[q]
            if p >= bounds[q + 1]:
                continue
            best = _BIG
            for i in range(k):
                v = key[q, i] if rel[q, i] <= p else _BIG
                best = min(best, v)
            if best == _BIG or (best >> 16) < p:  # the pass fails: stop every lane
                res[q, 0] = p
                return
            i = best & 0xFFFF
            c = taken[q, i]
            out_dom[p] = i
            out_pos[p] = c
            worst[q] = max(worst[q], w[i] * p - c, (c + 1.0) - w[i] * (p + 1))  # just before / after it
            c += 1
            taken[q, i] = c
            rel[q, i] = nrel[q, i]  # (_BIG past the domain's last item)
            key[q, i] = nkey[q, i]
            if c + 1 < counts[i]:
                r, d = _window(c + 2.0, b, inv[i])
                nrel[q, i] = r
                nkey[q, i] = (d << 16) | i
            else:
                nrel[q, i] = _BIG
            pos[q] = p + 1
    for q in range(n_lanes):
        end = bounds[q + 1]
        for i in range(k):  # every domain's last prefix in the lane
            worst[q] = max(worst[q], abs(taken[q, i] - w[i] * end))
            if (check_end or q + 1 < n_lanes) and res[q, 0] < 0 and \
                    taken[q, i] != (start[q + 1, i] if q + 1 < n_lanes else counts[i]):
                res[q, 0] = end  # (a lane always ends where the next starts; the last, with check_end, on counts)
        res[q, 1] = worst[q]


@njit
def _tail(w, taken, limit, worst):
    """The error of every domain's last prefix (its count then stands until `limit`)."""
    for i in range(w.shape[0]):
        worst = max(worst, abs(taken[i] - w[i] * limit))
    return worst


@njit
def _heaps(w, counts, b, limit, out_dom, out_pos, dev):
    """EDF with a heap of waiting heads (release << 16 | domain) and one of ready heads
    (deadline << 16 | domain); returns -1 or the first slot that fails."""
    k = counts.shape[0]
    wait = np.empty(k, np.int64)
    ready = np.empty(k, np.int64)
    dl = np.empty(k, np.int64)
    taken = np.zeros(k, np.int64)
    nw = 0
    nr = 0
    inv = _inverse(w, counts)
    for i in range(k):
        if counts[i] > 0:
            r, d = _window(1.0, b, inv[i])
            dl[i] = d
            if r <= 0:
                nr = _ipush(ready, nr, (d << 16) | i)
            else:
                nw = _ipush(wait, nw, (r << 16) | i)
    worst = 0.0
    for p in range(limit):
        while nw > 0 and (wait[0] >> 16) <= p:
            i = wait[0] & 0xFFFF
            nw = _ipop(wait, nw)
            nr = _ipush(ready, nr, (dl[i] << 16) | i)
        if nr == 0 or (ready[0] >> 16) < p:
            return p
        i = ready[0] & 0xFFFF
        nr = _ipop(ready, nr)
        c = taken[i]
        out_dom[p] = i
        out_pos[p] = c
        worst = max(worst, w[i] * p - c, (c + 1.0) - w[i] * (p + 1))
        c += 1
        taken[i] = c
        if c < counts[i]:
            r, d = _window(c + 1.0, b, inv[i])
            dl[i] = d
            if r <= p + 1:
                nr = _ipush(ready, nr, (d << 16) | i)
            else:
                nw = _ipush(wait, nw, (r << 16) | i)
    dev[0] = _tail(w, taken, limit, worst)
    return -1


@njit
def edf_weights(w, counts, b, limit, out_dom, out_pos, dev):
    """One EDF probe at tolerance b over the first `limit` slots, on one lane (the slots before
    any position do not depend on what comes after); -1 when every window is met, else the
    first slot that fails; dev[0] then holds the stream's largest prefix error over those slots.
    w: float64[K] summing to 1; counts: int64[K], the items of each domain."""
    k = counts.shape[0]
    if k > _SCAN_K:
        return _heaps(w, counts, b, limit, out_dom, out_pos, dev)
    res = np.empty((1, 2))
    scan_lanes(w, counts, b, (np.array([0, limit], np.int64), np.zeros((1, k), np.int64)), False,
               out_dom, out_pos, res)
    dev[0] = res[0, 1]
    return np.int64(res[0, 0])


PROBE_LANES = 8  # lanes of a long prefix probe in `search`
PROBE_LANES_FROM = 1 << 17  # prefixes at least this long are probed on lanes


@njit
def _probe(w, counts, b, limit, out_dom, out_pos, dev):
    """`edf_weights`' verdict, and its error where the probe holds, on lanes when the prefix is
    long (`wide_pass`'s lanes side by side where they hold, else up to PROBE_LANES in lock-step):
    the same verdict and error as one lane (each lane starts from forced counts and must end on
    the next lane's), several times faster on a prefix of millions of slots, which `blend_items`
    searches when a whole-stream pass misses early. On a miss the slot returned is some lane's first
    miss, not necessarily the prefix's first: the search uses only whether it missed."""
    k = counts.shape[0]
    if k > _SCAN_K or limit < PROBE_LANES_FROM:
        return edf_weights(w, counts, b, limit, out_dom, out_pos, dev)
    if wide_ok(w, counts, b):  # many lanes side by side when it holds (a miss says only that)
        d = wide_pass(w, counts, b, out_dom, out_pos, limit)
        if d >= 0.0:
            dev[0] = d
            return -1
    lanes = lane_splits(w, counts, b, PROBE_LANES, True, limit)
    if lanes[0].shape[0] <= 2:
        return edf_weights(w, counts, b, limit, out_dom, out_pos, dev)
    return _lock_step(w, counts, b, lanes, False, out_dom, out_pos, dev)


@njit
def _lock_step(w, counts, b, lanes, check_end, out_dom, out_pos, dev):
    """`scan_lanes` on `lanes`; the first lane's miss, or -1 with the largest error in dev[0]."""
    res = np.empty((lanes[0].shape[0] - 1, 2))
    scan_lanes(w, counts, b, lanes, check_end, out_dom, out_pos, res)
    dev[0] = 0.0
    for q in range(res.shape[0]):
        if res[q, 0] >= 0:
            return np.int64(res[q, 0])
        dev[0] = max(dev[0], res[q, 1])
    return -1


@njit
def full_pass(w, counts, b, lanes, out_dom, out_pos, dev):
    """The whole stream at tolerance b, on up to `lanes` lanes in lock-step (one thread); as
    `edf_weights`. (`blend_items` tries `blend_lanes.wide_pass` first: the same stream.)"""
    k = counts.shape[0]
    n = out_dom.shape[0]
    if k > _SCAN_K:
        return _heaps(w, counts, b, n, out_dom, out_pos, dev)
    return _lock_step(w, counts, b, lane_splits(w, counts, b, lanes), True, out_dom, out_pos, dev)


@njit
def lower_bound(w, counts):
    """Just below max(1 - max w, max_i |T_i - w_i N|): any first item, and the last prefix."""
    n = 0
    wmax = 0.0
    for i in range(counts.shape[0]):
        n += counts[i]
        if counts[i] > 0:
            wmax = max(wmax, w[i])
    lo = 1.0 - wmax
    for i in range(counts.shape[0]):
        lo = max(lo, abs(counts[i] - w[i] * n))
    return np.nextafter(lo, -1.0)


@njit
def blend_items(w, counts, out_dom, out_pos, lanes=4):
    """Order sum(counts) items, counts[i] of domain i, so that every prefix stays close to the
    weights w (float64[K], summing to 1); writes out_dom / out_pos (domain; index within it) and
    returns the largest prefix error max_{n, i} |C_i(n) - w_i n|.

    The cap is Megatron's largest prefix error on its first samples (its whole stream reaches it
    too). Tolerance b1 + MARGIN, with b1 the smallest that EDF meets on a prefix (to MARGIN / 8),
    capped; a whole-stream probe that fails stops at its first miss f: then b1 is searched again
    on a prefix of 4 f while that is short, else the margin doubles. Past the cap, `smallest`."""
    k = counts.shape[0]
    n = out_dom.shape[0]
    dev = np.zeros(1)
    cap = megatron_error(w, min(n, max(PREFIX, (1 << 20) // max(k, 1))))
    tmp_dom = np.empty(n, out_dom.dtype)
    tmp_pos = np.empty(n, out_pos.dtype)
    prefix = min(n, PREFIX)
    lo = lower_bound(w, counts)
    margin = MARGIN
    b1 = search(w, counts, lo, 1.0 / 64.0, prefix, (tmp_dom, tmp_pos, dev), MARGIN / 8.0)
    while True:
        b = min(b1 + margin, cap)
        if k <= _SCAN_K and wide_ok(w, counts, b):  # many lanes side by side: the same stream
            d = wide_pass(w, counts, b, out_dom, out_pos)
            if d >= 0.0:
                return d
        f = full_pass(w, counts, b, lanes, out_dom, out_pos, dev)  # (its first miss steers b)
        if f < 0:
            return dev[0]
        if b >= cap:
            break
        if 4 * f < n:  # (the prefix grows, and b1 with it: every round tries a larger tolerance)
            prefix = min(n, max(4 * f + 4, 2 * prefix))
            b1 = max(b + MARGIN / 8.0 - margin,
                     search(w, counts, b, MARGIN / 8.0, prefix, (tmp_dom, tmp_pos, dev), MARGIN / 8.0))
        else:
            margin *= 2.0
    return smallest(w, counts, out_dom, out_pos)


@njit
def smallest(w, counts, out_dom, out_pos):
    """The smallest tolerance EDF meets on the whole stream (to 1e-12), and its stream.

    A tolerance that fails on a prefix fails on the whole stream, so the search runs on a
    prefix first, probes the whole stream at its answer, and when that fails at slot f searches
    again from there on a prefix past f. Exact, but each round bisects over a longer prefix."""
    n = out_dom.shape[0]
    tmp_dom = np.empty(n, out_dom.dtype)
    tmp_pos = np.empty(n, out_pos.dtype)
    dev = np.zeros(1)
    lo = lower_bound(w, counts)
    prefix = min(n, PREFIX)
    step = 1.0 / 64.0
    while True:
        hi = search(w, counts, lo, step, prefix, (tmp_dom, tmp_pos, dev))
        f = edf_weights(w, counts, hi, n, out_dom, out_pos, dev)
        if f < 0:
            return dev[0]
        lo = hi  # fails on the whole stream at slot f: search a prefix past it, from there
        prefix = min(n, max(f + 1, 2 * prefix))
        step = 1e-6


@njit
def search(w, counts, lo, step, prefix, scratch, tol=1e-12):
    """The smallest tolerance above `lo` (which fails) that EDF meets on the first `prefix`
    slots, to 1e-12: steps up from lo by `step`, doubling; then bisects. Every tolerance met
    gives a stream whose own error (<= the tolerance) is met too, so `hi` drops to it; a probe
    just below `hi` that fails ends the search. `scratch`: (items, positions, error) buffers."""
    tmp_dom, tmp_pos, dev = scratch
    hi = lo + step
    while _probe(w, counts, hi, prefix, tmp_dom, tmp_pos, dev) >= 0:
        if hi > 4.0:  # never reached: the rounding keeps every count within 1 of its quota
            raise ValueError("blend_items: no schedule within a tolerance of 4")
        lo = hi
        step *= 4.0
        hi = lo + step
    hi = min(hi, dev[0])  # (the stream's own error can exceed the tolerance by a rounding)
    while hi - lo > tol:
        below = hi - tol
        if _probe(w, counts, below, prefix, tmp_dom, tmp_pos, dev) >= 0:
            return hi
        hi = min(below, dev[0])
        mid = 0.5 * (lo + hi)
        if _probe(w, counts, mid, prefix, tmp_dom, tmp_pos, dev) < 0:
            hi = min(mid, dev[0])
        else:
            lo = mid
    return max(hi, lo + tol)  # (on a prefix where lo did not fail, still above lo)


@njit
def megatron_error(w, n):
    """The largest prefix error |C_i(s) - w_i s| of Megatron's `build_blending_indices` over its
    first n samples: the same loop and float arithmetic (the dataset with the largest
    w_i max(s, 1) - C_i, the first on ties)."""
    k = w.shape[0]
    cur = np.zeros(k)
    worst = 0.0
    for s in range(n):
        x = max(float(s), 1.0)
        best = 0
        top = w[0] * x - cur[0]
        for i in range(1, k):
            e = w[i] * x - cur[i]
            if e > top:
                top = e
                best = i
        cur[best] += 1.0
        for i in range(k):
            worst = max(worst, abs(cur[i] - w[i] * (s + 1)))
    return worst
