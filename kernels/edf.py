"""The interleave with the smallest prefix deviation: earliest deadline first over tolerance windows.

Domain i owns T_i of the stream's N tokens (share s_i = T_i / N); its segment j covers tokens
[a, a + l) of the domain's own stream. For a tolerance B, a prefix of P tokens must hold
|C_i(P) - s_i P| <= B·l for every domain, where l is the length of the segment of i that the
constraint is about (1 for unit items, Megatron's samples). Placing segment (a, l) at stream
position p meets the upper side iff p >= release = (a + l - B l) / s_i - l, and keeps the lower
side of every earlier prefix iff p <= deadline = (a + B l) / s_i. Each segment is then a job
with a window, and `edf` schedules them: at each position it takes, among the released
segments, the one with the earliest deadline (ties: lower domain), with a heap of released
segments and one of waiting ones, so O(M log K) for M segments.

For unit items this is the chairman assignment problem. EDF finds a schedule whenever one
exists (unit jobs, integer windows), and Tijdeman (1980) showed one exists for
B = 1 - 1/(2(K-1)), so `edf` never fails there. `smallest_feasible` searches the smallest
B = m/N that EDF meets (all windows change only at multiples of 1/N), so the stream has the
smallest maximum prefix deviation of any order with these counts: in particular no larger than
Megatron's greedy blend on the same shares, and at most 1 - 1/(2(K-1)).
"""
from __future__ import annotations

import numpy as np

from kernels._jit import njit


@njit
def _push(hk, hd, n, key, dom):
    """Push (key, dom) on the binary min-heap hk/hd of size n; returns the new size."""
    c = n
    while c > 0:
        par = (c - 1) >> 1
        if hk[par] < key or (hk[par] == key and hd[par] < dom):
            break
        hk[c] = hk[par]
        hd[c] = hd[par]
        c = par
    hk[c] = key
    hd[c] = dom
    return n + 1


@njit
def _pop(hk, hd, n):
    """Remove the top of the heap of size n (n >= 1); returns the new size."""
    n -= 1
    key, dom = hk[n], hd[n]
    c = 0
    while True:
        ch = 2 * c + 1
        if ch >= n:
            break
        if ch + 1 < n and (hk[ch + 1] < hk[ch] or (hk[ch + 1] == hk[ch] and hd[ch + 1] < hd[ch])):
            ch += 1
        if key < hk[ch] or (key == hk[ch] and dom < hd[ch]):
            break
        hk[c] = hk[ch]
        hd[c] = hd[ch]
        c = ch
    hk[c] = key
    hd[c] = dom
    return n


@njit
def _window(a, ln, total, n, m):
    """(release, deadline) of a segment [a, a + ln) of a domain of `total` tokens in a stream of
    n, tolerance m / n: ((a + ln) n - m ln) / total - ln and (a n + m ln) / total."""
    release = ((a + ln) * float(n) - m * float(ln)) / total - ln
    deadline = (a * float(n) + m * float(ln)) / total
    return release, deadline


@njit
def edf(seg_len, dom_start, m, strict, out_dom, out_pos):
    """Schedule every segment at tolerance m / N (N = total tokens) by earliest deadline.
    (For unit items m / N is the deviation bound B; for segments it scales with their length.)

    Writes out_dom / out_pos (domain, index within domain) in stream order. With `strict`, stops
    at the first segment that misses its deadline or is taken before its release (no released
    segment left) and returns its stream index; returns -1 when all windows are met. Without
    `strict` it always completes (a late or early segment is taken anyway)."""
    k = dom_start.shape[0] - 1
    total = np.zeros(k, np.float64)
    for i in range(k):
        for j in range(dom_start[i], dom_start[i + 1]):
            total[i] += seg_len[j]
    n = 0.0
    for i in range(k):
        n += total[i]
    nxt = dom_start[:-1].copy()  # next segment of each domain
    done = np.zeros(k, np.float64)  # tokens of each domain already placed
    wk = np.empty(k, np.float64)  # waiting heap: keyed by release
    wd = np.empty(k, np.int64)
    rk = np.empty(k, np.float64)  # ready heap: keyed by deadline
    rd = np.empty(k, np.int64)
    dl = np.empty(k, np.float64)  # deadline of each domain's next segment
    nw = 0
    nr = 0
    for i in range(k):
        if nxt[i] < dom_start[i + 1]:
            r, d = _window(0.0, seg_len[nxt[i]], total[i], n, m)
            dl[i] = d
            nw = _push(wk, wd, nw, r, i)
    p = 0.0
    m_seg = dom_start[k]
    for t in range(m_seg):
        while nw > 0 and wk[0] <= p:
            i = wd[0]
            nw = _pop(wk, wd, nw)
            nr = _push(rk, rd, nr, dl[i], i)
        if nr > 0:
            i = rd[0]
            if strict and dl[i] < p:
                return t
            nr = _pop(rk, rd, nr)
        else:
            if strict:
                return t
            i = wd[0]
            nw = _pop(wk, wd, nw)
        j = nxt[i]
        ln = seg_len[j]
        out_dom[t] = i
        out_pos[t] = j - dom_start[i]
        p += ln
        done[i] += ln
        nxt[i] = j + 1
        if j + 1 < dom_start[i + 1]:
            r, d = _window(done[i], seg_len[j + 1], total[i], n, m)
            dl[i] = d
            if r <= p:
                nr = _push(rk, rd, nr, d, i)
            else:
                nw = _push(wk, wd, nw, r, i)
    return -1


@njit
def tijdeman_bound(k):
    """1 - 1/(2(K-1)): the deviation Tijdeman proved always achievable for unit items (K >= 2)."""
    return 0.0 if k < 2 else 1.0 - 1.0 / (2.0 * (k - 1))


@njit
def smallest_feasible(seg_len, dom_start, out_dom, out_pos):
    """The stream at the smallest integer m that `edf` meets (see the module docstring); returns m.

    Any order's first segment, of domain i, leaves a deviation of l (1 - s_i), so
    for unit items m >= N - max_i T_i: the search probes that
    lower bound first (often the answer when K is large), then steps up exponentially and
    bisects. A failing probe stops at its first miss. Unit items never need more than
    Tijdeman's bound; unequal segments keep doubling, and past 2N take the non-strict schedule.
    out_dom / out_pos hold the stream at the returned m whatever the probes were, so the result
    is deterministic."""
    k = dom_start.shape[0] - 1
    n = 0
    t_max = 0
    for i in range(k):
        t = 0
        for j in range(dom_start[i], dom_start[i + 1]):
            t += seg_len[j]
        n += t
        t_max = max(t_max, t)
    lo = float(n - t_max) - 1.0  # below the first-segment bound (exact for unit items): infeasible
    step = 1.0
    hi = lo + step
    while edf(seg_len, dom_start, hi, True, out_dom, out_pos) >= 0:
        if hi > 2.0 * n:
            edf(seg_len, dom_start, hi, False, out_dom, out_pos)
            return hi
        lo = hi
        step *= 4.0
        hi = lo + step
    tmp_dom = np.empty_like(out_dom)
    tmp_pos = np.empty_like(out_pos)
    while hi - lo > 1.0:
        mid = np.floor((lo + hi) / 2.0)
        if edf(seg_len, dom_start, mid, True, tmp_dom, tmp_pos) < 0:
            hi = mid
            out_dom[:] = tmp_dom
            out_pos[:] = tmp_pos
        else:
            lo = mid
    return hi
