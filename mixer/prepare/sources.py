"""Raw-text readers for `mixer prepare`: each yields `(key, text)` documents in a stable order.

Supported inputs, chosen by what the path is:
- a folder of text files (every regular file below it, sorted by relative path; one file is
  one document; a file that is not UTF-8 text, e.g. an image or random bytes, is skipped: it
  comes out as ``(key, None)`` so the caller can count it);
- a `.jsonl` / `.jsonl.gz` file, or a folder of them (one JSON object per line, `text_field`);
- a `.json` file, or a folder of them: one JSON object (one document), an array of objects (one
  document each) or JSON Lines under a `.json` name, as `datasets`' json loader reads them
  (`text_field`);
- a `.csv` / `.tsv` file with a header row, or a folder of them (`text_field` column);
- a `.parquet` file or a folder of them (`text_field` column);
- a Hugging Face `datasets` folder written by `save_to_disk` (has `dataset_info.json` or
  `dataset_dict.json`), `text_field` column; of a DatasetDict, the `split` asked for, or its
  only split (with a note), else an error naming the splits;
- in Python, a `datasets.Dataset` / `IterableDataset` (or a DatasetDict of them) itself.

A file compressed whole (`.gz`, `.bz2`, `.xz`, `.zst`) is read through its codec and then as the
name inside says (`a.txt.gz` is text, `c4.json.gz` JSON, `pile.jsonl.zst` JSONL); one that is
damaged or cut short is one line naming it.

The text field is per source (`--source docs=a.jsonl:body`, `--text-field docs=body`), so
sources that name their text differently go into one corpus.

A folder is read by what its files are (`detect_format`). One that mixes structured-data files
(JSON, JSONL, CSV, Parquet) with others is refused for every kind but code (`resolve_format`): read as
text, a JSON file would be one document of raw markup (an email corpus that ships each message as
`.txt` and again as `.json` would be tokenized twice, once as JSON), and a Parquet file would be
skipped as binary. `--format DOMAIN=text` reads every file as plain text; a code domain does so
by default (a repository's JSON and CSV files are source text too).
"""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import xxhash

from mixer.core.errors import MixerError, MixerNote, listed
from mixer.core.urls import as_typed, cache_root, download_folder, filesystem, is_remote
from mixer.prepare.config import DomainSource

Document = tuple[str, str | None]  # (key, text); text None: a skipped binary / undecodable file
FIELD_FIX = "name the field with --source DOMAIN=PATH:FIELD or --text-field DOMAIN=FIELD"


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


def _is_hf_folder(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


FORMATS = ("auto", "text", "json", "jsonl", "csv", "parquet", "hf")
_SHOWN = {"json": "JSON", "jsonl": "JSONL", "csv": "CSV", "parquet": "Parquet"}
TEXT_AS_IS_KINDS = ("code",)  # a code folder's JSON and CSV files are source text: read as they are


class _ZstdFrames(io.RawIOBase):
    """A zstd file's content, frame after frame, streamed. `zstandard.open` and its stream
    reader return what they decoded of a truncated frame, or nothing, without a word; here a
    file that ends inside a frame raises `ZstdError`."""

    def __init__(self, path: Path) -> None:
        import zstandard

        self._file, self._zstd = open(path, "rb"), zstandard.ZstdDecompressor()
        self._frame, self._out, self._at = None, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._at == len(self._out):
            chunk = self._file.read(1 << 20)
            if not chunk:
                if self._frame is not None and not self._frame.eof:
                    import zstandard

                    raise zstandard.ZstdError("the file ends inside a frame (truncated)")
                return 0
            out = []
            while chunk:  # (a frame may end inside the chunk: the next one starts in its unused data)
                if self._frame is None or self._frame.eof:
                    self._frame = self._zstd.decompressobj()
                out.append(self._frame.decompress(chunk))
                chunk = self._frame.unused_data if self._frame.eof else b""
            self._out, self._at = b"".join(out), 0
        n = min(len(buffer), len(self._out) - self._at)
        buffer[:n] = self._out[self._at:self._at + n]
        self._at += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _zstd_open(f: Path, mode: str, **kw: Any):
    stream = io.BufferedReader(_ZstdFrames(f), 1 << 16)
    return io.TextIOWrapper(stream, **kw) if "t" in mode else stream


# A file compressed whole is read through its codec, whatever the format inside (`a.txt.gz`,
# `c4.json.gz`, `pile.jsonl.zst`): corpora ship so, and read as bytes it would be skipped as binary.
_CODECS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zst": _zstd_open}


def _opener(f: Path):
    """The open function for file `f`: its compression codec's, or the plain one."""
    return _CODECS.get(f.suffix.lower(), open)


def _codec_errors() -> tuple[type[BaseException], ...]:
    """What a damaged compressed file raises while read (`OSError` covers gzip and bz2)."""
    import zstandard

    return OSError, EOFError, lzma.LZMAError, zstandard.ZstdError


def _read_whole(f: Path) -> bytes:
    """The file's bytes, decompressed when it is compressed; a damaged one is one line naming it."""
    if _opener(f) is open:
        try:
            return f.read_bytes()
        except OSError as exc:
            raise MixerError(f"{f}: unreadable ({exc.strerror}); fix its permissions or remove it") from None
    try:
        with _opener(f)(f, "rb") as z:
            return z.read()
    except _codec_errors() as exc:
        raise MixerError(f"{f}: not a readable {f.suffix[1:]} file ({exc or type(exc).__name__}); check or remove "
                         "it") from None


def _inner_name(name: str) -> str:
    """The file's name inside its compression, lower case: `c4.JSON.gz` -> `c4.json`."""
    name = name.lower()
    suffix = "." + name.rsplit(".", 1)[-1]
    return name.removesuffix(suffix) if suffix in _CODECS else name


def _format_of_name(name: str) -> str | None:
    name = _inner_name(name)
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    return None


def detect_format(path: Path) -> str:
    """Name the reader for `path`: text, json, jsonl, csv, parquet or hf (a folder: the format all
    its files share, else text)."""
    if not path.exists():
        raise MixerError(f"{path}: source path does not exist; check --source DOMAIN=PATH")
    if path.is_file():
        return _format_of_name(path.name) or "text"
    if _is_hf_folder(path):
        return "hf"
    found = {_format_of_name(p.name) for p in source_files(path)}  # (the files the readers read)
    return (found.pop() or "text") if len(found) == 1 else "text"


def resolve_format(source: DomainSource) -> str:
    """The reader of a path `source`: its `fmt` when given (checked), else what `detect_format`
    finds. A folder read as text that holds structured-data files among others is refused
    unless the domain's kind reads them as text (`TEXT_AS_IS_KINDS`): one line naming the
    domain, the files and the two fixes."""
    if source.fmt not in FORMATS:
        raise MixerError(f"domain {source.name!r}: unknown source format {source.fmt!r}; use one of "
                         f"{', '.join(FORMATS)}")
    if source.fmt != "auto":
        return source.fmt
    path = Path(source.path)
    fmt = detect_format(path)
    if fmt != "text" or path.is_file() or source.kind in TEXT_AS_IS_KINDS:
        return fmt
    files = source_files(path)
    structured = [f for f in files if _format_of_name(f.name) is not None]  # (files of records, not of prose)
    if structured:
        kinds = "/".join(sorted({_SHOWN[_format_of_name(f.name)] for f in structured}))
        raise MixerError(
            f"{path}: domain {source.name!r} mixes {len(structured):,} {kinds} files (e.g. "
            f"{structured[0].relative_to(path).as_posix()}) with {len(files) - len(structured):,} other files; read "
            "as text, each would be one document of raw records; give --format "
            f"{source.name}=text to read every file as plain text, or point --source at files of one kind")
    return fmt


def source_files(path: Path) -> list[Path]:
    """The files of a source, in the stable order every reader uses (the unit `prepare --ray` splits)."""
    if path.is_file():
        return [path]
    files = sorted((p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise MixerError(f"{path}: folder holds no files; point --source at text, JSON, JSONL, CSV, Parquet or a saved dataset")
    return files


def read_text_files(path: Path, files: list[Path] | None = None) -> Iterator[Document]:
    for f in source_files(path) if files is None else files:
        yield (f.relative_to(path).as_posix() if path.is_dir() else f.name), decode_text(_read_whole(f))


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
    return str(obj[text_field] or "")


def read_jsonl(path: Path, text_field: str, files: list[Path] | None = None) -> Iterator[Document]:
    for f in source_files(path) if files is None else files:
        try:
            with _opener(f)(f, "rb") as lines:
                yield from _records(f, lines, text_field)
        except _codec_errors() as exc:
            raise MixerError(f"{f}: unreadable ({exc or type(exc).__name__}); check the file") from None


def read_json(path: Path, text_field: str, files: list[Path] | None = None) -> Iterator[Document]:
    """`.json` files as `datasets`' json loader reads them: one object (a document), an array of
    objects (a document each), or JSON Lines under a `.json` name (a document per line)."""
    for f in source_files(path) if files is None else files:
        data = _read_whole(f)
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
        with _opener(f)(f, "rt", encoding="utf-8-sig", newline="") as lines:
            rows = csv.reader(lines, delimiter="\t" if _inner_name(f.name).endswith(".tsv") else ",")
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
    except _codec_errors() as exc:
        raise MixerError(f"{f}: unreadable ({exc or type(exc).__name__}); check the file") from None


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
        row = 0
        for batch in pf.iter_batches(columns=[text_field], batch_size=4096):
            for text in batch.column(0).to_pylist():
                yield f"{f.name}:{row}", text or ""
                row += 1


def read_hf_dataset(path: Path, text_field: str, split: str | None = None) -> Iterator[Document]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several unrelated types for a bad folder
        raise MixerError(f"{path}: not a dataset saved with save_to_disk ({type(exc).__name__}: {exc})") from None
    return read_dataset(ds, text_field, split, where=str(path))


def pick_split(ds: Any, split: str | None, where: str) -> Any:
    """The split of a DatasetDict: the one asked for; with none asked, its only split (a note
    says which), else an error naming the splits (reading `train` silently would drop the rest)."""
    names = list(ds)
    if split is not None:
        if split not in ds:
            raise MixerError(f"{where}: DatasetDict has no split {split!r} (has: {', '.join(names)}); "
                             "pick one with --split")
        return ds[split]
    if len(names) != 1:
        raise MixerError(f"{where}: DatasetDict has splits {', '.join(names)}; say which to prepare with "
                         f"--split NAME (or --split DOMAIN=NAME)")
    warnings.warn(f"{where}: DatasetDict has one split, {names[0]!r}; preparing it", MixerNote, stacklevel=3)
    return ds[names[0]]


def read_dataset(ds: Any, text_field: str, split: str | None = None, where: str = "dataset") -> Iterator[Document]:
    """A `datasets` Dataset or IterableDataset (or a DatasetDict: see `pick_split`), in row order.
    Checked before the first document is read, so a wrong field or split fails at once."""
    import datasets

    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        ds = pick_split(ds, split, where)
    elif split is not None:
        raise MixerError(f"{where}: --split {split!r} given but the source has no splits; drop --split")
    if not isinstance(ds, (datasets.Dataset, datasets.IterableDataset)):
        raise MixerError(f"{where}: a {type(ds).__name__} is not a source; give a path, a datasets.Dataset "
                         "or a datasets.IterableDataset")
    columns = ds.column_names  # None for an IterableDataset whose features are unknown: checked per row
    if columns is not None and text_field not in columns:
        raise MixerError(f"{where}: no column {text_field!r} (has: {listed(columns)}); {FIELD_FIX}")
    return _dataset_rows(ds, text_field, where)


def _dataset_rows(ds: Any, text_field: str, where: str) -> Iterator[Document]:
    import datasets

    if isinstance(ds, datasets.Dataset):
        for row, text in enumerate(ds.with_format("arrow").iter(batch_size=4096)):
            for i, t in enumerate(text[text_field].to_pylist()):
                yield f"{row * 4096 + i}", t or ""
        return
    for row, example in enumerate(ds):
        if text_field not in example:
            raise MixerError(f"{where}: row {row} has no field {text_field!r} (has: {listed(example)}); "
                             f"{FIELD_FIX}")
        yield f"{row}", str(example[text_field] or "")


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


def fetch_remote(source: DomainSource) -> DomainSource:
    """`source` with an object-storage path (`s3://bucket/data.jsonl`, or a prefix of files)
    replaced by its local copy in `$MIXER_CACHE/sources/<key>/`, fetched once: the key hashes the
    URL and every object's name, size and ETag (or modification time), so a changed source is
    fetched again. The corpus does not record source paths, so it is the same bytes as when
    prepared from a local copy. Other sources are returned as they are."""
    if not isinstance(source.path, (str, os.PathLike)) or not is_remote(source.path):
        return source
    url = as_typed(source.path).rstrip("/")
    fs, root = filesystem(url)
    try:
        single = fs.isfile(root)
        listing = [fs.info(root)] if single else fs.find(root, detail=True).values()
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own types
        raise MixerError(f"{url}: cannot list the source of domain {source.name!r} ({type(exc).__name__}: {exc}); "
                         "check the URL, endpoint and credentials") from None
    stamp = sorted((str(o.get("name")), int(o.get("size") or 0), str(o.get("ETag") or o.get("mtime") or ""))
                   for o in listing)
    if not stamp:
        raise MixerError(f"{url}: source of domain {source.name!r} holds no objects; check --source "
                         f"{source.name}=URL")
    key = xxhash.xxh64_hexdigest(json.dumps([url, stamp]).encode())
    dest = cache_root() / "sources" / key
    if single:  # one object: a folder holding just it, under its own name (its suffix names the format)
        name = url.rsplit("/", 1)[-1]
        parent = url[:-len(name) - 1]
        folder = download_folder(parent, dest, only=[name])
        return replace(source, path=folder / name)
    return replace(source, path=download_folder(url, dest))
