"""The prefix deviation of an interleaved stream: how far any prefix strays from the shares.

For a stream of segments (domain `d_t`, length `l_t`) and shares `s`, the deviation is
max over prefixes P (at segment ends) and domains i of |C_i(P) - s_i P|, where C_i(P) counts
domain i's tokens (or items, with l = 1) in the prefix. This is what Megatron's blending
measures for samples. Between two segments of domain i its count is constant while P grows,
so the extremes for i lie at the ends of its own segments and at the starts of its next
ones: one pass, O(M + K), instead of checking every domain after every segment (O(M K)).
"""
from __future__ import annotations

import numpy as np

from mixer.kernels._jit import njit


@njit
def max_prefix_deviation(stream_dom, stream_len, shares):
    """max_{P, i} |C_i(P) - shares[i] P| over prefixes ending at segment boundaries."""
    k = shares.shape[0]
    c = np.zeros(k, dtype=np.float64)
    p = 0.0
    worst = 0.0
    for t in range(stream_dom.shape[0]):
        d = stream_dom[t]
        before = abs(c[d] - shares[d] * p)  # the last prefix before this segment of d
        c[d] += stream_len[t]
        p += stream_len[t]
        after = abs(c[d] - shares[d] * p)  # the first prefix after it
        worst = max(worst, before, after)
    for i in range(k):
        worst = max(worst, abs(c[i] - shares[i] * p))
    return worst


@njit
def max_prefix_deviation_items(stream_dom, shares):
    """`max_prefix_deviation` for unit items (Megatron's samples)."""
    return max_prefix_deviation(stream_dom, np.ones(stream_dom.shape[0], np.float64), shares)
