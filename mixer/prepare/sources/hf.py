"""Hugging Face `datasets` sources: a folder written by `save_to_disk`, or in Python a `Dataset` /
`IterableDataset` (or a DatasetDict of them) itself; a DatasetDict's split as asked for, or its
only one (with a note), else an error naming the splits."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator

from mixer.core.errors import MixerError, MixerNote, listed
from mixer.prepare.sources.fields import FIELD_FIX, Document, check_text_column, text_of

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
    if isinstance(ds, datasets.Dataset):
        check_text_column(ds.data.schema.field(text_field).type, where, text_field)
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
        yield f"{row}", text_of(example[text_field], f"{where}: row {row}", text_field)
