"""Raw-text sources of `mixer prepare`: each reader yields `(key, text)` documents in a stable order.

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

A folder is read by what its files are; one that mixes record files with others is refused
unless its kind is code (`mixer.prepare.inputs`, which decides each domain's reader and fetches
sources on object storage).

Modules: `detect` (which reader a path needs), `readers` (text, JSON, JSONL, CSV, Parquet),
`codecs` (files compressed whole), `fields` (a record's text field), `hf` (`datasets`).
"""
from mixer.prepare.sources.codecs import read_whole
from mixer.prepare.sources.detect import FORMATS, detect_format, record_files, source_files
from mixer.prepare.sources.fields import FIELD_FIX, Document, text_of
from mixer.prepare.sources.hf import pick_split, read_dataset, read_hf_dataset
from mixer.prepare.sources.readers import (
    decode_text,
    iter_documents,
    read_csv,
    read_json,
    read_jsonl,
    read_parquet,
    read_text_files,
)

__all__ = ["FIELD_FIX", "FORMATS", "Document", "decode_text", "detect_format", "iter_documents", "pick_split", "read_csv",
           "read_dataset", "read_hf_dataset", "read_json", "read_jsonl", "read_parquet", "read_text_files", "read_whole",
           "record_files", "source_files", "text_of"]
