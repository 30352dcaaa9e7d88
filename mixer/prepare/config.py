"""What `mixer prepare` is asked to do and what it reports, shared by both of its paths.

The configuration (`PrepareConfig` of `DomainSource`s) and the per-domain report live below
the single-machine pipeline (`mixer.prepare.pipeline`) and the Ray driver
(`mixer.prepare.distributed`), so the tasks, the writer and both drivers import them from here
and the pipeline can hand a cluster run to the driver without either importing the other back.
`check_kept` is here too: both drivers raise the same error for a domain the rules leave empty.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixer.core.errors import MixerError
from mixer.formats.corpus import CorpusManifest
from mixer.prepare.rules import PrepareRules


@dataclass(frozen=True)
class DomainSource:
    name: str
    path: Path | Any  # a file or folder; in Python also a `datasets` Dataset / IterableDataset (/ Dict)
    kind: str = "web"  # decides the rules: code/scientific → random block; encyclopedia → English only
    fmt: str = "auto"  # text, json, jsonl, csv, parquet, hf or auto (`sources.resolve_format`)
    text_field: str = "text"
    split: str | None = None  # the split of a DatasetDict (None: its only split, else an error naming them)

    @property
    def where(self) -> str:
        """The source as errors name it: the path, or the kind of in-memory dataset."""
        return str(self.path) if is_path(self.path) else f"a {type(self.path).__name__}"


def is_path(source: Any) -> bool:
    return isinstance(source, (str, os.PathLike))


@dataclass(frozen=True)
class PrepareConfig:
    sources: tuple[DomainSource, ...]
    out: Path
    tokenizer: str = "gpt2"  # 'gpt2', 'train' or a tokenizer.json path
    vocab_size: int = 8192  # only for tokenizer='train'
    heldout_docs: int | None = None  # a fixed count per domain; None: the fraction rule below
    heldout_fraction: float = 0.05  # share of each domain's kept documents held out ...
    heldout_max: int = 10_000  # ... at most this many (the paper held out 10k per RedPajama domain) ...
    heldout_min: int = 50  # ... at least this many (a usable evaluation), but never over a quarter
    seed: int = 0
    workers: int = 1  # tokenizer / language-id processes
    rules: PrepareRules = field(default_factory=PrepareRules)
    max_docs: int | None = None  # read at most this many source documents per domain (quick runs)
    batch_docs: int = 512  # documents per task sent to a worker
    part_tokens: int = 1 << 28  # tokens per Arrow file before starting a new part
    overwrite: bool = False
    progress: bool = True


@dataclass
class DomainReport:
    name: str
    kind: str
    seen: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"short": 0, "duplicate": 0, "non_english": 0})
    skipped_binary: int = 0  # source files that were not UTF-8 text (not counted in `seen`)
    kept: int = 0
    train_docs: int = 0
    heldout_docs: int = 0
    train_tokens: int = 0
    heldout_tokens: int = 0


@dataclass
class PrepareResult:
    manifest: CorpusManifest
    reports: list[DomainReport]
    timings: dict[str, float]  # seconds per stage
    chars: int  # characters tokenized
    source_bytes: int  # UTF-8 bytes of all source documents read
    heldout_rule: str = ""  # the held-out rule in words, for the report


def check_kept(src: DomainSource, report: DomainReport, rules: PrepareRules) -> None:
    """The error for a domain the rules leave empty, naming what each rule dropped."""
    if report.seen == 0 and report.skipped_binary:
        raise MixerError(f"domain {src.name!r} ({src.where}): no text at all: all {report.skipped_binary} files are binary "
                         "or not UTF-8; point --source at a folder of UTF-8 text files")
    if not report.kept:
        d = report.dropped
        raise MixerError(
            f"domain {src.name!r} ({src.where}): no document left after the rules: of {report.seen} seen, "
            f"{d['short']} had <= {rules.min_chars} characters, {d['duplicate']} were duplicates, "
            f"{d['non_english']} were not English; add longer documents or lower --min-chars")
