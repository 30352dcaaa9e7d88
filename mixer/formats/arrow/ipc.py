"""The corpus's Arrow parts: the one writer, and a reader for the files laid out as it writes them.

`write_part` writes one Arrow IPC *file* holding one record batch of the corpus schema
(`arrow_schema`). Opening such a file through pyarrow (reader, footer, schema, batch, column
wrappers, validation) costs about 0.1 ms, a second for a corpus of 10,000 one-part domains.
`read_part` reads the same three buffers straight from the bytes, for a file laid out exactly
as a model part of its dtype: the first part of that dtype that pyarrow has read and validated
in full (`learn_layout`; the caller's checks of schema and dtype passed too), in this process or
in an earlier one, whose model is kept in the cache (`layout_cache`: then this process imports
no pyarrow unless a part does not fit). A part is read so only when

- its footer, but for its one record-batch block (offset, metadata and body lengths), is the
  model's byte for byte: the same schema, one batch, no dictionaries, no metadata;
- its batch's metadata is the model's byte for byte but for the numbers a part's size sets (rows,
  body length, the 3 field nodes, the 6 buffers): a version-5 RecordBatch, no compression, no
  custom metadata; no nulls, empty validity bitmaps, every buffer 8-aligned inside the body and
  the body inside the file before the footer.

Anything else (another writer, a damaged or hand-made file, an empty part) returns None, and
the caller opens the file through pyarrow, which validates it in full and names what is wrong.
The caller still checks what the kernels index by (offsets monotone inside the values).
"""
from __future__ import annotations

import functools
import struct
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash
from numpy.lib.stride_tricks import sliding_window_view

from mixer.formats.arrow.layout_cache import load_layout, store_layout

if TYPE_CHECKING:
    import pyarrow as pa

MAGIC = b"ARROW1"
_HEAD = MAGIC + bytes(2)
_I32, _U32, _U16, _I64 = struct.Struct("<i"), struct.Struct("<I"), struct.Struct("<H"), struct.Struct("<q")
_BLOCK = struct.Struct("<qi4xq")  # offset, metaDataLength, (padding), bodyLength
_PAIR = struct.Struct("<qq")  # FieldNode (length, null_count), Buffer (offset, length)
_V5, _RECORD_BATCH = 4, 3  # MetadataVersion.V5, MessageHeader.RecordBatch


def arrow_schema(dtype: np.dtype) -> pa.Schema:
    import pyarrow as pa  # (here, not above: a corpus read by its layout needs no pyarrow, `layout_cache`)

    return pa.schema([("doc_id", pa.uint64()), ("tokens", pa.large_list(pa.from_numpy_dtype(dtype)))])


def _write(sink, doc_ids: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
    import pyarrow as pa

    tokens = pa.LargeListArray.from_arrays(pa.array(offsets.astype(np.int64)), pa.array(values))
    batch = pa.record_batch([pa.array(doc_ids.astype(np.uint64)), tokens], schema=arrow_schema(values.dtype))
    with pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)


def write_part(path: str | Path, doc_ids: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
    """Write one Arrow IPC file holding a single record batch (contiguous buffers for the kernels)."""
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink:
        _write(sink, doc_ids, offsets, values)


class _Unexpected(Exception):
    """Not the layout `read_part` reads: the caller falls back to pyarrow."""


def _field(buf, table: int, i: int) -> int | None:
    """Where field `i` of the flatbuffer table at `table` lies, or None when it is absent."""
    vtable = table - _I32.unpack_from(buf, table)[0]
    if table < 0 or vtable < 0 or 4 + 2 * i + 2 > _U16.unpack_from(buf, vtable)[0]:  # (negative: from the end)
        return None
    at = _U16.unpack_from(buf, vtable + 4 + 2 * i)[0]
    return table + at if at else None


def _ref(buf, at: int | None) -> int:
    """The table or vector an offset field points to."""
    if at is None:
        raise _Unexpected
    return at + _U32.unpack_from(buf, at)[0]


def _pairs(buf, table: int, i: int, n: int) -> list[tuple[int, int]]:
    """The `n` 16-byte structs of vector field `i` (exactly `n`, or the layout is not ours)."""
    vec = _ref(buf, _field(buf, table, i))
    if _U32.unpack_from(buf, vec)[0] != n:
        raise _Unexpected
    return [_PAIR.unpack_from(buf, vec + 4 + 16 * k) for k in range(n)]


def _footer_block(footer: bytes) -> int:
    """Where the one record-batch block lies in a footer (flatbuffer `Footer.recordBatches`)."""
    vec = _ref(footer, _field(footer, _U32.unpack_from(footer, 0)[0], 3))
    if _U32.unpack_from(footer, vec)[0] != 1:
        raise _Unexpected
    return vec + 4


@dataclass(frozen=True)
class _Layout:
    """Where the numbers of a part written here lie; every other byte of its footer and of its
    batch's metadata is the same in every such part, whatever its size."""

    footer_len: int
    block_at: int  # in the footer
    footer_head: bytes  # the footer up to the block
    footer_tail: bytes  # after the block, to the end of the file (footer length, magic)
    meta: int  # the batch's metadata, its 8-byte prefix included (the block's metaDataLength)
    fixed: tuple[tuple[int, bytes], ...]  # (where, bytes) of the metadata between those numbers
    rows_at: int  # RecordBatch.length (in the metadata, from its prefix)
    body_len_at: int  # Message.bodyLength
    nodes_at: int  # the 3 field nodes (length, null count)
    buffers_at: int  # the 6 buffers (offset, length)


def _layout_of(ref) -> _Layout:
    size = len(ref)
    footer_len = _I32.unpack_from(ref, size - 10)[0]
    start = size - 10 - footer_len
    footer = bytes(ref[start:size - 10])
    at = _footer_block(footer)
    offset, meta, _ = _BLOCK.unpack_from(footer, at)
    msg = bytes(ref[offset + 8:offset + meta])
    root = _U32.unpack_from(msg, 0)[0]
    batch = _ref(msg, _field(msg, root, 2))
    where = {"rows_at": _field(msg, batch, 0), "body_len_at": _field(msg, root, 3),
             "nodes_at": _ref(msg, _field(msg, batch, 1)) + 4, "buffers_at": _ref(msg, _field(msg, batch, 2)) + 4}
    version, kind = _field(msg, root, 0), _field(msg, root, 1)
    if None in (*where.values(), version, kind) or _U16.unpack_from(msg, version)[0] != _V5 or msg[kind] != _RECORD_BATCH \
            or any(_field(msg, batch, i) is not None for i in (3, 4)) or _field(msg, root, 4) is not None:
        raise _Unexpected  # (compression, variadic counts, custom metadata: not the writer's layout)
    if bytes(ref[offset:offset + 4]) != b"\xff\xff\xff\xff":
        raise _Unexpected
    where = {k: v + 8 for k, v in where.items()}  # from the start of the encapsulated message
    numbers = sorted((where[name], where[name] + width) for name, width in
                     (("rows_at", 8), ("body_len_at", 8), ("nodes_at", 3 * 16), ("buffers_at", 6 * 16)))
    cuts = [0, *(x for pair in numbers for x in pair), meta]
    head = bytes(ref[offset:offset + meta])
    fixed = tuple((a, head[a:b]) for a, b in zip(cuts[::2], cuts[1::2]) if b > a)
    if any(b > c for (_, b), (c, _) in pairwise(numbers)):  # overlapping: not a layout to read
        raise _Unexpected
    return _Layout(footer_len=footer_len, block_at=at, footer_head=footer[:at],
                   footer_tail=bytes(ref[start + at + _BLOCK.size:size]), meta=meta, fixed=fixed, **where)


_LAYOUTS: dict[np.dtype, _Layout] = {}
_TRIES: dict[np.dtype, int] = {}  # parts tried as a model of their dtype's layout
_LOOKED_UP: set[np.dtype] = set()  # dtypes whose layout this process has looked for in the cache
_FROM_CACHE: set[np.dtype] = set()  # dtypes whose layout came from the cache, not from a part of this process


@functools.cache
def _source_digest() -> str:
    """xxh3-64 of this module's source: the name of the layouts it learned (`layout_cache`);
    empty (nothing cached) when the source cannot be read."""
    try:
        return xxhash.xxh3_64_hexdigest(Path(__file__).read_bytes())
    except OSError:
        return ""


def _layout(dtype: np.dtype) -> _Layout | None:
    """The model layout of parts of `dtype`: learned in this process, or by an earlier one
    (`layout_cache`, looked for once per process), or None."""
    t = _LAYOUTS.get(dtype)
    if t is None and dtype not in _LOOKED_UP:
        _LOOKED_UP.add(dtype)
        digest = _source_digest()
        fields = load_layout(dtype.name, digest) if digest else None
        t = None if fields is None else _from_fields(fields)
        if t is not None:
            _LAYOUTS[dtype] = t
            _FROM_CACHE.add(dtype)
    return t


def _fields(t: _Layout) -> dict[str, Any]:
    """`t` as JSON values (bytes as hex)."""
    out = asdict(t)
    out.update(footer_head=t.footer_head.hex(), footer_tail=t.footer_tail.hex(),
               fixed=[[at, b.hex()] for at, b in t.fixed])
    return out


def _from_fields(f: dict[str, Any]) -> _Layout | None:
    """The layout `_fields` wrote, or None for anything of another shape."""
    try:
        ints = {k: f[k] for k in ("footer_len", "block_at", "meta", "rows_at", "body_len_at", "nodes_at", "buffers_at")}
        if not all(type(v) is int and v >= 0 for v in ints.values()):
            return None
        fixed = tuple((at, bytes.fromhex(b)) for at, b in f["fixed"])
        if not all(type(at) is int and 0 <= at and 0 < len(b) and at + len(b) <= ints["meta"] for at, b in fixed):
            return None
        return _Layout(footer_head=bytes.fromhex(f["footer_head"]), footer_tail=bytes.fromhex(f["footer_tail"]),
                       fixed=fixed, **ints)
    except (KeyError, TypeError, ValueError):
        return None


def learn_layout(data, dtype: np.dtype, views: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Take the layout of `data`, a part that pyarrow has just read and validated in full into
    `views`, as the model of parts of `dtype` (the first such part of a corpus: writing a model
    here instead would cost pyarrow's writer start-up, a fifth of a second). Kept only when the
    model reads `data` back into exactly `views`; a few parts are tried, then no more. A layout
    taken from the cache gives way to the first part that does not fit it (parts written by
    another pyarrow, say), as no layout would: the cache then holds this one."""
    dtype = np.dtype(dtype)
    if (_layout(dtype) is not None and dtype not in _FROM_CACHE) or _TRIES.get(dtype, 0) >= 3:
        return
    _TRIES[dtype] = _TRIES.get(dtype, 0) + 1
    try:
        layout = _layout_of(data)
        got = _read(data, dtype, layout)
    except (_Unexpected, struct.error, IndexError, ValueError):
        return
    if all(_equal(a, b) for a, b in zip(got, views)):
        _LAYOUTS[dtype] = layout
        _FROM_CACHE.discard(dtype)
        if digest := _source_digest():
            store_layout(dtype.name, digest, _fields(layout))


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays hold the same values: at once when both view the same memory with the
    same dtype, shape and strides (pyarrow's views and the model's are views of the one mapped
    file: comparing them value by value read a large first part whole, ~10 ms), else in full."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    same = a.strides == b.strides and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    return same or bool(np.array_equal(a, b))


_NODES, _BUFFERS = struct.Struct("<6q"), struct.Struct("<12q")


def read_part(data, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(doc_ids uint64[n], offsets int64[n + 1], values dtype[m]) as views of `data` (the file's
    bytes: a buffer), or None when the file is not laid out as `write_part` lays it out here."""
    try:
        return _read(data, np.dtype(dtype))
    except (_Unexpected, struct.error, IndexError, ValueError):
        return None


def _read(data, dtype: np.dtype, t: _Layout | None = None):
    t = _layout(dtype) if t is None else t
    if t is None:
        raise _Unexpected
    view = memoryview(data).cast("B")  # (unsigned bytes, compared in place: no copies)
    size = len(view)
    start = size - 10 - t.footer_len
    block = start + t.block_at
    if start < 8 or view[:8] != _HEAD or view[start:block] != t.footer_head \
            or view[block + _BLOCK.size:size] != t.footer_tail:
        raise _Unexpected
    offset, meta, body_len = _BLOCK.unpack_from(view, block)
    body = offset + meta
    if meta != t.meta or offset < 8 or body % 8 or body_len <= 0 or body + body_len > start \
            or _I64.unpack_from(view, offset + t.body_len_at)[0] != body_len:
        raise _Unexpected
    for at, fixed in t.fixed:
        if view[offset + at:offset + at + len(fixed)] != fixed:
            raise _Unexpected
    rows = _I64.unpack_from(data, offset + t.rows_at)[0]
    n_ids, ids_nulls, n_docs, doc_nulls, n_values, value_nulls = _NODES.unpack_from(data, offset + t.nodes_at)
    buffers = _BUFFERS.unpack_from(data, offset + t.buffers_at)
    if rows < 1 or n_ids != rows or n_docs != rows or n_values < 0 or ids_nulls or doc_nulls or value_nulls \
            or buffers[1] or buffers[5] or buffers[9] or min(buffers) < 0 \
            or max(buffers[0] + buffers[1], buffers[2] + buffers[3], buffers[4] + buffers[5], buffers[6] + buffers[7],
                   buffers[8] + buffers[9], buffers[10] + buffers[11]) > body_len:
        raise _Unexpected  # (buffers 0, 2, 4 are validity bitmaps: empty)
    ids_off, ids_len, offs_off, offs_len, vals_off, vals_len = buffers[2:4] + buffers[6:8] + buffers[10:12]
    if ids_len < 8 * rows or offs_len < 8 * (rows + 1) or vals_len < dtype.itemsize * n_values \
            or (ids_off | offs_off | vals_off) % 8:
        raise _Unexpected
    return (np.frombuffer(data, np.uint64, rows, body + ids_off), np.frombuffer(data, np.int64, rows + 1, body + offs_off),
            np.frombuffer(data, dtype, n_values, body + vals_off))


@dataclass(frozen=True)
class PartsRead:
    """What `read_parts` found for parts laid side by side in one buffer: per part, whether it is
    laid out as `read_part` reads (`ok`), its rows and values, and where (in the buffer) its
    doc ids, offsets and values start. Fields of parts that are not `ok` mean nothing."""

    ok: np.ndarray  # bool[n]
    rows: np.ndarray  # int64[n]
    n_values: np.ndarray
    ids_at: np.ndarray
    offsets_at: np.ndarray
    values_at: np.ndarray


def _bytes_at(buf: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """(n, width) bytes of `buf` from each position, clipped into the buffer: a part whose
    numbers point elsewhere is already out of the running, so what is read for it is never used.
    Rows of a sliding window over `buf`, taken whole: an (n, width) array of byte indices instead
    was 8 bytes of fresh memory per byte read (16 MB for 10,000 footers of 202 bytes), and in a
    fresh process its page faults made `read_parts` 2-5x slower (10,000 parts: 0.025-0.064 s ->
    0.012 s)."""
    return sliding_window_view(buf, width)[np.clip(pos, 0, len(buf) - width)]


def _ints_at(buf: np.ndarray, pos: np.ndarray, count: int = 1, width: int = 8) -> np.ndarray:
    """`count` little-endian signed integers of `width` bytes from each position: (n, count)."""
    return _bytes_at(buf, pos, count * width).view(f"<i{width}")


def knows_layout(dtype: np.dtype) -> bool:
    """Whether a model part of `dtype` has been learned (`learn_layout`), so `read_parts` reads."""
    return _layout(np.dtype(dtype)) is not None


def read_parts(buf: np.ndarray, starts: np.ndarray, sizes: np.ndarray, dtype: np.dtype) -> PartsRead | None:
    """`read_part` of many small parts at once (10,000 one-part domains: one pass of array
    operations instead of 10,000 calls of 16 us). `buf` (uint8) holds part i's bytes at
    `starts[i]` (8-aligned) for `sizes[i]` bytes. Every condition of `_read` is checked, in
    integer arithmetic that cannot overflow where `_read`'s Python integers could not; None when
    no layout of `dtype` is known yet."""
    dtype = np.dtype(dtype)
    t = _layout(dtype)
    if t is None:
        return None
    starts, sizes = np.asarray(starts, np.int64), np.asarray(sizes, np.int64)
    start = sizes - 10 - t.footer_len  # where the footer starts, in each part
    ok = (start >= 8) & (_bytes_at(buf, starts, 8) == np.frombuffer(_HEAD, np.uint8)).all(axis=1)
    foot = starts + start
    ok &= (_bytes_at(buf, foot, t.block_at) == np.frombuffer(t.footer_head, np.uint8)).all(axis=1)
    ok &= (_bytes_at(buf, foot + t.block_at + _BLOCK.size, len(t.footer_tail))
           == np.frombuffer(t.footer_tail, np.uint8)).all(axis=1)
    block = foot + t.block_at
    offset, meta, body_len = _ints_at(buf, block)[:, 0], _ints_at(buf, block + 8, 1, 4)[:, 0], _ints_at(buf, block + 16)[:, 0]
    ok &= (meta == t.meta) & (offset >= 8) & (offset <= start)  # (then offset + meta cannot overflow)
    body = np.where(ok, offset + t.meta, 0)
    ok &= (body % 8 == 0) & (body_len > 0) & (body_len <= start - body)
    msg = starts + np.where(ok, offset, 0)
    ok &= _ints_at(buf, msg + t.body_len_at)[:, 0] == body_len
    if t.fixed:
        at = np.concatenate([a + np.arange(len(b)) for a, b in t.fixed])
        want = np.frombuffer(b"".join(b for _, b in t.fixed), np.uint8)
        ok &= (_bytes_at(buf, msg, int(at.max()) + 1)[:, at] == want).all(axis=1)
    rows = _ints_at(buf, msg + t.rows_at)[:, 0]
    n_ids, ids_nulls, n_docs, doc_nulls, n_values, value_nulls = _ints_at(buf, msg + t.nodes_at, 6).T
    b = _ints_at(buf, msg + t.buffers_at, 12).T
    ok &= (rows >= 1) & (n_ids == rows) & (n_docs == rows) & (n_values >= 0) & (ids_nulls == 0) & (doc_nulls == 0) \
        & (value_nulls == 0) & (b[1] == 0) & (b[5] == 0) & (b[9] == 0) & (b.min(axis=0) >= 0)
    for i in range(0, 12, 2):  # offset + length inside the body, without forming the sum
        ok &= (b[i] <= body_len) & (b[i + 1] <= body_len - b[i])
    ok &= (b[3] // 8 >= rows) & (b[7] // 8 >= rows + 1) & (b[11] // dtype.itemsize >= n_values) \
        & ((b[2] | b[6] | b[10]) % 8 == 0)
    base = starts + body
    return PartsRead(ok=ok, rows=rows, n_values=n_values, ids_at=base + b[2], offsets_at=base + b[6],
                     values_at=base + b[10])
