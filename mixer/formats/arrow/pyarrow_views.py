"""Any Arrow part through pyarrow, validated in full: the reader of every part that is not laid
out as the model part (`mixer.formats.arrow.ipc`), and of the first one, which becomes the model.

pyarrow is imported here, when a part needs it, not when a corpus is opened: a command whose
parts all fit the cached model layout (`layout_cache`) never imports it (about 30 ms).
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mixer.core.errors import MixerError
from mixer.formats.arrow.ipc import arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa

_schema_of = functools.cache(arrow_schema)  # (one schema object per dtype, compared with each part's)


@functools.cache
def _read_options() -> pa.ipc.IpcReadOptions:
    """One for every part (pyarrow makes a fresh one per call otherwise)."""
    import pyarrow as pa

    return pa.ipc.IpcReadOptions()


@functools.cache
def _numpy_dtype(arrow_type: pa.DataType) -> np.dtype | None:
    """The NumPy dtype of an Arrow number type; None for any other type."""
    try:
        return np.dtype(str(arrow_type))
    except TypeError:
        return None


def _numpy_view(array: pa.Array) -> np.ndarray:
    """A null-free primitive Arrow array as a read-only NumPy view of its data buffer (no copy).
    `Array.to_numpy` does the same but imports pandas on first use, a third of a second of every
    command that opens a corpus."""
    dtype = _numpy_dtype(array.type)
    if dtype is None:  # not a NumPy number type: let Arrow say what it is
        return array.to_numpy(zero_copy_only=True)
    buf = array.buffers()[1]
    if buf is None:  # an empty array may carry no data buffer
        return np.zeros(0, dtype)
    return np.frombuffer(buf, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def arrow_errors() -> tuple[type[BaseException], ...]:
    """pyarrow's exceptions, when pyarrow was imported (only its code raises them)."""
    pa = sys.modules.get("pyarrow")
    return (pa.ArrowException,) if pa is not None else ()


def pyarrow_views(path: Path, data, dtype, fix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(doc_ids, offsets, values) of any Arrow file (`data`: its bytes, a buffer), through
    pyarrow and its full validation."""
    import pyarrow as pa

    reader = pa.ipc.RecordBatchFileReader(pa.py_buffer(data), options=_read_options())
    if reader.num_record_batches != 1:
        raise MixerError(f"{path}: expected one record batch, found {reader.num_record_batches}; {fix}")
    batch = reader.get_batch(0)
    if dtype is not None and batch.schema.equals(_schema_of(np.dtype(dtype))):
        pass  # the format's exact schema: one comparison instead of the three below
    elif batch.schema.names != ["doc_id", "tokens"] or batch.schema.field("doc_id").type != pa.uint64() \
            or not pa.types.is_large_list(batch.schema.field("tokens").type):
        raise MixerError(f"{path}: columns {batch.schema.to_string(show_schema_metadata=False)!r} are not "
                         f"(doc_id: uint64, tokens: large_list); {fix}")
    batch.validate(full=True)  # offsets monotone and in range, buffer sizes: O(documents)
    ids, tokens = batch.columns
    values = tokens.values
    if ids.null_count or tokens.null_count or values.null_count:
        raise MixerError(f"{path}: holds null values, which the corpus format never writes; {fix}")
    return _numpy_view(ids), _numpy_view(tokens.offsets), _numpy_view(values)
