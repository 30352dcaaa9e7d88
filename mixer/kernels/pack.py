"""Packing: where each segment's tokens, separators and special tokens land in a range of
the output stream.

Every segment j has `dst[j]`, the stream position of its first content token, and
`count[j]` content tokens. Causal: segments are back to back, each followed by one EOS, and
the stream is cut into rows of `seq_len` (documents cross row boundaries). Masked LM: segment
k is row k, laid out `[CLS] content [SEP] [PAD]...`, so `dst[k] = k * seq_len + 1`.

The kernels work on a window [r0, r1) of stream positions, the tokens of a range of rows, so
any range of sequences can be produced on its own.
"""
from __future__ import annotations

import numpy as np

from mixer.kernels._jit import njit


@njit
def clip_pieces(seg_dst, seg_count, seg_src, seg_part, j0, j1, r0, r1):
    """The content copies for segments j0..j1 clipped to [r0, r1).

    Returns (part int32, src int64, dst int64, cnt int64): copy `cnt` tokens from offset `src`
    of source part `part` to window offset `dst` (relative to r0). Empty pieces are dropped.
    """
    n = max(j1 - j0, 0)
    part = np.empty(n, dtype=np.int32)
    src = np.empty(n, dtype=np.int64)
    dst = np.empty(n, dtype=np.int64)
    cnt = np.empty(n, dtype=np.int64)
    m = 0
    for j in range(j0, j1):
        a = max(seg_dst[j], r0)
        b = min(seg_dst[j] + seg_count[j], r1)
        if b > a:
            part[m] = seg_part[j]
            src[m] = seg_src[j] + (a - seg_dst[j])
            dst[m] = a - r0
            cnt[m] = b - a
            m += 1
    return part[:m], src[:m], dst[:m], cnt[:m]


@njit
def causal_frame(seg_dst, seg_count, seg_dom, span, r0, eos, out, dom_out):
    """Write the EOS after every segment j in `span` = (j0, j1) and the domain of every position
    of the window out[0:len(out)] = stream[r0:r0+len(out)]; the content itself comes from the
    gather. An empty `dom_out` skips the domains."""
    j0, j1 = span
    r1 = r0 + out.shape[0]
    with_dom = dom_out.shape[0] > 0
    for j in range(j0, j1):
        a = seg_dst[j]
        e = a + seg_count[j]  # the EOS position
        if r0 <= e < r1:
            out[e - r0] = eos
        if with_dom:
            lo = max(a, r0)
            hi = min(e + 1, r1)
            d = seg_dom[j]  # stored as dom_out's dtype (uint8 or uint16: the caller picks it)
            # unsigned indices: no wraparound check per store, so the fill vectorises (as in the gather)
            for p in range(np.uint64(lo - r0), np.uint64(hi - r0)):
                dom_out[p] = d


@njit
def mlm_frame(seg_count, seg_dom, k0, seq_len, special, out, dom_out):
    """Rows k0.. of a masked-LM stream: `[CLS]`, room for the content, `[SEP]`, `[PAD]` to the
    end (`special` = (cls, sep, pad)); out and dom_out hold n_rows * seq_len positions (an empty
    dom_out skips the domains)."""
    cls, sep, pad = special
    n = out.shape[0] // seq_len
    with_dom = dom_out.shape[0] > 0
    for r in range(n):
        base = r * seq_len
        c = seg_count[k0 + r]
        out[base] = cls
        out[base + 1 + c] = sep
        for p in range(base + 2 + c, base + seq_len):
            out[p] = pad
        if with_dom:
            d = seg_dom[k0 + r]
            for p in range(base, base + seq_len):
                dom_out[p] = d
