"""Packing and the gather against a NumPy reference that builds the stream by concatenation."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mixer.kernels.gather import gather_pieces, sort_pieces
from mixer.kernels.pack import causal_frame, clip_pieces, mlm_frame


def _stream(parts, seg_part, seg_src, seg_count, eos):
    pieces = []
    for p, s, c in zip(seg_part, seg_src, seg_count):
        pieces += [parts[p][s:s + c], np.array([eos], parts[0].dtype)]
    return np.concatenate(pieces)


def _segments(data, n_parts: int, n_seg: int, dtype, dom_dtype):
    """Random parts and segments (part, source, destination, count, domain; an EOS after each)
    and the stream and domain ids they make, by concatenation."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    parts = [rng.integers(0, 1000, 200).astype(dtype) for _ in range(n_parts)]
    seg_part = rng.integers(0, n_parts, n_seg).astype(np.int32)
    seg_count = rng.integers(0, 20, n_seg).astype(np.int64)
    seg_src = rng.integers(0, 180, n_seg).astype(np.int64)
    seg_dom = rng.integers(0, 4, n_seg).astype(dom_dtype)
    seg_dst = np.concatenate([[0], np.cumsum(seg_count + 1)[:-1]]).astype(np.int64)
    stream = _stream(parts, seg_part, seg_src, seg_count, 1001)
    doms = np.repeat(seg_dom, seg_count + 1).astype(np.uint8)
    return parts, (seg_part, seg_src, seg_dst, seg_count, seg_dom), stream, doms


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 3), st.integers(1, 30), st.integers(1, 17), st.data())
def test_causal_window_matches_concatenation(n_parts, n_seg, seq_len, data):
    parts, (seg_part, seg_src, seg_dst, seg_count, seg_dom), stream, doms = _segments(
        data, n_parts, n_seg, np.uint16, np.int16)
    r0 = data.draw(st.integers(0, len(stream)))
    r1 = data.draw(st.integers(r0, len(stream)))
    out = np.zeros(r1 - r0, np.uint16)
    dom_out = np.zeros(r1 - r0, np.uint8)
    causal_frame(seg_dst, seg_count, seg_dom, (0, n_seg), r0, 1001, out, dom_out)
    part, src, dst, cnt = sort_pieces(*clip_pieces(seg_dst, seg_count, seg_src, seg_part, 0, n_seg, r0, r1))
    keys = part.astype(np.int64) * 10**6 + src
    assert np.all(np.diff(keys) >= 0)  # reads in address order
    lo = 0
    while lo < len(cnt):
        hi = lo + int(np.sum(part[lo:] == part[lo]))
        gather_pieces(parts[part[lo]], src, dst, cnt, lo, hi, out)
        lo = hi
    np.testing.assert_array_equal(out, stream[r0:r1])
    np.testing.assert_array_equal(dom_out, doms[r0:r1])


def test_mlm_frame_layout():
    out = np.full(2 * 6, 77, np.uint16)
    dom_out = np.zeros(12, np.uint8)
    mlm_frame(np.array([9, 3, 0], np.int64), np.array([2, 1, 0], np.int16), 1, 6, (100, 101, 102), out, dom_out)
    # rows 1 and 2: content slots keep what the gather wrote (77 here)
    assert out.tolist() == [100, 77, 77, 77, 101, 102, 100, 101, 102, 102, 102, 102]
    assert dom_out.tolist() == [1] * 6 + [0] * 6


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 3), st.integers(1, 40), st.sampled_from([np.uint16, np.uint32]),
       st.sampled_from([np.uint8, np.uint16]), st.data())
def test_stream_order_gather_matches_concatenation(n_parts, n_seg, dtype, side, data):
    """`gather_frame` (one pass in stream order, reading parts by address, prefetching ahead;
    a one-byte sidecar filled by memset, a two-byte one element by element) writes the same
    window as the concatenation, from any segment range that covers it, and two ranges side by
    side write the same as one."""
    from mixer.kernels.gather import gather_frame

    parts, segments, stream, doms = _segments(data, n_parts, n_seg, dtype, np.int32)
    addresses = np.array([p.ctypes.data for p in parts], np.int64)
    r0 = data.draw(st.integers(0, len(stream)))
    r1 = data.draw(st.integers(r0, len(stream)))
    cut = data.draw(st.integers(0, n_seg))
    out, dom_out = np.zeros(r1 - r0, dtype), np.zeros(r1 - r0, side)
    for a, b in ((0, cut), (cut, n_seg)):
        gather_frame(addresses, segments, (a, b, r0), 1001, out, dom_out)
    assert np.array_equal(out, stream[r0:r1])
    assert np.array_equal(dom_out, doms[r0:r1])
    out2 = np.zeros(r1 - r0, dtype)  # without the sidecar: the tokens alone
    gather_frame(addresses, segments, (0, n_seg, r0), 1001, out2, np.empty(0, side))
    assert np.array_equal(out2, stream[r0:r1])
