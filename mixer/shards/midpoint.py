"""The stratified interleave of a build (`mixer.kernels.interleave`'s midpoint merge), with its
keys and merge split over threads, or past `SORT_FROM_DOMAINS` domains one stable sort.

Its kernels are called through `mixer.kernels.aot.kernel`, so `mixer build-shards` runs the
compiled ones (`mixer.kernels.aot`); the order is the same whichever runs, for any thread count.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mixer.kernels.aot import kernel

SORT_FROM_DOMAINS = 64  # above: a stable sort instead of the merge (equal at K = 64, M = 10M; 140x at K = 10,000)


def interleave_midpoint_threaded(seg_len: np.ndarray, dom_start: np.ndarray, threads: int = 2,
                                 out_dom: np.ndarray | None = None, out_pos: np.ndarray | None = None):
    """`mixer.kernels.interleave.interleave_midpoint` with the keys and the merge split over
    `threads` threads (the kernels release the GIL); the result is identical for any thread
    count. Above `SORT_FROM_DOMAINS` domains the same order comes from one stable sort of the keys."""

    midpoint_keys, lane_bounds, merge_lanes = kernel("midpoint_keys"), kernel("lane_bounds"), kernel("merge_lanes")
    m = int(dom_start[-1])
    key = np.empty(m, dtype=np.float64)
    out_dom = np.empty(m, dtype=np.int16) if out_dom is None else out_dom
    out_pos = np.empty(m, dtype=np.int64) if out_pos is None else out_pos
    k = len(dom_start) - 1
    if k > SORT_FROM_DOMAINS and m and int(seg_len.min()) >= 1:
        # The merge costs O(M K): past ~64 domains a stable sort of the keys is cheaper. The keys are
        # K increasing runs laid out in domain order, so the stable sort (a run-detecting merge,
        # O(M log K)) orders by (key, domain), exactly the merge's order (keys are finite: no
        # segment is empty, so no domain has 0 tokens).
        midpoint_keys(seg_len, dom_start, key)
        order = np.argsort(key, kind="stable")
        dom = np.repeat(np.arange(k), np.diff(dom_start))[order]
        out_dom[:] = dom
        np.subtract(order, dom_start[dom], out=out_pos)
        return out_dom, out_pos
    if threads <= 1 or m < 1 << 16:
        midpoint_keys(seg_len, dom_start, key)
        merge_lanes(key, dom_start, lane_bounds(key, dom_start, 2), out_dom, out_pos)
        return out_dom, out_pos
    with ThreadPoolExecutor(threads) as pool:
        # Keys: whole domains per thread, largest first onto the least loaded thread.
        sizes = np.diff(dom_start)
        groups, load = [[] for _ in range(threads)], [0] * threads
        for i in np.argsort(-sizes, kind="stable"):
            t = load.index(min(load))
            groups[t].append(int(i))
            load[t] += int(sizes[i])

        def keys_of(doms):
            for i in doms:
                midpoint_keys(seg_len, dom_start[i:i + 2], key)

        list(pool.map(keys_of, groups))
        bounds = lane_bounds(key, dom_start, 2 * threads)  # two lanes per thread
        list(pool.map(lambda q: merge_lanes(key, dom_start, bounds[2 * q:2 * q + 3], out_dom, out_pos),
                      range(threads)))
    return out_dom, out_pos
