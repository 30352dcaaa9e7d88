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

from mixer.kernels._jit import njit


@njit
def _before(ka, da, kb, db):
    """Heap order: by key, ties by domain index (so the order is deterministic)."""
    return ka < kb or (ka == kb and da < db)


@njit
def _move(hk, hd, dst, src):
    hk[dst] = hk[src]
    hd[dst] = hd[src]


@njit
def _set(hk, hd, i, key, dom):
    hk[i] = key
    hd[i] = dom


@njit
def _push(hk, hd, n, key, dom):
    """Push (key, dom) on the binary min-heap hk/hd of size n; returns the new size."""
    c = n
    while c > 0:
        par = (c - 1) >> 1
        if _before(hk[par], hd[par], key, dom):
            break
        _move(hk, hd, c, par)
        c = par
    _set(hk, hd, c, key, dom)
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
        if ch + 1 < n and _before(hk[ch + 1], hd[ch + 1], hk[ch], hd[ch]):
            ch += 1
        if _before(key, dom, hk[ch], hd[ch]):
            break
        _move(hk, hd, c, ch)
        c = ch
    _set(hk, hd, c, key, dom)
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


@njit
def _ipush(h, n, key):
    c = n
    while c > 0:
        par = (c - 1) >> 1
        if h[par] <= key:
            break
        h[c] = h[par]
        c = par
    h[c] = key
    return n + 1


@njit
def _ipop(h, n):
    n -= 1
    key = h[n]
    c = 0
    while True:
        ch = 2 * c + 1
        if ch >= n:
            break
        if ch + 1 < n and h[ch + 1] < h[ch]:
            ch += 1
        if key <= h[ch]:
            break
        h[c] = h[ch]
        c = ch
    h[c] = key
    return n


@njit
def edf_items(counts, m, strict, out_dom, out_pos, limit=-1):
    """`edf` for unit items (domain i has counts[i] of them; N = sum), in exact integer
    arithmetic: item j (1-based) of domain i may be taken once p = ceil((jN - m) / T_i) - 1
    items precede it and must be by p = floor(((j - 1)N + m) / T_i). Both bounds advance by
    N / T_i per item, kept as quotient and remainder (no division per item). Released items
    wait in a heap packing (deadline << 16 | domain) into one int64, so ties go to the lower
    domain; items not yet released wait in a calendar of slots (one list per release
    position, O(1) each; the rare release further than the calendar's span waits in a heap).
    Same result as `edf` on unit segments up to ties (integer bounds tie more often; any EDF
    is exact); returns -1, or the first stream index that misses (strict). `limit` >= 0 stops
    after that many items: the items before any position do not depend on what comes after."""
    k = counts.shape[0]
    n = 0
    for i in range(k):
        n += counts[i]
    span = 1 << 16  # calendar slots: releases up to span - 1 positions ahead
    head = np.full(span, -1, np.int64)
    link = np.empty(k, np.int64)
    rq = np.empty(k, np.int64)  # release bound of the next item: quotient / remainder of (jN - m) by T
    rr = np.empty(k, np.int64)
    dq = np.empty(k, np.int64)  # deadline: quotient / remainder of ((j - 1)N + m) by T
    dr = np.empty(k, np.int64)
    step_q = np.empty(k, np.int64)
    step_r = np.empty(k, np.int64)
    taken = np.zeros(k, np.int64)
    far = np.empty(k, np.int64)  # heap of (release << 16 | domain) beyond the calendar
    ready = np.empty(k, np.int64)
    nf = 0
    nr = 0
    for i in range(k):
        t = counts[i]
        if t == 0:
            continue
        step_q[i], step_r[i] = n // t, n % t
        rq[i], rr[i] = (n - m) // t, (n - m) % t
        dq[i], dr[i] = m // t, m % t
        rel = rq[i] + (1 if rr[i] > 0 else 0) - 1
        if rel <= 0:
            nr = _ipush(ready, nr, (dq[i] << 16) | i)
        elif rel < span:
            link[i] = head[rel]
            head[rel] = i
        else:
            nf = _ipush(far, nf, (rel << 16) | i)
    mask = (1 << 16) - 1
    for p in range(n if limit < 0 else min(limit, n)):
        slot = p & (span - 1)
        i = head[slot]
        head[slot] = -1
        while i >= 0:  # released now
            nr = _ipush(ready, nr, (dq[i] << 16) | i)
            i = link[i]
        while nf > 0 and (far[0] >> 16) <= p:
            i = far[0] & mask
            nf = _ipop(far, nf)
            nr = _ipush(ready, nr, (dq[i] << 16) | i)
        if nr > 0:
            top = ready[0]
            if strict and (top >> 16) < p:
                return p
            i = top & mask
            nr = _ipop(ready, nr)
        else:
            if strict:
                return p
            nxt = p + 1  # nothing released: take the earliest release (non-strict only)
            while head[nxt & (span - 1)] < 0 and nxt < p + span and (nf == 0 or (far[0] >> 16) > nxt):
                nxt += 1
            if nf > 0 and (far[0] >> 16) <= nxt:
                i = far[0] & mask
                nf = _ipop(far, nf)
            else:
                i = head[nxt & (span - 1)]
                head[nxt & (span - 1)] = link[i]
        out_dom[p] = i
        out_pos[p] = taken[i]
        taken[i] += 1
        if taken[i] < counts[i]:
            rr[i] += step_r[i]
            rq[i] += step_q[i]
            if rr[i] >= counts[i]:
                rr[i] -= counts[i]
                rq[i] += 1
            dr[i] += step_r[i]
            dq[i] += step_q[i]
            if dr[i] >= counts[i]:
                dr[i] -= counts[i]
                dq[i] += 1
            rel = rq[i] + (1 if rr[i] > 0 else 0) - 1
            if rel <= p + 1:
                nr = _ipush(ready, nr, (dq[i] << 16) | i)
            elif rel < p + 1 + span:
                link[i] = head[rel & (span - 1)]
                head[rel & (span - 1)] = i
            else:
                nf = _ipush(far, nf, (rel << 16) | i)
    return -1


@njit
def smallest_feasible_items(counts, out_dom, out_pos):
    """`smallest_feasible` for unit items, with `edf_items`; returns m* (the deviation is m*/N).

    A tolerance that fails on a prefix fails on the whole stream, so the search runs on a
    prefix first (a few thousand items), probes the whole stream once at the prefix's answer,
    and when that fails at item f searches again on a prefix of at least 2f from there. Every
    tolerance below the first-item bound N - max T_i fails; Tijdeman's bound always holds."""
    k = counts.shape[0]
    n = 0
    t_max = 0
    live = 0
    for i in range(k):
        n += counts[i]
        t_max = max(t_max, counts[i])
        live += counts[i] > 0
    cap = np.int64(np.ceil(n * tijdeman_bound(live)))
    lo = n - t_max - 1  # fails
    tmp_dom = np.empty(n, out_dom.dtype)
    tmp_pos = np.empty(n, out_pos.dtype)
    prefix = min(n, 4096)
    while True:
        step = 1
        hi = min(lo + step, cap)
        while hi < cap and edf_items(counts, hi, True, tmp_dom, tmp_pos, prefix) >= 0:
            lo = hi
            step *= 4
            hi = min(lo + step, cap)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if edf_items(counts, mid, True, tmp_dom, tmp_pos, prefix) < 0:
                hi = mid
            else:
                lo = mid
        f = edf_items(counts, hi, True, out_dom, out_pos)
        if f < 0:
            return hi
        lo = hi  # fails on the whole stream (at item f): search a longer prefix above it
        prefix = min(n, max(2 * f + 2, 4 * prefix))
