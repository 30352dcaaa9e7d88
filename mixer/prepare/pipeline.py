"""`mixer prepare`: raw text → tokenized Arrow domains with the paper's rules.

Stages, each timed (the benchmark reports the tokenizer's share):
1. read + rules: every source document passes the rules of `mixer.prepare.rules` (language
   identification in the worker pool); survivors are cut to 1000 characters;
2. split: a fixed number of documents per domain, chosen by a seeded hash of their ids,
   become the held-out split (kept in source order);
3. tokenizer: the GPT-2 BPE, the user's file, or a BPE trained on the training split only;
4. tokenize in parallel batches (`workers` processes, one tokenizer thread each);
5. write the Arrow parts, `tokenizer.json` and `corpus.json` into a temporary folder that is
   renamed to `out` at the very end.
Same inputs and seed give a byte-identical folder, whatever `workers` is.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import tempfile
import time
from dataclasses import replace
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from mixer.core.atomic import atomic_dir
from mixer.core.errors import MixerError
from mixer.core.lock import output_lock
from mixer.core.paths import refuse_nested
from mixer.core.units import format_count
from mixer.core.urls import as_typed, is_remote, publish_folder, require_local
from mixer.formats.corpus import MANIFEST_NAME, DomainInfo, token_dtype_for
from mixer.prepare.config import DomainReport, DomainSource, PrepareConfig, PrepareResult, check_kept, is_path
from mixer.prepare.heldout import heldout_rule, heldout_split
from mixer.prepare.rules import EnglishFilter, PrepareRules, cut_document, doc_hash
from mixer.prepare.inputs import fetch_remote, resolve_format
from mixer.prepare.sources import iter_documents
from mixer.prepare.tokenizer import encode_texts, resolve_tokenizer
from mixer.prepare.write import KeptDocuments, save_corpus_manifest, write_domain
from mixer.prepare.distributed import prepare_on_cluster

if TYPE_CHECKING:
    from mixer.core.cluster import ClusterConfig

_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---- worker side: one tokenizer / language identifier per process --------------------------
# One pool serves the whole run. Its workers start (and import) while the main process reads
# the sources; the tokenizer, known only after the rules ran, reaches them as a file path that
# each worker loads once.

_WORKER: dict = {}


def _init_worker(rules: PrepareRules) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER.clear()
    _WORKER["english"] = EnglishFilter(rules)


def _warm(load_language_model: bool) -> bool:
    if load_language_model:
        _WORKER["english"].is_english("warm up")  # loads langid's model while the main process reads
    return True


def _english_batch(texts: list[str]) -> list[bool]:
    return [_WORKER["english"].is_english(t) for t in texts]


def _tokenize_batch(task: tuple[str, list[str]]) -> tuple[np.ndarray, np.ndarray, float]:
    tokenizer_path, texts = task
    t0 = time.perf_counter()
    if _WORKER.get("tokenizer_path") != tokenizer_path:
        from tokenizers import Tokenizer

        _WORKER["tokenizer"] = Tokenizer.from_file(tokenizer_path)
        _WORKER["tokenizer_path"] = tokenizer_path
    lengths, values = encode_texts(_WORKER["tokenizer"], texts)
    return lengths, values, time.perf_counter() - t0


class _InProcess(Executor):
    """`workers=1`: the same functions, no pool (no start-up cost, easy to profile)."""

    def map(self, fn, *iterables, **kwargs):  # noqa: D102
        return map(fn, *iterables)


_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _pool(workers: int, rules: PrepareRules, language_model: bool = False) -> Executor:
    if workers <= 1:
        _init_worker(rules)
        return _InProcess()
    # Workers are the parallelism: their BLAS (langid's dot products) gets one thread each, or
    # two workers with two threads each thrash two cores. Spawned children copy os.environ.
    blas = {k: os.environ.get(k) for k in _BLAS_THREADS}
    os.environ.update({k: "1" for k in _BLAS_THREADS})
    try:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(rules,))
        for _ in range(workers):
            pool.submit(_warm, language_model)  # start every worker now, overlapping its imports with reading
    finally:
        for k, v in blas.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return pool


def _batches(items: Sequence, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


# ---- driver ---------------------------------------------------------------------------------


def validate_names(sources: Sequence[DomainSource]) -> None:
    if not sources:
        raise MixerError("no sources given; pass --source DOMAIN=PATH (or --domain-map FILE)")
    seen: set[str] = set()
    for s in sources:
        if not _DOMAIN_NAME.match(s.name):
            raise MixerError(f"domain name {s.name!r} is not a valid folder name; use letters, digits, '_', '-', '.'")
        if s.name in seen:
            raise MixerError(f"domain {s.name!r} is given twice; merge its paths into one folder or rename one")
        seen.add(s.name)


def validate_sources(sources: Sequence[DomainSource], rules: PrepareRules = PrepareRules()) -> None:
    validate_names(sources)
    for s in sources:
        if is_path(s.path):
            require_local(s.path, f"source of domain {s.name!r}")
        if is_path(s.path) and not Path(s.path).exists():
            raise MixerError(f"{s.path}: source path of domain {s.name!r} does not exist; check --source {s.name}=PATH")
        if s.kind not in rules.kinds():
            raise MixerError(f"domain {s.name!r}: unknown kind {s.kind!r}; use one of {', '.join(rules.kinds())} "
                             "(kinds choose rules: code/scientific cut a random block, encyclopedia keeps English only)")


def _filter_domain(src: DomainSource, config: PrepareConfig, pool: Executor, report: DomainReport,
                   bar: tqdm) -> tuple[list[int], list[str], int]:
    """Apply the rules to one domain; return kept doc ids, their cut texts, source bytes read."""
    rules = config.rules
    seen_hashes: set[int] = set()
    ids: list[int] = []
    texts: list[str] = []
    nbytes = 0
    for _, text in iter_documents(src.path, src.text_field, src.fmt, split=src.split):
        if config.max_docs is not None and report.seen >= config.max_docs:
            break
        if text is None:
            report.skipped_binary += 1
            continue
        report.seen += 1
        nbytes += len(text.encode("utf-8"))
        bar.update(1)
        if len(text) <= rules.min_chars:
            report.dropped["short"] += 1
            continue
        h = doc_hash(text)
        if rules.dedup and h in seen_hashes:
            report.dropped["duplicate"] += 1
            continue
        seen_hashes.add(h)
        ids.append(h)
        texts.append(text)
    if src.kind in rules.english_only_kinds and texts:
        batches = _batches(texts, max(1, min(config.batch_docs, 64)))  # small: langid is slow per document
        english = [ok for batch in pool.map(_english_batch, batches) for ok in batch]
        report.dropped["non_english"] = english.count(False)
        ids = [d for d, ok in zip(ids, english) if ok]
        texts = [t for t, ok in zip(texts, english) if ok]
    report.kept = len(ids)
    check_kept(src, report, rules)
    cut = [cut_document(t, d, src.kind, rules, config.seed) for d, t in zip(ids, texts)]
    return ids, cut, nbytes


def _tokenize(texts: list[str], tokenizer_path: str, pool: Executor, batch_docs: int,
              bar: tqdm) -> tuple[np.ndarray, np.ndarray, float]:
    lengths, values, secs = [], [], 0.0
    tasks = ((tokenizer_path, batch) for batch in _batches(texts, batch_docs))
    for ln, vals, dt in pool.map(_tokenize_batch, tasks):
        lengths.append(ln)
        values.append(vals)
        secs += dt
        bar.update(len(ln))
    return np.concatenate(lengths), np.concatenate(values), secs


def prepare_corpus(config: PrepareConfig, cluster: "ClusterConfig | None" = None) -> PrepareResult:
    """Raw text -> corpus folder `config.out`, holding the output's lock from the first step
    (a second `prepare` into the same folder fails at once, naming this one). With `cluster`
    the work runs as Ray tasks (`mixer.prepare.distributed`) and gives the same bytes. Sources on
    object storage (`s3://bucket/data.jsonl`) are fetched once into the local cache first
    (`mixer.prepare.inputs.fetch_remote`). An `out` on object storage (`s3://bucket/corpus`) is
    prepared into a local staging folder and uploaded, `corpus.json` last
    (`mixer.core.urls.publish_folder`): the objects are the files of the local run."""
    if is_remote(config.out):
        url = as_typed(config.out)
        return publish_folder(url, lambda folder: prepare_corpus(replace(config, out=folder, overwrite=False), cluster),
                              marker=MANIFEST_NAME, overwrite=config.overwrite)
    if any(is_path(s.path) and is_remote(s.path) for s in config.sources):
        validate_names(config.sources)  # a bad domain name fails before any download
        config = replace(config, sources=tuple(fetch_remote(s) for s in config.sources))
    validate_sources(config.sources, config.rules)
    # each path source's reader decided once, here (a folder mixing records with text: refused)
    config = replace(config, sources=tuple(replace(s, fmt=resolve_format(s)) if is_path(s.path) else s
                                           for s in config.sources))
    if config.heldout_docs is not None and config.heldout_docs < 0:
        raise MixerError(f"--heldout-docs {config.heldout_docs} is negative; use 0 or more")
    if not 0.0 <= config.heldout_fraction < 1.0:
        raise MixerError(f"--heldout-fraction {config.heldout_fraction}: choose a fraction in [0, 1)")
    if config.heldout_max < 0 or config.heldout_min < 0:
        raise MixerError(f"--heldout-max {config.heldout_max} / --heldout-min {config.heldout_min}: use 0 or more")
    if config.workers < 1:
        raise MixerError(f"--workers {config.workers}: need at least 1 process")
    out = require_local(config.out, "--out")
    for s in config.sources:
        if is_path(s.path):
            refuse_nested(out, s.path, f"the source of domain {s.name!r}")
    if out.exists() and not config.overwrite:
        raise MixerError(f"{out}: output already exists; choose another path or pass --overwrite")
    with output_lock(out):
        if cluster is not None:  # tasks on a Ray cluster, resumable: mixer.prepare.distributed

            return prepare_on_cluster(config, out, cluster)
        return _prepare_locked(config, out)


def _prepare_locked(config: PrepareConfig, out: Path) -> PrepareResult:
    timings: dict[str, float] = {}
    reports = [DomainReport(name=s.name, kind=s.kind) for s in config.sources]

    language_model = any(s.kind in config.rules.english_only_kinds for s in config.sources)
    with _pool(config.workers, config.rules, language_model) as pool, tempfile.TemporaryDirectory(prefix=f".{out.name}.tmp-scratch-", dir=out.parent) as scratch:
        t0 = time.perf_counter()
        filtered: dict[str, tuple[list[int], list[str]]] = {}
        source_bytes = 0
        with tqdm(desc="read + rules", unit="doc", disable=not config.progress) as bar:
            for src, rep in zip(config.sources, reports):
                ids, texts, nbytes = _filter_domain(src, config, pool, rep, bar)
                filtered[src.name] = (ids, texts)
                source_bytes += nbytes
        timings["read_rules"] = time.perf_counter() - t0

        splits = {src.name: heldout_split(src, filtered[src.name][0], config) for src in config.sources}

        t0 = time.perf_counter()
        train_texts = (t for name, (_, texts) in filtered.items() for t, h in zip(texts, splits[name]) if not h)
        tok = resolve_tokenizer(config.tokenizer, train_texts if config.tokenizer == "train" else None,
                                config.vocab_size)
        dtype = token_dtype_for(tok.vocab_size)
        tokenizer_path = str(Path(scratch) / "tokenizer.json")
        tok.tokenizer.save(tokenizer_path)
        timings["tokenizer_load"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        tokenized: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        tokenize_cpu = 0.0
        total_docs = sum(len(v[0]) for v in filtered.values())
        with tqdm(total=total_docs, desc="tokenize", unit="doc", disable=not config.progress) as bar:
            for name, (_, texts) in filtered.items():
                lengths, values, secs = _tokenize(texts, tokenizer_path, pool, config.batch_docs, bar)
                tokenized[name] = (lengths, values)
                tokenize_cpu += secs
        timings["tokenize"] = time.perf_counter() - t0
        timings["tokenize_cpu"] = tokenize_cpu
    if tokenized and max(int(v.max(initial=0)) for _, v in tokenized.values()) >= tok.vocab_size:
        raise MixerError(f"tokenizer {config.tokenizer}: produced an id beyond its vocab size {tok.vocab_size}; the file is inconsistent")

    t0 = time.perf_counter()
    domains: dict[str, DomainInfo] = {}
    with atomic_dir(out, overwrite=config.overwrite) as tmp:
        tok.tokenizer.save(str(tmp / "tokenizer.json"))
        for src, rep in zip(config.sources, reports):
            lengths, values = tokenized[src.name]
            kept = KeptDocuments(ids=np.array(filtered[src.name][0], dtype=np.uint64), lengths=lengths, values=values,
                                 held=splits[src.name])
            domains[src.name] = write_domain(tmp, src, rep, kept, dtype, config.part_tokens)
        manifest = save_corpus_manifest(tmp, tok, dtype, config, domains)
    timings["write"] = time.perf_counter() - t0
    chars = sum(len(t) for _, texts in filtered.values() for t in texts)
    return PrepareResult(manifest=manifest, reports=reports, timings=timings, chars=chars, source_bytes=source_bytes,
                         heldout_rule=heldout_rule(config))


def summary_table(result: PrepareResult):
    """A rich table: per domain, files skipped as not UTF-8 text (binary, or text in another
    encoding), documents seen, kept, dropped by each rule, tokens per split."""
    from rich.table import Table

    table = Table(title="mixer prepare", caption=result.heldout_rule or None)
    for col in ("domain", "kind", "not utf-8", "seen", "short", "dup", "non-en", "kept", "train docs", "train tok",
                "held docs", "held tok"):
        table.add_column(col, justify="left" if col in ("domain", "kind") else "right", no_wrap=True)
    for r in result.reports:
        table.add_row(r.name, r.kind, f"{r.skipped_binary}", f"{r.seen}", f"{r.dropped['short']}", f"{r.dropped['duplicate']}",
                      f"{r.dropped['non_english']}", f"{r.kept}", f"{r.train_docs}", format_count(r.train_tokens),
                      f"{r.heldout_docs}", format_count(r.heldout_tokens))
    return table
