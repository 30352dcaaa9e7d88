"""Megatron's indexed dataset (`PREFIX.bin` + `PREFIX.idx`), written by mixer without Megatron.

The layout (megatron-core `megatron/core/datasets/indexed_dataset.py`, the reader of record)::

    PREFIX.bin   the tokens of every sequence, one after another, in `dtype`
    PREFIX.idx   b"MMIDIDX\\x00\\x00"           9-byte magic
                 <Q  1                           version
                 <B  dtype code                  uint8 1, int8 2, int16 3, int32 4, int64 5,
                                                 float64 6, float32 7, uint16 8
                 <Q  sequence count N
                 <Q  document count D            entries of the document index below
                 int32[N]  sequence lengths      tokens per sequence
                 int64[N]  sequence pointers     byte offset of each sequence in .bin
                 int64[D]  document indices      0, then the sequence index past each document's end

`dtype` follows Megatron's own rule (`DType.optimal_dtype`): uint16 for a vocabulary under
65,500, else int32. Both files are written under temporary names and renamed at the end, the
`.idx` last, so a reader never sees a `.bin` without its index or a part of either.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Self

import numpy as np

from mixer.core.errors import MixerError

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8}


def token_dtype(vocab_size: int) -> np.dtype:
    """Megatron's choice for a vocabulary of `vocab_size` ids (`DType.optimal_dtype`)."""
    if vocab_size < 1:
        raise MixerError(f"vocabulary size {vocab_size}: must be >= 1")
    return np.dtype(np.uint16 if vocab_size < 65500 else np.int32)


def paths(prefix: str | Path) -> tuple[Path, Path]:
    prefix = str(prefix)
    return Path(prefix + ".bin"), Path(prefix + ".idx")


def index_bytes(lengths: np.ndarray, dtype: np.dtype, document_ends: np.ndarray) -> bytes:
    """The `.idx` file of sequences of `lengths` tokens in `dtype`; `document_ends[j]` is the
    sequence index just past document j (so the document index is [0, *document_ends])."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and int(lengths.max()) > np.iinfo(np.int32).max:
        raise MixerError("a sequence is longer than Megatron's int32 sequence lengths hold")
    pointers = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(lengths[:-1] * np.dtype(dtype).itemsize, out=pointers[1:])
    documents = np.concatenate([[0], np.asarray(document_ends, dtype=np.int64)]).astype(np.int64)
    return b"".join([MAGIC, struct.pack("<Q", VERSION), struct.pack("<B", DTYPE_CODES[np.dtype(dtype).name]),
                     struct.pack("<Q", lengths.size), struct.pack("<Q", documents.size),
                     lengths.astype("<i4").tobytes(), pointers.astype("<i8").tobytes(),
                     documents.astype("<i8").tobytes()])


class IndexedWriter:
    """Append sequences (`add`), then `finish()` writes the index and renames both files into
    place; on an exception inside `with`, the temporary files are removed and nothing is left."""

    def __init__(self, prefix: str | Path, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in DTYPE_CODES:
            raise MixerError(f"dtype {self.dtype}: Megatron's indexed dataset holds {', '.join(DTYPE_CODES)}")
        self.bin_path, self.idx_path = paths(prefix)
        tag = f".tmp-{os.getpid()}"
        self._bin_tmp = self.bin_path.with_name(f".{self.bin_path.name}{tag}")
        self._idx_tmp = self.idx_path.with_name(f".{self.idx_path.name}{tag}")
        self._lengths: list[np.ndarray] = []
        self._file = None

    def __enter__(self) -> Self:
        self._file = open(self._bin_tmp, "wb")
        return self

    def add(self, rows: np.ndarray) -> None:
        """Append each row of a 2-D array as one sequence (one document each)."""
        rows = np.ascontiguousarray(rows)
        if rows.size and (rows.min() < 0 or int(rows.max()) > np.iinfo(self.dtype).max):
            raise MixerError(f"token ids {int(rows.min())}..{int(rows.max())} do not fit {self.dtype}")
        self._file.write(rows.astype(self.dtype.newbyteorder("<"), copy=False).tobytes())
        self._lengths.append(np.full(rows.shape[0], rows.shape[1], dtype=np.int64))

    def __exit__(self, exc_type, exc, tb) -> None:
        self._file.close()
        if exc_type is not None:
            for tmp in (self._bin_tmp, self._idx_tmp):
                tmp.unlink(missing_ok=True)
            return
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        self._idx_tmp.write_bytes(index_bytes(lengths, self.dtype, np.arange(1, lengths.size + 1)))
        os.replace(self._bin_tmp, self.bin_path)
        os.replace(self._idx_tmp, self.idx_path)
        self.sequences = int(lengths.size)
        self.tokens = int(lengths.sum())
