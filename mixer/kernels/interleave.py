"""The stratified interleave: merge the domains' segment streams by fractional midpoint.

Segment j of domain i occupies tokens [a, a + l) of that domain's own stream of T_i tokens;
its key is the fraction (a + l/2) / T_i, computed as (2a + l) / (2 T_i). The mixture is all
segments sorted by (key, domain). Each domain's keys increase along its stream, so this is a
K-way merge, O(M K), with no sort; and since every segment with key < f precedes every one
with key >= f, the merge splits into independent lanes at any fractions f (`lane_bounds`),
merged in lock-step by one thread or side by side by several (`mixer.shards.midpoint`).

Guarantee: after any whole segment with key f, every domain i has delivered C_i tokens with
f T_i - l_next/2 <= C_i <= f T_i + l_last/2, where l_last / l_next are its segments on either
side of f: each domain is within half of one of its own documents of its share of the stream.
"""
from __future__ import annotations

import numpy as np

from mixer.kernels._jit import njit


@njit
def midpoint_keys(seg_len, dom_start, key):
    """Fill key[j] = (2 a_j + l_j) / (2 T_i) for the segments of every domain i."""
    k = dom_start.shape[0] - 1
    for i in range(k):
        s = 0
        for j in range(dom_start[i], dom_start[i + 1]):
            s += seg_len[j]
        two_t = 2.0 * s
        a = 0
        for j in range(dom_start[i], dom_start[i + 1]):
            ln = seg_len[j]
            key[j] = (2 * a + ln) / two_t
            a += ln


@njit
def lane_bounds(key, dom_start, n_lanes):
    """int64[n_lanes + 1, K]: lane q merges segments bounds[q, i] .. bounds[q + 1, i] of each
    domain i, those with key in [q / n_lanes, (q + 1) / n_lanes)."""
    k = dom_start.shape[0] - 1
    out = np.empty((n_lanes + 1, k), dtype=np.int64)
    for i in range(k):
        lo, hi = dom_start[i], dom_start[i + 1]
        out[0, i] = lo
        out[n_lanes, i] = hi
        for q in range(1, n_lanes):
            out[q, i] = lo + np.searchsorted(key[lo:hi], q / n_lanes, side="left")
    return out


@njit
def merge_lanes(key, dom_start, bounds, out_dom, out_pos):
    """Merge lanes bounds[q]..bounds[q+1] (q < len(bounds) - 1; see `lane_bounds`) by (key,
    domain) into out_dom / out_pos at their place in the whole stream: the domain and the index
    of the segment within its domain. The lanes advance in lock-step, one step each per round:
    their dependency chains (argmin -> load the next key) are independent, so the CPU overlaps
    them (measured 1.6x faster with 2 lanes than one)."""
    k = dom_start.shape[0] - 1
    n_lanes = bounds.shape[0] - 1
    cur = bounds[:-1].copy()  # [lanes, K]: next segment of each domain in each lane
    hi = bounds[1:].copy()
    head = np.empty((n_lanes, k), dtype=np.float64)
    pos = np.zeros(n_lanes, dtype=np.int64)
    end = np.zeros(n_lanes, dtype=np.int64)
    p = 0
    for i in range(k):
        p += bounds[0, i] - dom_start[i]  # segments of earlier lanes come first in the stream
    longest = 0
    for q in range(n_lanes):
        pos[q] = p
        for i in range(k):
            head[q, i] = key[cur[q, i]] if cur[q, i] < hi[q, i] else np.inf
            p += hi[q, i] - cur[q, i]
        end[q] = p
        longest = max(longest, end[q] - pos[q])
    for _ in range(longest):
        for q in range(n_lanes):
            t = pos[q]
            if t >= end[q]:
                continue
            best = 0
            bkey = head[q, 0]
            for i in range(1, k):
                h = head[q, i]
                if h < bkey:  # strict: equal keys go to the lower domain
                    bkey = h
                    best = i
            c = cur[q, best]
            out_dom[t] = best
            out_pos[t] = c - dom_start[best]
            c += 1
            cur[q, best] = c
            head[q, best] = key[c] if c < hi[q, best] else np.inf
            pos[q] = t + 1


@njit
def interleave_midpoint(seg_len, dom_start):
    """seg_len: int64[M], each domain's segments back to back; dom_start: int64[K+1] where
    domain i holds seg_len[dom_start[i]:dom_start[i+1]].

    Returns (stream_dom: int16[M], stream_pos: int64[M]): for every position of the mixed
    stream, the domain and the index of the segment within that domain.
    """
    m = dom_start[-1]
    key = np.empty(m, dtype=np.float64)
    midpoint_keys(seg_len, dom_start, key)
    out_dom = np.empty(m, dtype=np.int16)
    out_pos = np.empty(m, dtype=np.int64)
    merge_lanes(key, dom_start, lane_bounds(key, dom_start, 2), out_dom, out_pos)
    return out_dom, out_pos


@njit
def prefix_deviation(stream_dom, stream_len, shares):
    """Largest |C_i - s_i P| over every prefix P of the stream (checked at segment ends, where
    the extremes lie) and every domain i. stream_len: tokens of each stream segment (1 for items)."""
    k = shares.shape[0]
    c = np.zeros(k, dtype=np.float64)
    p = 0.0
    worst = 0.0
    for t in range(stream_dom.shape[0]):
        c[stream_dom[t]] += stream_len[t]
        p += stream_len[t]
        for i in range(k):
            d = abs(c[i] - shares[i] * p)
            if d > worst:
                worst = d
    return worst
