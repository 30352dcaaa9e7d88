"""`mixer prepare --ray`: the same corpus, byte for byte, from tasks on a Ray cluster.

    result = prepare_corpus(PrepareConfig(...), cluster=ClusterConfig("local", num_cpus=2))

Tasks: every domain's source files, in the readers' order (`source_files`), are cut into runs
of about `ClusterConfig.task_bytes` bytes (whole files; a bigger file, or a `save_to_disk`
folder, is one task). A task reads its documents and applies everything that depends on one
document only: the length rule, the document's xxh64, the language filter (only for an
English-only kind), the cut, and tokenization through the tokenizer's batch API. It returns,
per document in source order, what the driver needs to decide the rest (status, UTF-8 bytes,
id, English or not, token count) and the tokens of the documents that can survive (a duplicate
of an earlier document of the same task is not tokenized).

The driver then decides everything that depends on order or on the whole domain, exactly as the
single-machine pipeline does: `--max-docs`, duplicates (the first occurrence in source order is
kept, across tasks), the held-out split (`heldout_split`, a seeded hash of the kept ids), and
writes each domain with `write_domain`. Nothing decided there depends on which worker ran a task
or when it finished, so the folder equals `prepare_corpus(config)` byte for byte.

Where the bytes go: workers read the sources at the same absolute path as the driver (a
shared or replicated input folder). A task's result (tokens at 2 or 4 bytes each, about a
quarter of the cut text's bytes, plus 30 bytes per document) is returned to the driver, which
writes it to the task cache; with `shared_fs=True` the task writes it into the cache itself.
Memory per task: its source bytes as Python strings (up to 4x `task_bytes` for non-ASCII
text), the cut texts and their tokens; the driver holds one domain's kept tokens while writing.

Resuming: each task's result is kept in `.OUT.work/` (`mixer.core.task_cache`), keyed by its
files (path, size, modification time), the rules, seed, tokenizer and token dtype. Running the
same command again reruns only the tasks without a result; the corpus appears by one rename at
the end and the cache is then removed. A task's `MixerError` (bad JSON line, unreadable file)
is the driver's, with the same one line as on one machine.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xxhash
from tqdm.auto import tqdm

from mixer.core.atomic import atomic_dir
from mixer.core.cluster import ClusterConfig, connected, run_tasks, stop_for_tests
from mixer.core.errors import MixerError
from mixer.core.task_cache import TaskCache, pack, task_key, unpack, write_entry
from mixer.formats.corpus import token_dtype_for
from mixer.prepare.pipeline import (DomainReport, DomainSource, PrepareConfig, PrepareResult, check_kept,
                                    heldout_split, save_corpus_manifest)
from mixer.prepare.rules import EnglishFilter, PrepareRules, cut_document
from mixer.prepare.sources import detect_format, iter_documents, source_files
from mixer.prepare.tokenizer import resolve_tokenizer
from mixer.prepare.write import write_domain

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
    path = Path(src.path).resolve()
    fmt = detect_format(path) if src.fmt == "auto" else src.fmt

    def task(files: tuple[str, ...] | None) -> PrepareTask:
        return PrepareTask(domain=src.name, kind=src.kind, root=str(src.path), path=str(path), fmt=fmt,
                           text_field=src.text_field, files=files, rules=config.rules, seed=config.seed,
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
        raise MixerError(str(exc).replace(task.path, task.root)) from None


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
    for _, text in iter_documents(task.path, task.text_field, task.fmt, files=files):
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
        values = []
        for b in range(0, len(todo), task.batch_docs):
            encodings = tok.encode_batch(cuts[b : b + task.batch_docs], add_special_tokens=False)
            for (i, _, _), e in zip(todo[b : b + task.batch_docs], encodings):
                arrays["lengths"][i] = len(e.ids)
                values.append(np.array(e.ids, dtype=np.int64))
        tokens = np.concatenate(values) if values else np.zeros(0, np.int64)
    if len(tokens) and int(tokens.max()) > np.iinfo(dtype).max:
        raise MixerError(f"tokenizer: produced id {int(tokens.max())}, beyond the corpus token dtype {dtype}; "
                         "the tokenizer file is inconsistent")
    blobs.update({name: a.tobytes() for name, a in arrays.items()})
    blobs["tokens"] = tokens.astype(dtype).tobytes()
    meta = {"documents": n, "source_bytes": int(arrays["nbytes"].sum()), "rules_s": t1 - t0,
            "tokenize_s": time.perf_counter() - t1}
    data = pack(blobs, meta)
    if cache_dir is None:
        return data
    write_entry(cache_dir, key, data)
    return pack({}, meta)


# ---- driver -------------------------------------------------------------------------------------


@dataclass
class ClusterPrepareResult(PrepareResult):
    """`PrepareResult` plus which tasks (by key) ran now and which an interrupted run had finished."""

    tasks: int = 0
    ran: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()


def _load(cache: TaskCache, key: str, dtype: np.dtype) -> dict[str, np.ndarray]:
    data = cache.get(key)
    if data is None:  # pragma: no cover - written moments ago under the lock
        raise MixerError(f"{cache.folder}: task result {key[:12]} vanished; run the command again")
    blobs, _ = unpack(data)
    out = {name: np.frombuffer(blobs[name], dtype=dt) for name, dt in ARRAYS.items()}
    out["tokens"] = np.frombuffer(blobs["tokens"], dtype=dtype)
    return out


def _decide(results: list[dict[str, np.ndarray]], rep: DomainReport, config: PrepareConfig) -> dict:
    """The single-machine rules that need the whole domain in source order: --max-docs, then
    duplicates (first occurrence kept), then the language verdict; fills `rep`."""
    cat = {name: np.concatenate([r[name] for r in results]) for name in ARRAYS}
    ends = np.cumsum([len(r["tokens"]) for r in results])
    status = cat["status"]
    if config.max_docs is not None:  # the single-machine loop stops once max_docs documents were seen
        seen = (status != BINARY).astype(np.int64)
        n = int(np.searchsorted(np.cumsum(seen) - seen, config.max_docs, side="left"))
        cat = {name: a[:n] for name, a in cat.items()}
        status = cat["status"]
    rep.skipped_binary = int((status == BINARY).sum())
    rep.seen = int((status != BINARY).sum())
    rep.dropped["short"] = int((status == SHORT).sum())
    long = np.flatnonzero(status == LONG)
    if config.rules.dedup:
        _, first = np.unique(cat["ids"][long], return_index=True)
        cand = long[np.sort(first)]
    else:
        cand = long
    rep.dropped["duplicate"] = len(long) - len(cand)
    outcome = cat["outcome"][cand]
    if np.any(outcome == NOT_EVALUATED):  # pragma: no cover
        raise RuntimeError("a first occurrence was not evaluated by its task: a bug in mixer prepare --ray")
    rep.dropped["non_english"] = int((outcome == NOT_ENGLISH).sum())
    kept = cand[outcome == TOKENIZED]
    rep.kept = len(kept)
    mask = np.zeros(len(cat["status"]), dtype=bool)
    mask[kept] = True
    return {"mask": mask, "tokenized": cat["outcome"] == TOKENIZED, "ids": cat["ids"][kept],
            "lengths": cat["lengths"], "chars": int(cat["chars"][kept].sum()),
            "source_bytes": int(cat["nbytes"].sum()), "total_tokens": int(ends[-1]) if len(ends) else 0}


def _run(tasks: list[PrepareTask], keys: list[str], tok_json: str | None, dtype: np.dtype, cache: TaskCache,
         cluster: ClusterConfig | None, progress: bool, desc: str) -> tuple[list[str], list[str], float]:
    """Run the tasks that have no cached result; (keys run now, keys found finished, tokenizer
    seconds summed over tasks)."""
    finished = [cache.get(k) is not None for k in keys]
    todo = [i for i, done in enumerate(finished) if not done]
    reused = [k for k, done in zip(keys, finished) if done]
    shared = cluster is not None and cluster.shared_fs
    ran, mb, tokenize_cpu, t0 = [], 0.0, 0.0, time.perf_counter()
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="task", desc=desc, disable=not progress)
    with connected(cluster if todo else None) as ray, bar:  # nothing to run: no cluster to start
        tok_arg = ray.put(tok_json) if ray is not None and tok_json is not None else tok_json
        args = [(tasks[i], tok_arg, dtype.name, keys[i], str(cache.folder.resolve()) if shared else None)
                for i in todo]
        for j, result in run_tasks(prepare_task, args, cluster):
            i = todo[j]
            if not shared:
                cache.put(keys[i], result)
            ran.append(keys[i])
            _, meta = unpack(result)
            mb += meta["source_bytes"] / 1e6
            tokenize_cpu += meta["tokenize_s"]
            bar.update(1)
            bar.set_postfix_str(f"{mb / max(time.perf_counter() - t0, 1e-9):.1f} MB/s")
            stop_for_tests(len(ran))
    return ran, reused, tokenize_cpu


def _decide_all(config: PrepareConfig, keys: list[list[str]], cache: TaskCache,
                dtype: np.dtype) -> tuple[list[DomainReport], list[dict], list[np.ndarray]]:
    """Per domain: the rules' verdicts and the held-out split, raising in the single-machine order."""
    reports = [DomainReport(name=s.name, kind=s.kind) for s in config.sources]
    decided = []
    for src, rep, ks in zip(config.sources, reports, keys):
        decided.append(_decide([_load(cache, k, dtype) for k in ks], rep, config))
        check_kept(src, rep, config.rules)
    held = [heldout_split(src, dec["ids"].tolist(), config) for src, dec in zip(config.sources, decided)]
    return reports, decided, held


def _train_texts(config: PrepareConfig, keys: list[list[str]], cache: TaskCache, decided: list[dict],
                 held: list[np.ndarray]):
    """The training split's cut texts in the single-machine order (domain, then source order)."""
    for ks, dec, h in zip(keys, decided, held):
        blobs = [unpack(cache.get(k))[0] for k in ks]
        text = b"".join(b["text"] for b in blobs)
        sizes = np.concatenate([np.frombuffer(b["text_bytes"], np.int64) for b in blobs])
        ends = np.cumsum(sizes)
        starts = ends - sizes
        # texts are stored for the documents a task kept (outcome TOKENIZED), in document order
        stored = np.flatnonzero(dec["tokenized"])
        where = np.searchsorted(stored, np.flatnonzero(dec["mask"]))
        for k, train in zip(where, ~h):
            if train:
                yield text[starts[k] : ends[k]].decode("utf-8")


def prepare_on_cluster(config: PrepareConfig, out: Path, cluster: ClusterConfig | None) -> ClusterPrepareResult:
    """`prepare_corpus` as tasks (`cluster=None`: the same tasks in this process); the caller
    holds the output's lock. `--tokenizer train` runs the tasks twice: first for the cut texts,
    on which the driver trains the BPE exactly as one machine does, then for their tokens."""
    t_start = time.perf_counter()
    cache = TaskCache.open(out)
    try:
        return _prepare_cached(config, out, cluster, cache, t_start)
    finally:
        cache.remove_if_empty()  # a failure before any task finished leaves no folder behind


def _prepare_cached(config: PrepareConfig, out: Path, cluster: ClusterConfig | None, cache: TaskCache,
                    t_start: float) -> ClusterPrepareResult:
    by_domain = [plan_tasks(src, config, cluster.task_bytes if cluster else ClusterConfig().task_bytes)
                 for src in config.sources]
    tasks = [t for ts in by_domain for t in ts]
    at = np.cumsum([0] + [len(ts) for ts in by_domain])
    stats = [t.file_stats() for t in tasks]
    timings: dict[str, float] = {}

    def keys_for(tok_sha: str, dtype: np.dtype) -> list[str]:
        return [task_key({"v": TASK_VERSION, "task": asdict(t), "files": st, "tokenizer": tok_sha,
                          "dtype": dtype.name}) for t, st in zip(tasks, stats)]

    def per_domain(keys: list[str]) -> list[list[str]]:
        return [keys[at[d] : at[d + 1]] for d in range(len(by_domain))]

    ran, reused = [], []
    if config.tokenizer == "train":
        text_keys = keys_for("cut-texts", np.dtype(np.uint32))
        ran, reused, _ = _run(tasks, text_keys, None, np.dtype(np.uint32), cache, cluster, config.progress,
                              "read + rules")
        _, decided, held = _decide_all(config, per_domain(text_keys), cache, np.dtype(np.uint32))
        tok = resolve_tokenizer("train", _train_texts(config, per_domain(text_keys), cache, decided, held),
                                config.vocab_size)
    else:
        tok = resolve_tokenizer(config.tokenizer, None, config.vocab_size)
    dtype = token_dtype_for(tok.vocab_size)
    tok_json = tok.tokenizer.to_str()
    keys = keys_for(hashlib.sha256(tok_json.encode("utf-8")).hexdigest(), dtype)
    timings["tokenizer_load"] = time.perf_counter() - t_start

    t0 = time.perf_counter()
    now, found, tokenize_cpu = _run(tasks, keys, tok_json, dtype, cache, cluster, config.progress, "prepare tasks")
    ran, reused = ran + now, reused + found
    timings["tasks"] = time.perf_counter() - t0
    timings["tokenize_cpu"] = tokenize_cpu  # summed over tasks (they overlap: not a wall-time stage)

    t0 = time.perf_counter()
    reports, decided, held = _decide_all(config, per_domain(keys), cache, dtype)
    domains = {}
    with atomic_dir(out, overwrite=config.overwrite) as tmp:
        tok.tokenizer.save(str(tmp / "tokenizer.json"))
        for d, (src, rep) in enumerate(zip(config.sources, reports)):
            dec = decided[d]
            tokens = np.concatenate([_load(cache, k, dtype)["tokens"] for k in keys[at[d] : at[d + 1]]])
            tokens = tokens[: int(dec["lengths"].sum())]  # past --max-docs: not read
            if len(tokens) and int(tokens.max()) >= tok.vocab_size:
                raise MixerError(f"tokenizer {config.tokenizer}: produced an id beyond its vocab size "
                                 f"{tok.vocab_size}; the file is inconsistent")
            values = tokens[np.repeat(dec["mask"], dec["lengths"])]
            domains[src.name] = write_domain(tmp, src, rep, dec["ids"], dec["lengths"][dec["mask"]], values,
                                             held[d], dtype, config.part_tokens)
        manifest = save_corpus_manifest(tmp, tok, dtype, config, domains)
    cache.remove()
    timings["write"] = time.perf_counter() - t0
    return ClusterPrepareResult(manifest=manifest, reports=reports, timings=timings,
                                chars=sum(dec["chars"] for dec in decided),
                                source_bytes=sum(dec["source_bytes"] for dec in decided),
                                tasks=len(tasks), ran=tuple(ran), reused=tuple(reused))
