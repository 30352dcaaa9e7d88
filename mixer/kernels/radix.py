"""Stable argsort of unsigned 64-bit keys by LSD radix sort: O(n), equal to
`np.argsort(keys, kind="stable")` element for element.

Used for the seeded permutation (sort by hash) and to put a gather's reads in address order.
"""
from __future__ import annotations

import numpy as np

from mixer.kernels._jit import njit

_BITS = 16
_BUCKETS = 1 << _BITS


@njit
def argsort_u64(keys):
    """keys: uint64[n] -> int64[n], the stable ascending order. Passes over all-equal digits are skipped."""
    n = keys.shape[0]
    order = np.arange(n, dtype=np.int64)
    if n < 2:
        return order
    tmp = np.empty(n, dtype=np.int64)
    # Highest set bit over all keys: passes above it would move nothing.
    acc = np.uint64(0)
    for i in range(n):
        acc |= keys[i]
    count = np.zeros(_BUCKETS + 1, dtype=np.int64)
    mask = np.uint64(_BUCKETS - 1)
    for p in range(4):
        shift = np.uint64(p * _BITS)
        if (acc >> shift) == np.uint64(0):
            break
        count[:] = 0
        for i in range(n):
            count[np.int64((keys[i] >> shift) & mask) + 1] += 1
        if count[np.int64((keys[order[0]] >> shift) & mask) + 1] == n:
            continue  # every key has this digit: the order is unchanged
        for b in range(_BUCKETS):
            count[b + 1] += count[b]
        for i in range(n):
            j = order[i]
            b = np.int64((keys[j] >> shift) & mask)
            tmp[count[b]] = j
            count[b] += 1
        order, tmp = tmp, order
    return order
