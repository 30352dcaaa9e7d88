"""Selection without replacement: walk a domain's documents in permutation order until its
target is met exactly.

Causal: every chosen document is followed by one EOS, so it counts `len + 1` tokens; the
last one is cut to its first `need - 1` tokens (plus its EOS) so the domain contributes
exactly `target` tokens. Masked LM: one document per sequence, so the target is a number of
documents, each truncated to `max_content` tokens.

Both return at most one pass over the documents; the caller asks again with a fresh
permutation (the next epoch) when a pass is not enough and repetition is allowed.
"""
from __future__ import annotations

import numpy as np

from mixer.kernels._jit import njit
from mixer.kernels.permute import permutation, stream_key


@njit
def select_causal(lengths, perm, target):
    """lengths: int64[n], perm: int64[n], target: tokens wanted (>= 0).

    Returns (docs, counts, taken): document indices in selection order, the content tokens
    each contributes (its whole length, or less for the last), and the tokens taken counting
    one EOS per document; `taken == target` unless one pass cannot reach it.
    """
    n = perm.shape[0]
    docs = np.empty(n, dtype=np.int64)
    counts = np.empty(n, dtype=np.int64)
    need = target
    m = 0
    while m < n and need > 0:
        d = perm[m]
        length = lengths[d]
        docs[m] = d
        if length + 1 <= need:
            counts[m] = length
            need -= length + 1
        else:
            counts[m] = need - 1  # cut: the first need-1 tokens, then its EOS
            need = 0
        m += 1
    return docs[:m].copy(), counts[:m].copy(), target - need


@njit
def select_mlm(lengths, perm, n_docs, max_content):
    """One document per sequence: the first `n_docs` of `perm` (at most one pass), each
    truncated to `max_content` tokens. Returns (docs, counts)."""
    m = min(n_docs, perm.shape[0])
    docs = perm[:m].copy()
    counts = np.empty(m, dtype=np.int64)
    for k in range(m):
        counts[k] = min(lengths[docs[k]], max_content)
    return docs, counts


@njit
def select_causal_first_passes(lengths, dom_start, targets, seed, domain_hashes):
    """`select_causal` over the first permutation (epoch 0) of every domain in one call: what a
    plan of many small domains otherwise pays per domain in calls from Python (10,000 domains).
    lengths: int64, each domain's documents back to back (domain i at dom_start[i]:dom_start[i+1]);
    targets: int64[K] (0: skipped). Returns (docs, counts, picked, taken): domain i's documents and
    their counts at docs[dom_start[i]:dom_start[i] + picked[i]], and the tokens its pass gave
    (`taken[i] < targets[i]`: one pass was not enough, the caller goes on to further epochs)."""
    k = dom_start.shape[0] - 1
    docs = np.empty(lengths.shape[0], dtype=np.int64)
    counts = np.empty(lengths.shape[0], dtype=np.int64)
    picked = np.zeros(k, dtype=np.int64)
    taken = np.zeros(k, dtype=np.int64)
    for i in range(k):
        if targets[i] == 0:
            continue
        a, b = dom_start[i], dom_start[i + 1]
        d, c, t = select_causal(lengths[a:b], permutation(b - a, stream_key(seed, domain_hashes[i], 0)), targets[i])
        m = d.shape[0]
        docs[a:a + m] = d
        counts[a:a + m] = c
        picked[i] = m
        taken[i] = t
    return docs, counts, picked, taken
