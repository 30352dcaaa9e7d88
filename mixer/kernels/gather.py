"""The gather: copy token ranges from the memory-mapped Arrow values into the output.

This is the memory-bound step. Random-order reads are latency-bound, so callers put the
pieces in source-address order first (`sort_pieces`) and may split them between threads (the
kernel releases the GIL). The stream-order gather (`gather_frame`) copies each piece with one
`llvm.memcpy` (`_copy`: the C library's copy, which picks its moves by length and alignment)
and fills a stretch of one-byte domain ids with one `llvm.memset` (`_fill`): element loops, even
over unsigned indices, ran 1.7-3.5 GB/s on pieces of ~260 tokens where the library copy runs
6-7 GB/s (random pieces of a 155 MB part, one thread). `gather_pieces`, which also converts a
part of another dtype or reads a strided one, keeps an element loop over *unsigned* indices:
with signed ones numba adds a negative-index (wraparound) check to every access, which stops
LLVM from turning the loop into vector moves. Slice assignment inside the loop is slower still.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from mixer.kernels._jit import njit
from mixer.kernels.radix import argsort_u64

_SRC_BITS = 40  # a part may hold up to 2**40 tokens


@njit
def address_order(part, src):
    """int64[n]: the pieces sorted by (source part, source offset)."""
    n = part.shape[0]
    keys = np.empty(n, dtype=np.uint64)
    for i in range(n):
        keys[i] = (np.uint64(part[i]) << np.uint64(_SRC_BITS)) | np.uint64(src[i])
    return argsort_u64(keys)


@njit
def sort_pieces(part, src, dst, cnt):
    """The pieces in address order: (part, src, dst, cnt), each permuted the same way."""
    order = address_order(part, src)
    return part[order], src[order], dst[order], cnt[order]


@njit
def gather_pieces(values, src, dst, cnt, lo, hi, out):
    """For pieces lo..hi (all from the part whose tokens are `values`): copy
    values[src : src + cnt] to out[dst : dst + cnt]. Callers guarantee the ranges are in
    bounds (the plan is checked against the corpus) and that the dst ranges do not overlap."""
    for q in range(lo, hi):
        s = np.uint64(src[q])
        d = np.uint64(dst[q])
        for t in range(np.uint64(cnt[q])):
            out[d + t] = values[s + t]


_P8 = ir.IntType(8).as_pointer()
_I32 = ir.IntType(32)


def _at_address(argtypes: tuple, emit) -> tuple:
    """(signature, codegen) of an intrinsic that returns nothing and takes an integer address
    first (as a byte pointer) and `argtypes` after it: `emit(builder, pointer, *rest)`."""
    sig = types.void(types.int64, *argtypes)

    def codegen(context, builder, signature, args):
        emit(builder, builder.inttoptr(args[0], _P8), *args[1:])
        return context.get_dummy_value()

    return sig, codegen


def _emit_prefetch(builder, pointer) -> None:
    fnty = ir.FunctionType(ir.VoidType(), [_P8, _I32, _I32, _I32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
    builder.call(fn, [pointer, _I32(0), _I32(3), _I32(1)])


@intrinsic
def _prefetch(typingctx, address):
    """Ask for the cache line at `address` ahead of its use (llvm.prefetch: read, keep)."""
    return _at_address((), _emit_prefetch)


@intrinsic
def _copy(typingctx, dst, src, nbytes):
    """memcpy(dst, src, nbytes) between integer addresses (llvm.memcpy; ranges do not overlap)."""
    return _at_address((types.int64, types.int64),
                       lambda b, p, src, n: cgutils.raw_memcpy(b, p, b.inttoptr(src, _P8), n, 1))


@intrinsic
def _fill(typingctx, dst, value, nbytes):
    """memset(dst, value, nbytes) at an integer address (llvm.memset)."""
    return _at_address((types.uint8, types.int64), lambda b, p, value, n: cgutils.memset(b, p, n, value))


_AHEAD = 8  # segments whose first source lines are requested before they are copied
_LINES = 4


@njit
def gather_frame(addresses, segments, window, eos, out, dom_out, ahead=_AHEAD, lines=_LINES):
    """Causal rows in stream order, in one pass over segments j0..j1 of the window
    out = stream[r0 : r0 + len(out)]: each segment's content (from the part whose values start
    at addresses[part], of out's dtype), the EOS after it, and its domain at every position it
    covers in dom_out (skipped when empty). Writes go front to back; each segment's read is one
    contiguous run. Segments of a range write disjoint positions, so ranges run side by side.
    `segments` = (seg_part, seg_src, seg_dst, seg_count, seg_dom), the plan's segment arrays;
    `window` = (j0, j1, r0). `out` and `dom_out` are contiguous (pieces are copied by address)."""
    if not (out.flags.c_contiguous and dom_out.flags.c_contiguous):
        raise ValueError("gather_frame writes contiguous arrays only")
    seg_part, seg_src, seg_dst, seg_count, seg_dom = segments
    j0, j1, r0 = window
    r1 = r0 + out.shape[0]
    with_dom = dom_out.shape[0] > 0
    one_byte = dom_out.itemsize == 1
    size = out.itemsize
    for j in range(j0, j1):
        if ahead > 0 and j + ahead < j1:
            f = j + ahead
            at = addresses[seg_part[f]] + seg_src[f] * size
            for line in range(min(lines, (seg_count[f] * size + 63) // 64)):
                _prefetch(at + 64 * line)
        a = seg_dst[j]
        e = a + seg_count[j]  # the EOS position
        lo = max(a, r0)
        hi = min(e, r1)
        if hi > lo:
            _copy(out.ctypes.data + (lo - r0) * size, addresses[seg_part[j]] + (seg_src[j] + (lo - a)) * size,
                  (hi - lo) * size)
        if r0 <= e < r1:
            out[e - r0] = eos
        if with_dom:
            p0, p1 = lo - r0, min(e + 1, r1) - r0
            if one_byte:
                if p1 > p0:
                    _fill(dom_out.ctypes.data + p0, np.uint8(seg_dom[j]), p1 - p0)
            else:
                dj = seg_dom[j]
                for p in range(np.uint64(p0), np.uint64(p1)):
                    dom_out[p] = dj
