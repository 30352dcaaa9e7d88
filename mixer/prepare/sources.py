"""Raw-text readers for `mixer prepare`: each yields `(key, text)` documents in a stable order.

Supported inputs, chosen by what the path is:
- a folder of text files (every regular file below it, sorted by relative path; one file is
  one document; a file that is not UTF-8 text, e.g. an image or random bytes, is skipped: it
  comes out as ``(key, None)`` so the caller can count it);
- a `.jsonl` / `.jsonl.gz` file, or a folder of them (one JSON object per line, `text_field`);
- a `.parquet` file or a folder of them (`text_field` column);
- a Hugging Face `datasets` folder written by `save_to_disk` (has `dataset_info.json` or
  `dataset_dict.json`), `text_field` column, train split for a DatasetDict.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from mixer.core.errors import MixerError

Document = tuple[str, str | None]  # (key, text); text None: a skipped binary / undecodable file


def decode_text(data: bytes) -> str | None:
    """UTF-8 text, or None for binary or undecodable bytes (a NUL byte, or invalid UTF-8):
    decoding those with replacement characters would tokenize noise as if it were text."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_hf_folder(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def detect_format(path: Path) -> str:
    """Name the reader for `path`: text, jsonl, parquet or hf."""
    if not path.exists():
        raise MixerError(f"{path}: source path does not exist; check --source DOMAIN=PATH")
    if path.is_file():
        name = path.name.lower()
        if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            return "jsonl"
        if name.endswith(".parquet"):
            return "parquet"
        return "text"
    if _is_hf_folder(path):
        return "hf"
    files = [p for p in path.rglob("*") if p.is_file()]
    if files and all(p.name.lower().endswith((".jsonl", ".jsonl.gz", ".ndjson")) for p in files):
        return "jsonl"
    if files and all(p.name.lower().endswith(".parquet") for p in files):
        return "parquet"
    return "text"


def source_files(path: Path) -> list[Path]:
    """The files of a source, in the stable order every reader uses (the unit `prepare --ray` splits)."""
    if path.is_file():
        return [path]
    files = sorted((p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise MixerError(f"{path}: folder holds no files; point --source at text, JSONL, Parquet or a saved dataset")
    return files


def read_text_files(path: Path, files: list[Path] | None = None) -> Iterator[Document]:
    for f in source_files(path) if files is None else files:
        try:
            text = decode_text(f.read_bytes())
        except OSError as exc:
            raise MixerError(f"{f}: unreadable ({exc.strerror}); fix its permissions or remove it") from None
        yield (f.relative_to(path).as_posix() if path.is_dir() else f.name), text


def read_jsonl(path: Path, text_field: str, files: list[Path] | None = None) -> Iterator[Document]:
    for f in source_files(path) if files is None else files:
        opener = gzip.open if f.name.endswith(".gz") else open
        try:
            with opener(f, "rt", encoding="utf-8", errors="replace") as lines:
                for lineno, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise MixerError(f"{f}:{lineno}: invalid JSON ({exc.msg}); fix or remove that line") from None
                    if not isinstance(obj, dict) or text_field not in obj:
                        keys = ", ".join(sorted(obj)) if isinstance(obj, dict) else type(obj).__name__
                        raise MixerError(f"{f}:{lineno}: no field {text_field!r} (has: {keys}); pass --text-field")
                    yield f"{f.name}:{lineno}", str(obj[text_field] or "")
        except OSError as exc:
            raise MixerError(f"{f}: unreadable ({exc}); check the file") from None


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
            raise MixerError(f"{f}: no column {text_field!r} (has: {', '.join(names)}); pass --text-field")
        row = 0
        for batch in pf.iter_batches(columns=[text_field], batch_size=4096):
            for text in batch.column(0).to_pylist():
                yield f"{f.name}:{row}", text or ""
                row += 1


def read_hf_dataset(path: Path, text_field: str) -> Iterator[Document]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several unrelated types for a bad folder
        raise MixerError(f"{path}: not a dataset saved with save_to_disk ({type(exc).__name__}: {exc})") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise MixerError(f"{path}: DatasetDict has no 'train' split (has: {', '.join(ds)}); save the split to use")
        ds = ds["train"]
    if text_field not in ds.column_names:
        raise MixerError(f"{path}: no column {text_field!r} (has: {', '.join(ds.column_names)}); pass --text-field")
    for row, text in enumerate(ds.with_format("arrow").iter(batch_size=4096)):
        for i, t in enumerate(text[text_field].to_pylist()):
            yield f"{row * 4096 + i}", t or ""


def iter_documents(path: str | Path, text_field: str = "text", fmt: str = "auto",
                   files: list[Path] | None = None) -> Iterator[Document]:
    """Documents of one source, in a stable order, whatever the format; with `files` (a run of
    `source_files(path)`), only those files' documents (not for `hf`, which is read whole)."""
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "text":
        return read_text_files(path, files)
    if fmt == "jsonl":
        return read_jsonl(path, text_field, files)
    if fmt == "parquet":
        return read_parquet(path, text_field, files)
    if fmt == "hf":
        return read_hf_dataset(path, text_field)
    raise MixerError(f"{path}: unknown source format {fmt!r}; use text, jsonl, parquet or hf")
