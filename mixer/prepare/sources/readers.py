"""The readers: each yields `(key, text)` documents of one source in a stable order (text None:
a file skipped as not UTF-8 text, for the caller to count). Formats: `mixer.prepare.sources`."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from mixer.core.errors import MixerError, listed
from mixer.prepare.sources.codecs import codec_errors, damaged, inner_name, opener, read_whole
from mixer.prepare.sources.detect import FORMATS, detect_format, source_files
from mixer.prepare.sources.fields import FIELD_FIX, Document, check_text_column, text_of
from mixer.prepare.sources.hf import read_dataset, read_hf_dataset


def decode_text(data: bytes) -> str | None:
    """UTF-8 text, or None for binary or undecodable bytes (a NUL byte, or invalid UTF-8):
    decoding those with replacement characters would tokenize noise as if it were text. A
    leading byte-order mark (Windows editors write one) is not text and is dropped."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def read_text_files(path: Path, files: list[Path] | None = None) -> Iterator[Document]:
    folder = path.is_dir()  # (asked once, not once per file of a folder that may hold millions)
    for f in source_files(path) if files is None else files:
        yield (f.relative_to(path).as_posix() if folder else f.name), decode_text(read_whole(f))


_NOT_UTF8 = "not UTF-8 text{}; convert it (iconv -f LATIN1 -t UTF-8, or the file's encoding) or remove it"


def _records(f: Path, lines: Iterable[bytes], text_field: str) -> Iterator[Document]:
    """The documents of JSON Lines `lines` (bytes) from file `f`: one object per non-blank line.
    JSON is UTF-8: a line that is not is named (replacement characters would be trained on)."""
    for lineno, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # (a byte-order mark: not JSON)
        except UnicodeDecodeError as exc:
            raise MixerError(f"{f}:{lineno}: {_NOT_UTF8.format(f' (byte {exc.start} of the line)')}") from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MixerError(f"{f}:{lineno}: invalid JSON ({exc.msg}); fix or remove that line") from None
        yield f"{f.name}:{lineno}", _field(obj, text_field, f"{f}:{lineno}")


def _field(obj: Any, text_field: str, where: str) -> str:
    if not isinstance(obj, dict) or text_field not in obj:
        keys = ", ".join(sorted(obj)) if isinstance(obj, dict) else type(obj).__name__
        raise MixerError(f"{where}: no field {text_field!r} (has: {keys}); {FIELD_FIX}")
    return text_of(obj[text_field], where, text_field)


def read_jsonl(path: Path, text_field: str, files: list[Path] | None = None) -> Iterator[Document]:
    for f in source_files(path) if files is None else files:
        try:
            with opener(f)(f, "rb") as lines:
                yield from _records(f, lines, text_field)
        except codec_errors() as exc:
            raise damaged(f, exc) from None


def read_json(path: Path, text_field: str, files: list[Path] | None = None) -> Iterator[Document]:
    """`.json` files as `datasets`' json loader reads them: one object (a document), an array of
    objects (a document each), or JSON Lines under a `.json` name (a document per line)."""
    for f in source_files(path) if files is None else files:
        data = read_whole(f)
        try:
            obj = json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise MixerError(f"{f}: {_NOT_UTF8.format(f' (byte {exc.start})')}") from None
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":  # a value, then more: JSON Lines
                yield from _records(f, data.splitlines(), text_field)
                continue
            raise MixerError(f"{f}: invalid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}); fix the "
                             f"file, or read it as plain text with --format DOMAIN=text") from None
        if isinstance(obj, list):
            for i, item in enumerate(obj):
                yield f"{f.name}:{i}", _field(item, text_field, f"{f}: item {i}")
        else:
            yield f.name, _field(obj, text_field, str(f))


def read_csv(path: Path, text_field: str, files: list[Path] | None = None) -> Iterator[Document]:
    """`.csv` (comma) and `.tsv` (tab) files with a header row: one document per row, its
    `text_field` column. Fields of any length (the csv module stops at 128 KiB by default); a
    file that is not UTF-8 is one line naming it, not text with replacement characters."""
    limit = csv.field_size_limit(2**31 - 1)  # (the module's one setting: put back when done)
    try:
        for f in source_files(path) if files is None else files:
            yield from _csv_rows(f, text_field)
    finally:
        csv.field_size_limit(limit)


def _csv_rows(f: Path, text_field: str) -> Iterator[Document]:
    try:
        with opener(f)(f, "rt", encoding="utf-8-sig", newline="") as lines:
            rows = csv.reader(lines, delimiter="\t" if inner_name(f.name).endswith(".tsv") else ",")
            header = next(rows, None)
            if header is None or text_field not in header:
                names = [n if len(n) <= 40 else f"{n[:37]}..." for n in header or []]  # (a text file's first line)
                raise MixerError(f"{f}: no column {text_field!r} in its header row (has: {listed(names)}); "
                                 f"{FIELD_FIX}")
            col = header.index(text_field)
            for row, values in enumerate(rows, 1):
                if values:  # (a blank line)
                    yield f"{f.name}:{row}", values[col] if col < len(values) else ""
    except UnicodeDecodeError:
        raise MixerError(f"{f}: {_NOT_UTF8.format('')}") from None
    except csv.Error as exc:
        raise MixerError(f"{f}: unreadable CSV ({exc}); fix the file") from None
    except codec_errors() as exc:
        raise damaged(f, exc) from None


def read_parquet(path: Path, text_field: str, files: list[Path] | None = None) -> Iterator[Document]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in source_files(path) if files is None else files:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise MixerError(f"{f}: not a readable Parquet file ({exc}); check the file") from None
        names = pf.schema_arrow.names
        if text_field not in names:
            raise MixerError(f"{f}: no column {text_field!r} (has: {listed(names)}); {FIELD_FIX}")
        check_text_column(pf.schema_arrow.field(text_field).type, str(f), text_field)
        row = 0
        for batch in pf.iter_batches(columns=[text_field], batch_size=4096):
            for text in batch.column(0).to_pylist():
                yield f"{f.name}:{row}", text or ""
                row += 1


def iter_documents(path: str | Path | Any, text_field: str = "text", fmt: str = "auto",
                   files: list[Path] | None = None, split: str | None = None) -> Iterator[Document]:
    """Documents of one source, in a stable order, whatever the format; with `files` (a run of
    `source_files(path)`), only those files' documents (not for `hf`, which is read whole).
    `path` may also be a `datasets` object (Python API); `split` picks a DatasetDict's split."""
    if not isinstance(path, (str, os.PathLike)):
        return read_dataset(path, text_field, split, where=f"a {type(path).__name__}")
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "text":
        return read_text_files(path, files)
    if fmt == "jsonl":
        return read_jsonl(path, text_field, files)
    if fmt == "json":
        return read_json(path, text_field, files)
    if fmt == "csv":
        return read_csv(path, text_field, files)
    if fmt == "parquet":
        return read_parquet(path, text_field, files)
    if fmt == "hf":
        return read_hf_dataset(path, text_field, split)
    raise MixerError(f"{path}: unknown source format {fmt!r}; use one of {', '.join(FORMATS[1:])}")
