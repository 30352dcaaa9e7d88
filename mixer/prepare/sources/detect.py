"""Which reader a path needs, by its files (`detect_format`: the format all of a folder's files
share, else text), and which of a folder's files hold records rather than prose (`record_files`,
for `mixer.prepare.inputs.resolve_format`'s refusal of a folder that mixes them with text)."""
from __future__ import annotations

from pathlib import Path

from mixer.core.errors import MixerError
from mixer.prepare.sources.codecs import inner_name

FORMATS = ("auto", "text", "json", "jsonl", "csv", "parquet", "hf")
_SHOWN = {"json": "JSON", "jsonl": "JSONL", "csv": "CSV", "parquet": "Parquet"}


def _is_hf_folder(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _format_of_name(name: str) -> str | None:
    name = inner_name(name)
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    return None


def detect_format(path: Path, files: list[Path] | None = None) -> str:
    """Name the reader for `path`: text, json, jsonl, csv, parquet or hf (a folder: the format all
    its files share, else text). `files`: the folder's `source_files`, when the caller has them."""
    if not path.exists():
        raise MixerError(f"{path}: source path does not exist; check --source DOMAIN=PATH")
    if path.is_file():
        return _format_of_name(path.name) or "text"
    if _is_hf_folder(path):
        return "hf"
    found = {_format_of_name(p.name) for p in (source_files(path) if files is None else files)}  # (what is read)
    return (found.pop() or "text") if len(found) == 1 else "text"


def record_files(files: list[Path]) -> tuple[list[Path], str]:
    """The files among `files` that hold records (JSON, JSONL, CSV, Parquet: not prose), and
    their formats as a message names them ("JSON/CSV")."""
    formats = [(f, _format_of_name(f.name)) for f in files]
    return [f for f, fmt in formats if fmt], "/".join(sorted({_SHOWN[fmt] for _, fmt in formats if fmt}))


def source_files(path: Path) -> list[Path]:
    """The files of a source, in the stable order every reader uses (the unit `prepare --ray` splits)."""
    if path.is_file():
        return [path]
    files = sorted((p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise MixerError(f"{path}: folder holds no files; point --source at text, JSON, JSONL, CSV, Parquet or a saved dataset")
    return files
