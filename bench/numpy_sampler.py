"""The causal sampler written with NumPy only: the baseline for `bench.sampler`.

Same plan and same output as `mixer.shards.plan.build_plan` + `mixer.shards.gather.gather_sequences`
(the benchmark checks the tokens are equal): largest-remainder targets, permutation by
sorting splitmix64 hashes, cumulative-sum selection, the stream order, and a gather.

Two gathers, so the baseline is a competent one: `"slices"`, a Python loop of slice copies
`out[d:d+c] = values[s:s+c]` (one memcpy per document; the fast way), and `"fancy"`, fancy
indexing with ragged `arange`s (no Python loop, but it builds int64 index arrays as long as
the stream, which costs 8x more here). The stream order is taken from mixer's own interleave
kernel (`order=`) when given, so the baseline times plan arithmetic and copying rather than
re-implementing a merge; without it the midpoint order is recomputed with `np.lexsort`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import xxhash

from mixer.formats.corpus import load_manifest, open_split

_MASK_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix(x: np.ndarray) -> np.ndarray:
    z = x + _MASK_GOLDEN  # uint64 arrays wrap silently
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _key(seed: int, name: str, epoch: int) -> np.ndarray:
    k = _splitmix(np.array([seed], np.uint64))
    k = _splitmix(k ^ np.array([xxhash.xxh64_intdigest(name.encode())], np.uint64))
    return _splitmix(k ^ np.array([epoch], np.uint64))


def largest_remainder(w: np.ndarray, n: int) -> np.ndarray:
    q = w / w.sum() * n
    t = np.floor(q).astype(np.int64)
    order = np.argsort(-(q - t), kind="stable")
    order = order[w[order] > 0]
    t[order[: n - t.sum()]] += 1
    return t


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """[0..c0), [0..c1), ... concatenated."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def sample(corpus_dir: str | Path, weights: Mapping[str, float], tokens: int, seq_len: int, seed: int,
           gather: str = "slices", interleave=None) -> np.ndarray:
    """The causal stream as `[tokens // seq_len, seq_len]` (no repetition: every domain must be large enough).

    `interleave(seg_len, dom_start) -> (stream_dom, stream_pos)` orders the segments (mixer's
    kernel, so both sides produce the same stream); None sorts them by midpoint with lexsort."""
    manifest = load_manifest(corpus_dir)
    names = sorted(weights)
    w = np.array([weights[d] for d in names], np.float64)
    budget = tokens // seq_len * seq_len
    targets = largest_remainder(w, budget)
    per_dom = []  # (counts, part, src) in selection order, per domain
    values = []
    for i, name in enumerate(names):
        if targets[i] == 0:
            per_dom.append((np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)))
            continue
        split = open_split(corpus_dir, name, "train", manifest)
        lengths = split.lengths()
        n = len(lengths)
        h = _splitmix(_key(seed, name, 0) + np.arange(n, dtype=np.uint64) * _MASK_GOLDEN)
        perm = np.argsort(h, kind="stable")
        cum = np.cumsum(lengths[perm] + 1)
        m = int(np.searchsorted(cum, targets[i], side="left")) + 1
        if m > n:
            raise ValueError(f"domain {name!r} is too small for its target")
        docs = perm[:m]
        counts = lengths[docs].copy()
        counts[-1] = targets[i] - (cum[m - 2] if m > 1 else 0) - 1
        first = np.cumsum([0] + [len(p.doc_ids) for p in split.parts])
        local = np.searchsorted(first, docs, side="right") - 1
        src = np.empty(m, np.int64)
        for p, part in enumerate(split.parts):  # one iteration per Arrow file, not per document
            sel = local == p
            src[sel] = part.offsets[docs[sel] - first[p]]
        per_dom.append((counts, local + len(values), src))
        values += [p.values for p in split.parts]

    if interleave is not None:
        seg_len = np.concatenate([c + 1 for c, _, _ in per_dom]).astype(np.int64)
        dom_start = np.cumsum([0] + [len(c) for c, _, _ in per_dom]).astype(np.int64)
        sd, sp = interleave(seg_len, dom_start)
        order = dom_start[sd] + sp
    else:  # sort every segment by the fractional midpoint within its domain
        keys, doms = [], []
        for i, (counts, _, _) in enumerate(per_dom):
            ln = counts + 1
            a = np.cumsum(ln) - ln
            keys.append((2 * a + ln) / (2.0 * ln.sum()) if len(ln) else np.zeros(0))
            doms.append(np.full(len(ln), i))
        key, dom = np.concatenate(keys), np.concatenate(doms)
        order = np.lexsort((dom, key))
    counts = np.concatenate([c for c, _, _ in per_dom])[order]
    part = np.concatenate([p for _, p, _ in per_dom])[order]
    src = np.concatenate([s for _, _, s in per_dom])[order]
    dst = np.cumsum(counts + 1) - (counts + 1)

    out = np.empty(budget, dtype=manifest.token_dtype)
    out[dst + counts] = manifest.eos_id
    if gather in ("slices", "slices-address", "slices-2t"):  # one slice copy (a memcpy) per segment
        o = np.lexsort((src, part)) if gather == "slices-address" else np.arange(len(dst))

        def copy(sel: np.ndarray) -> None:
            for d, s_, c, p in zip(dst[sel].tolist(), src[sel].tolist(), counts[sel].tolist(), part[sel].tolist()):
                out[d:d + c] = values[p][s_:s_ + c]

        if gather == "slices-2t":  # the same loop on two threads, each over half of the segments
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(copy, np.array_split(o, 2)))
        else:
            copy(o)
        return out.reshape(-1, seq_len)
    for p, vals in enumerate(values):  # vectorised gather, one fancy-index per Arrow file
        sel = part == p
        c = counts[sel]
        offs = _ragged_arange(c)
        out[np.repeat(dst[sel], c) + offs] = vals[np.repeat(src[sel], c) + offs]
    return out.reshape(-1, seq_len)
