"""`blend.py`'s whole-stream EDF pass with many lanes side by side: the speed of `blend_items`.

At a tolerance b < 1 the stream is cut at forced slots (every order within b has the same
counts there, `forced_counts`), so each lane is EDF from known counts, and the lanes together
give the one-lane stream whenever every lane meets its windows and ends on the next lane's
counts (a lane that fails says nothing about where one lane would fail: `blend.full_pass` then
asks the lock-step scan, whose first miss steers the tolerance search).

Why side by side: the state of lane q for domain i sits at [i * L + q], so the scan for the
earliest deadline is one loop over the K domains whose body runs over the L lanes elementwise
(vector instructions, no branch). Each head is one float pair: the key deadline * 2^16 + i
(exact below 2^53: `wide_ok`) and the release * 2^60; max(key, release * 2^60 - p * 2^60) is
the key when the head is released at slot p and at least 2^60 when not, so a plain min picks
EDF's head (ties: the lower domain, as the packed integer keys of `blend.scan_lanes`). The
window of a domain's next item is computed one item ahead, off the chain from slot to slot.

Each lane's slots are staged (`STAGE` at a time, in a block that stays in the L1 cache) and
written out together: 32 lanes storing straight into their own stretches of the two output
arrays are 64 write streams a slot apart, more pages than the first-level TLB holds, and those
stores took 60 % of the pass (K = 7, 10M items: 0.16 s, 0.06 s without them, 0.08 s staged;
the same output). Staged, 24 lanes are as fast as 32 and steadier (32 lanes: 0.08 or 0.12 s
from one run to the next). Any number of lanes gives the same stream: a lane starts from
forced counts, so it is the one-lane stream's stretch whenever that one meets its windows.
"""
from __future__ import annotations

import numpy as np

from mixer.kernels._jit import njit

WIDE = 24  # lanes side by side (K = 7, staged: 8 lanes 0.11 s, 16 0.085 s, 24 0.08 s, 32 0.08-0.12 s)
STAGE = 32  # slots a lane holds before writing them out together
_SC = 2.0 ** 60
_EXACT = 2.0 ** 36  # deadlines below it keep deadline * 2^16 + i exact in a float64


@njit
def forced_counts(w, counts, b, p, out):
    """True, with the counts in `out`, when every order within tolerance b has those counts
    after p slots (each domain's window holds one integer, and they add up to p)."""
    s = 0
    for i in range(counts.shape[0]):
        lo = max(0, np.int64(np.ceil(w[i] * p - b)))
        hi = min(counts[i], np.int64(np.floor(w[i] * p + b)))
        if lo != hi:
            return False
        out[i] = lo
        s += lo
    return s == p


@njit
def lane_splits(w, counts, b, n_lanes, patient=True, limit=-1):
    """(bounds int64[L + 1], start int64[L, K]): at most n_lanes lanes cut at forced slots, the
    first at or after q N / n_lanes (searched over 2^16 slots; fewer lanes where none is).
    Not `patient`: stop at the first lane without one (where forced slots are that rare, as at
    K = 30, a later search would most likely scan its 2^16 slots in vain too). `limit` >= 0:
    lanes of the first `limit` slots only (N = limit), for a probe on a prefix."""
    k = counts.shape[0]
    n = 0
    for i in range(k):
        n += counts[i]
    if limit >= 0:
        n = min(n, limit)
    bounds = np.zeros(n_lanes + 1, np.int64)
    start = np.zeros((n_lanes, k), np.int64)
    c = np.empty(k, np.int64)
    m = 1
    for q in range(1, n_lanes if b < 1.0 else 1):
        p = max(q * n // n_lanes, bounds[m - 1] + 1)
        while p < min(n, q * n // n_lanes + (1 << 16)) and not forced_counts(w, counts, b, p, c):
            p += 1
        if p < n and forced_counts(w, counts, b, p, c):
            bounds[m] = p
            start[m] = c
            m += 1
        elif not patient:
            break
    bounds[m] = n
    return bounds[:m + 1].copy(), start[:m].copy()


@njit
def _head(j, b, inv_w, i):
    """(release * 2^60, deadline * 2^16 + i) of item j (1-based) of domain i, as floats: the
    same products as `blend._window` (ceil, floor), so the same integers."""
    return (np.ceil((j - b) * inv_w) - 1.0) * _SC, np.floor((j - 1 + b) * inv_w) * 65536.0 + i


@njit
def wide_ok(w, counts, b):
    """True when every deadline stays below 2^36 (then the float keys are exact)."""
    for i in range(counts.shape[0]):
        if counts[i] > 0 and (counts[i] - 1 + b) / w[i] >= _EXACT:
            return False
    return True


@njit
def wide_lanes(w, counts, b, limit=-1):
    """The lanes of `wide_pass`: cut at forced slots, not patiently (where forced slots are rare
    the search would scan 2^16 slots per lane in vain); but once a quarter of the lanes are found,
    the rest are searched for patiently, so that no one lane runs on over most of the stream
    alone (a weight vector at K = 7: 7 lanes, the last 7.5M slots of 10M, 0.40 s; 23 lanes 0.16 s)."""
    bounds, start = lane_splits(w, counts, b, WIDE, False, limit)
    if WIDE // 4 <= bounds.shape[0] - 1 < WIDE:
        return lane_splits(w, counts, b, WIDE, True, limit)
    return bounds, start


@njit
def _flush(staged, q, n, at, out_dom, out_pos):
    """Lane q's first n staged slots written to out[at:at + n]."""
    for u in range(n):
        out_dom[np.uint64(at + u)] = staged[0][q, u]  # (unsigned: no wraparound test)
        out_pos[np.uint64(at + u)] = staged[1][q, u]


@njit
def wide_pass(w, counts, b, out_dom, out_pos, limit=-1):
    """EDF at tolerance b over the whole stream on up to `WIDE` lanes side by side; the stream's
    largest prefix error (the same float as one lane's) when every lane meets its windows and
    ends on the counts the next lane starts from, else -1.0 (the output is then partial); -1.0
    too, untried, where fewer than WIDE / 4 lanes are found (one lane side by side with nothing
    is slower than the lock-step scan: at K = 30 forced slots are that rare). `limit` >= 0: the
    first `limit` slots only (a probe of `blend.search`; the last lane then ends anywhere)."""
    bounds, start = wide_lanes(w, counts, b, limit)
    k = counts.shape[0]
    m = bounds.shape[0] - 1
    if m < WIDE // 4:
        return -1.0
    inv = np.zeros(k)
    for i in range(k):
        if counts[i] > 0:
            inv[i] = 1.0 / w[i]
    key = np.full(k * m, np.inf)  # the head's; nkey, nrel: the next item's
    rel = np.full(k * m, np.inf)
    nkey = np.full(k * m, np.inf)
    nrel = np.full(k * m, np.inf)
    taken = np.zeros(k * m, np.int64)
    worst = np.zeros(m)
    pos = bounds[:-1].copy()
    best = np.empty(m)
    ps = np.empty(m)
    staged = (np.empty((m, STAGE), out_dom.dtype), np.empty((m, STAGE), out_pos.dtype))
    fill = np.zeros(m, np.int64)
    longest = 0
    for q in range(m):
        longest = max(longest, bounds[q + 1] - bounds[q])
        for i in range(k):
            t = start[q, i]
            taken[i * m + q] = t
            if t < counts[i]:
                rel[i * m + q], key[i * m + q] = _head(t + 1.0, b, inv[i], i)
            if t + 1 < counts[i]:
                nrel[i * m + q], nkey[i * m + q] = _head(t + 2.0, b, inv[i], i)
    for _ in range(longest):
        for q in range(m):
            ps[q] = pos[q] * _SC
            best[q] = np.inf
        for i in range(k):  # the scan: elementwise over the lanes
            o = i * m
            for q in range(m):
                x = rel[o + q] - ps[q]
                x = max(x, key[o + q])
                best[q] = min(best[q], x)
        for q in range(m):
            p = pos[q]
            if p >= bounds[q + 1]:
                continue
            v = best[q]
            if v >= 2.0 ** 53 or v < p * 65536.0:  # none released, or a deadline passed
                return -1.0
            i = np.int64(v) & 0xFFFF
            oi = i * m + q
            c = taken[oi]
            s = fill[q]
            staged[0][q, s] = i
            staged[1][q, s] = c
            fill[q] = s + 1
            if s + 1 == STAGE:
                _flush(staged, q, STAGE, p + 1 - STAGE, out_dom, out_pos)
                fill[q] = 0
            key[oi] = nkey[oi]
            rel[oi] = nrel[oi]
            worst[q] = max(worst[q], w[i] * p - c, (c + 1.0) - w[i] * (p + 1))  # just before / after it
            c += 1
            taken[oi] = c
            if c + 1 < counts[i]:
                nrel[oi], nkey[oi] = _head(c + 2.0, b, inv[i], i)
            else:
                nrel[oi] = np.inf
                nkey[oi] = np.inf
            pos[q] = p + 1
    for q in range(m):  # each lane's staged tail
        _flush(staged, q, fill[q], pos[q] - fill[q], out_dom, out_pos)
    dev = 0.0
    for q in range(m):
        end = bounds[q + 1]
        for i in range(k):  # every domain's last prefix in the lane (dominated but for the last lane)
            dev = max(dev, worst[q], abs(taken[i * m + q] - w[i] * end))
            if (q + 1 < m and taken[i * m + q] != start[q + 1, i]) or \
                    (q + 1 == m and limit < 0 and taken[i * m + q] != counts[i]):
                return -1.0
    return dev
