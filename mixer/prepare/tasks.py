"""The tasks of `mixer prepare --ray`: what one worker does with one run of a domain's files.

`plan_tasks` cuts a domain's source files, in the readers' order (`source_files`), into runs of
about `task_bytes` bytes (whole files; a `save_to_disk` folder is one task). `prepare_task`
reads a run and applies everything that depends on one document only: the length rule, the
document's xxh64, the language filter (English-only kinds only), the cut, and tokenization
through the tokenizer's batch API. It returns, per document in source order, what the driver
(`mixer.prepare.distributed`) needs to decide the rest: status, UTF-8 bytes, id, outcome, token
count and cut length (34 bytes), and the tokens of the documents that can survive (a duplicate of
an earlier document of the same task is not tokenized). A reader error (bad JSON line,
unreadable file) ends the task; the documents before it are returned with the error, because
with `--max-docs` one machine may stop before reaching it.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash

from mixer.core.errors import MixerError
from mixer.core.task_cache import pack, write_entry
from mixer.prepare.config import DomainSource, PrepareConfig, is_path
from mixer.prepare.rules import EnglishFilter, PrepareRules, cut_document
from mixer.prepare.inputs import resolve_format
from mixer.prepare.sources import iter_documents, source_files
from mixer.prepare.tokenizer import encode_texts

TASK_VERSION = 1  # bump when a change makes cached task results of an older mixer wrong
BINARY, SHORT, LONG = 0, 1, 2  # per-document status
# per-document outcome of the task's own checks; TOKENIZED: passed them (tokenized, or its cut text kept)
NOT_ENGLISH, TOKENIZED, NOT_EVALUATED = 0, 1, 2
ARRAYS = {"status": np.uint8, "nbytes": np.int64, "ids": np.uint64, "outcome": np.uint8, "lengths": np.int64,
          "chars": np.int64}


@dataclass(frozen=True)
class PrepareTask:
    """One run of a domain's source files (all of it for a `save_to_disk` folder)."""

    domain: str
    kind: str
    root: str  # the source path as the user gave it (errors name files under it)
    path: str  # the same, absolute (what workers open)
    fmt: str
    text_field: str
    files: tuple[str, ...] | None  # absolute; None: the whole source
    split: str | None
    rules: PrepareRules
    seed: int
    batch_docs: int

    def file_stats(self) -> list[tuple[str, int, int]]:
        """(path, size, mtime_ns) of every file the task reads: a changed input misses the cache."""
        files = self.files if self.files is not None else sorted(
            str(p) for p in Path(self.path).rglob("*") if p.is_file())
        stats = []
        for f in files:
            st = os.stat(f)
            stats.append((f, st.st_size, st.st_mtime_ns))
        return stats


def plan_tasks(src: DomainSource, config: PrepareConfig, task_bytes: int) -> list[PrepareTask]:
    """A domain's tasks, in source order: runs of whole files of about `task_bytes` bytes."""
    if not is_path(src.path):
        raise MixerError(f"domain {src.name!r}: a {type(src.path).__name__} object cannot be sent to a cluster; "
                         "save it with save_to_disk and give that folder, or prepare without a cluster")
    path = Path(src.path).resolve()
    fmt = resolve_format(src)

    def task(files: tuple[str, ...] | None) -> PrepareTask:
        return PrepareTask(domain=src.name, kind=src.kind, root=str(src.path), path=str(path), fmt=fmt,
                           text_field=src.text_field, files=files, split=src.split, rules=config.rules, seed=config.seed,
                           batch_docs=config.batch_docs)

    if fmt == "hf":
        return [task(None)]
    tasks, run, size = [], [], 0
    for f in source_files(path):
        n = f.stat().st_size
        if run and size + n > task_bytes:
            tasks.append(task(tuple(run)))
            run, size = [], 0
        run.append(str(f))
        size += n
    tasks.append(task(tuple(run)))
    return tasks


# ---- worker side ------------------------------------------------------------------------------

_WORKER: dict = {}  # per process: the tokenizer (by sha256) and the language identifier


def _tokenizer(tokenizer_json: str):
    sha = hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest()
    if _WORKER.get("tokenizer_sha") != sha:
        from tokenizers import Tokenizer

        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per task: the cluster is the parallelism
        _WORKER["tokenizer"], _WORKER["tokenizer_sha"] = Tokenizer.from_str(tokenizer_json), sha
    return _WORKER["tokenizer"]


def prepare_task(task: PrepareTask, tokenizer_json: str | None, dtype_name: str, key: str,
                 cache_dir: str | None) -> bytes:
    """Read, check, cut and tokenize one task's documents (see the module docstring); with no
    tokenizer (`--tokenizer train`, first pass) keep the cut texts instead of tokens."""
    try:
        return _prepare_task(task, tokenizer_json, np.dtype(dtype_name), key, cache_dir)
    except MixerError as exc:  # name files as the user gave them, as the single-machine run does
        raise MixerError(_as_given(task, exc)) from None


def _as_given(task: PrepareTask, exc: MixerError) -> str:
    return str(exc).replace(task.path, task.root)


def _prepare_task(task: PrepareTask, tokenizer_json: str | None, dtype: np.dtype, key: str,
                  cache_dir: str | None) -> bytes:
    t0 = time.perf_counter()
    rules = task.rules
    files = None if task.files is None else [Path(f) for f in task.files]
    n = 0
    cols = {name: [] for name in ARRAYS}
    seen: set[int] = set()
    # (document index, cut text, the head the language identifier reads) of documents that can
    # survive: the full text is dropped at once, so a task holds ~3000 characters per document
    todo: list[tuple[int, str, str | None]] = []
    english_only = task.kind in rules.english_only_kinds
    error = None  # a bad input: the documents before it are kept, the driver decides if one machine reads it
    documents = iter_documents(task.path, task.text_field, task.fmt, files=files, split=task.split)
    while True:
        try:
            _, text = next(documents)
        except StopIteration:
            break
        except MixerError as exc:
            error = _as_given(task, exc)
            break
        raw = b"" if text is None else text.encode("utf-8")
        status = BINARY if text is None else SHORT if len(text) <= rules.min_chars else LONG
        h = xxhash.xxh64_intdigest(raw) if status == LONG else 0  # = rules.doc_hash(text)
        outcome, chars = NOT_EVALUATED, 0
        if status == LONG and not (rules.dedup and h in seen):
            seen.add(h)
            cut = cut_document(text, h, task.kind, rules, task.seed)
            todo.append((n, cut, text[: rules.language_chars] if english_only else None))
            outcome, chars = TOKENIZED, len(cut)
        for name, v in zip(ARRAYS, (status, len(raw), h, outcome, 0, chars)):
            cols[name].append(v)
        n += 1
    arrays = {name: np.array(cols[name], dtype=dt) for name, dt in ARRAYS.items()}
    if english_only and todo:
        english = _WORKER.setdefault(("english", rules.language_chars), EnglishFilter(rules))
        ok = [english.is_english(head) for _, _, head in todo]
        arrays["outcome"][[i for (i, _, _), good in zip(todo, ok) if not good]] = NOT_ENGLISH
        todo = [d for d, good in zip(todo, ok) if good]
    t1 = time.perf_counter()
    cuts = [c for _, c, _ in todo]
    blobs = {}
    if tokenizer_json is None:  # --tokenizer train, first pass: the cut texts, for the driver to train on
        encoded = [c.encode("utf-8") for c in cuts]
        blobs["text"] = b"".join(encoded)
        blobs["text_bytes"] = np.array([len(e) for e in encoded], dtype=np.int64).tobytes()
        tokens = np.zeros(0, np.int64)
    else:
        tok = _tokenizer(tokenizer_json)
        parts = [encode_texts(tok, cuts[b : b + task.batch_docs]) for b in range(0, len(cuts), task.batch_docs)]
        if parts:
            arrays["lengths"][[i for i, _, _ in todo]] = np.concatenate([n for n, _ in parts])
        tokens = np.concatenate([v for _, v in parts] or [np.zeros(0, np.int64)])
    if len(tokens) and int(tokens.max()) > np.iinfo(dtype).max:
        raise MixerError(f"tokenizer: produced id {int(tokens.max())}, beyond the corpus token dtype {dtype}; "
                         "the tokenizer file is inconsistent")
    blobs.update({name: a.tobytes() for name, a in arrays.items()})
    blobs["tokens"] = tokens.astype(dtype).tobytes()
    meta = {"documents": n, "source_bytes": int(arrays["nbytes"].sum()), "rules_s": t1 - t0,
            "tokenize_s": time.perf_counter() - t1, "error": error}
    data = pack(blobs, meta)
    if cache_dir is None or error is not None:  # a failed task is never cached: its input may be fixed
        return data
    write_entry(cache_dir, key, data)
    return pack({}, meta)
