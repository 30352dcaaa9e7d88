"""Per-domain token targets by largest remainder: `T_i ≈ w_i N` with `Σ T_i = N` exactly.

Each domain gets the floor of its quota `w_i N`; the tokens left over go one each to the
domains with the largest fractional parts (ties: the lower domain index). A domain of
weight 0 never receives a token.
"""
from __future__ import annotations

import numpy as np

from mixer.kernels._jit import njit


@njit
def largest_remainder(weights, total):
    """weights: float64[K] (>= 0, any positive sum), total: int -> int64[K] summing to `total`."""
    k = weights.shape[0]
    s = 0.0
    for i in range(k):
        s += weights[i]
    quotas = np.empty(k, dtype=np.float64)
    out = np.empty(k, dtype=np.int64)
    frac = np.empty(k, dtype=np.float64)
    given = 0
    for i in range(k):
        quotas[i] = weights[i] / s * total
        out[i] = np.int64(np.floor(quotas[i]))
        frac[i] = quotas[i] - out[i]
        given += out[i]
    left = total - given
    # Stable sort on -frac: equal remainders favour the lower index.
    order = np.argsort(-frac, kind="mergesort")
    while left > 0:  # one pass suffices in exact arithmetic; the loop absorbs rounding
        for r in range(k):
            i = order[r]
            if left > 0 and weights[i] > 0:
                out[i] += 1
                left -= 1
    while left < 0:  # float rounding pushed the floors over `total`: take back from the smallest remainders
        for r in range(k - 1, -1, -1):
            i = order[r]
            if left < 0 and out[i] > 0:
                out[i] -= 1
                left += 1
    return out
