"""`mixer prepare --ray`: the same corpus, byte for byte, from tasks on a Ray cluster (the driver).

    result = prepare_corpus(PrepareConfig(...), cluster=ClusterConfig("local", num_cpus=2))

The tasks (`mixer.prepare.tasks`) cut each domain's source files into runs of about
`ClusterConfig.task_bytes` and apply, on the workers, everything that depends on one document
only (length rule, id, language filter, cut, tokenization). The driver then decides everything
that depends on order or on the whole domain, exactly as the single-machine pipeline does:
`--max-docs`, duplicates (the first occurrence in source order is kept, across tasks), whether a
bad input is one that one machine would have read, the held-out split (`heldout_split`, a
seeded hash of the kept ids), and writes each domain with `write_domain`. Nothing decided there
depends on which worker ran a task or when it finished, so the folder equals
`prepare_corpus(config)` byte for byte. `--tokenizer train` runs the tasks twice: first for the
cut texts, on which the driver trains the BPE in the one-machine order, then for the tokens.

Where the bytes go: workers read the sources at the same absolute path as the driver (a
shared or replicated input folder). A task's result (tokens at 2 or 4 bytes each plus 34 bytes
per document; 14 % of the source bytes on the bundled corpus) is returned to the driver, which
writes it to the task cache; with `shared_fs=True` the task writes it into the cache itself.
Memory per task: about 160 MB of worker with the tokenizer, 110 MB more with the language model,
and about 1.2x its source bytes; the driver holds every domain's per-document verdicts (17 bytes
per document) and one domain's kept tokens while writing it.

Resuming: each task's result is kept in `.OUT.work/` (`mixer.core.task_cache`), keyed by its
files (path, size, modification time), the rules, seed, tokenizer and token dtype. Running the
same command again reruns only the tasks without a result; the corpus appears by one rename at
the end and the cache is then removed. A task's bad input (bad JSON line, unreadable file) is the
driver's `MixerError`, the same one line as on one machine, and is never cached.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mixer.core.atomic import atomic_dir
from mixer.core.cluster import ClusterConfig, connected, run_tasks, stop_for_tests
from mixer.core.errors import MixerError
from mixer.core.task_cache import TaskCache, task_key, unpack
from mixer.formats.corpus import token_dtype_for
from mixer.prepare.config import DomainReport, PrepareConfig, PrepareResult, check_kept
from mixer.prepare.heldout import heldout_rule, heldout_split
from mixer.prepare.tasks import (ARRAYS, BINARY, LONG, NOT_ENGLISH, NOT_EVALUATED, SHORT, TASK_VERSION, TOKENIZED,
                                 PrepareTask, plan_tasks, prepare_task)
from mixer.prepare.tokenizer import resolve_tokenizer
from mixer.prepare.write import KeptDocuments, save_corpus_manifest, write_domain

@dataclass
class ClusterPrepareResult(PrepareResult):
    """`PrepareResult` plus which tasks (by key) ran now and which an interrupted run had finished."""

    tasks: int = 0
    ran: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()


def _load(cache: TaskCache, key: str, dtype: np.dtype, failed: dict[str, bytes] | None = None) -> dict:
    data = (failed or {}).get(key) or cache.get(key)
    if data is None:  # pragma: no cover - written moments ago under the lock
        raise MixerError(f"{cache.folder}: task result {key[:12]} vanished; run the command again")
    blobs, meta = unpack(data)
    out = {name: np.frombuffer(blobs[name], dtype=dt) for name, dt in ARRAYS.items()}
    out["tokens"] = np.frombuffer(blobs["tokens"], dtype=dtype)
    out["error"] = meta["error"]
    return out


def _domain_results(cache: TaskCache, keys: list[str], dtype: np.dtype, failed: dict[str, bytes],
                    max_docs: int | None) -> list[dict]:
    """A domain's task results in source order, up to the first bad input; raise that input's
    error if one machine would have read it: `--max-docs` stops the reading loop when it asks
    for a document after the limit was reached, and a reader fails while producing the document
    after the last one it returned."""
    results = []
    for key in keys:
        results.append(_load(cache, key, dtype, failed))
        if results[-1]["error"] is not None:
            status = np.concatenate([r["status"] for r in results])
            seen_before_last = int((status[:-1] != BINARY).sum())  # before the last document returned
            if len(status) == 0 or max_docs is None or seen_before_last < max_docs:
                raise MixerError(results[-1]["error"])
            break
    return results


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
    return {"tasks": len(results), "mask": mask, "tokenized": cat["outcome"] == TOKENIZED, "ids": cat["ids"][kept],
            "lengths": cat["lengths"], "chars": int(cat["chars"][kept].sum()),
            "source_bytes": int(cat["nbytes"].sum()), "total_tokens": int(ends[-1]) if len(ends) else 0}


def _run(work: list[tuple[PrepareTask, str]], tok_json: str | None, dtype: np.dtype, cache: TaskCache,
         cluster: ClusterConfig | None, config: PrepareConfig, desc: str,
         failed: dict[str, bytes]) -> tuple[list[str], list[str], float]:
    """Run the tasks (`work`: each with its cache key) that have no cached result; (keys run now,
    keys found finished, tokenizer seconds summed over tasks). A task that met bad input fails the run at once, unless
    `--max-docs` may stop one machine before that input: then its partial result is kept in
    `failed` for `_decide_all` to judge."""
    tasks, keys = [t for t, _ in work], [k for _, k in work]
    finished = [cache.get(k) is not None for k in keys]
    todo = [i for i, done in enumerate(finished) if not done]
    reused = [k for k, done in zip(keys, finished) if done]
    shared = cluster is not None and cluster.shared_fs
    ran, mb, tokenize_cpu, t0 = [], 0.0, 0.0, time.perf_counter()
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="task", desc=desc, disable=not config.progress)
    with connected(cluster if todo else None) as ray, bar:  # nothing to run: no cluster to start
        tok_arg = ray.put(tok_json) if ray is not None and tok_json is not None else tok_json
        args = [(tasks[i], tok_arg, dtype.name, keys[i], str(cache.folder.resolve()) if shared else None)
                for i in todo]
        for j, result in run_tasks(prepare_task, args, cluster):
            i = todo[j]
            _, meta = unpack(result)
            if meta["error"] is not None:
                if config.max_docs is None:
                    raise MixerError(meta["error"])
                failed[keys[i]] = result
            elif not shared:
                cache.put(keys[i], result)
            ran.append(keys[i])
            mb += meta["source_bytes"] / 1e6
            tokenize_cpu += meta["tokenize_s"]
            bar.update(1)
            bar.set_postfix_str(f"{mb / max(time.perf_counter() - t0, 1e-9):.1f} MB/s")
            stop_for_tests(len(ran))
    return ran, reused, tokenize_cpu


def _decide_all(config: PrepareConfig, keys: list[list[str]], cache: TaskCache, dtype: np.dtype,
                failed: dict[str, bytes]) -> tuple[list[DomainReport], list[dict], list[np.ndarray]]:
    """Per domain: the rules' verdicts and the held-out split, raising in the single-machine order."""
    reports = [DomainReport(name=s.name, kind=s.kind) for s in config.sources]
    decided = []
    for src, rep, ks in zip(config.sources, reports, keys):
        decided.append(_decide(_domain_results(cache, ks, dtype, failed, config.max_docs), rep, config))
        check_kept(src, rep, config.rules)
    held = [heldout_split(src, dec["ids"].tolist(), config) for src, dec in zip(config.sources, decided)]
    return reports, decided, held


def _train_texts(keys: list[list[str]], cache: TaskCache, failed: dict[str, bytes], decided: list[dict],
                 held: list[np.ndarray]):
    """The training split's cut texts in the single-machine order (domain, then source order)."""
    for ks, dec, h in zip(keys, decided, held):
        blobs = [unpack(failed.get(k) or cache.get(k))[0] for k in ks[: dec["tasks"]]]
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

    ran, reused, failed = [], [], {}  # failed: results of tasks that met bad input (--max-docs may skip it)
    if config.tokenizer == "train":
        text_keys = keys_for("cut-texts", np.dtype(np.uint32))
        ran, reused, _ = _run(list(zip(tasks, text_keys)), None, np.dtype(np.uint32), cache, cluster, config, "read + rules",
                              failed)
        _, decided, held = _decide_all(config, per_domain(text_keys), cache, np.dtype(np.uint32), failed)
        tok = resolve_tokenizer("train", _train_texts(per_domain(text_keys), cache, failed, decided, held),
                                config.vocab_size)
    else:
        tok = resolve_tokenizer(config.tokenizer, None, config.vocab_size)
    dtype = token_dtype_for(tok.vocab_size)
    tok_json = tok.tokenizer.to_str()
    keys = keys_for(hashlib.sha256(tok_json.encode("utf-8")).hexdigest(), dtype)
    timings["tokenizer_load"] = time.perf_counter() - t_start

    t0 = time.perf_counter()
    now, found, tokenize_cpu = _run(list(zip(tasks, keys)), tok_json, dtype, cache, cluster, config, "prepare tasks", failed)
    ran, reused = ran + now, reused + found
    timings["tasks"] = time.perf_counter() - t0
    timings["tokenize_cpu"] = tokenize_cpu  # summed over tasks (they overlap: not a wall-time stage)

    t0 = time.perf_counter()
    reports, decided, held = _decide_all(config, per_domain(keys), cache, dtype, failed)
    domains = {}
    with atomic_dir(out, overwrite=config.overwrite) as tmp:
        tok.tokenizer.save(str(tmp / "tokenizer.json"))
        for d, (src, rep) in enumerate(zip(config.sources, reports)):
            dec = decided[d]
            tokens = np.concatenate([_load(cache, k, dtype, failed)["tokens"]
                                     for k in keys[at[d] : at[d] + dec["tasks"]]])
            tokens = tokens[: int(dec["lengths"].sum())]  # past --max-docs: not read
            if len(tokens) and int(tokens.max()) >= tok.vocab_size:
                raise MixerError(f"tokenizer {config.tokenizer}: produced an id beyond its vocab size "
                                 f"{tok.vocab_size}; the file is inconsistent")
            values = tokens[np.repeat(dec["mask"], dec["lengths"])]
            kept = KeptDocuments(ids=dec["ids"], lengths=dec["lengths"][dec["mask"]], values=values, held=held[d])
            domains[src.name] = write_domain(tmp, src, rep, kept, dtype, config.part_tokens)
        manifest = save_corpus_manifest(tmp, tok, dtype, config, domains)
    cache.remove()
    timings["write"] = time.perf_counter() - t0
    return ClusterPrepareResult(manifest=manifest, reports=reports, timings=timings,
                                chars=sum(dec["chars"] for dec in decided),
                                source_bytes=sum(dec["source_bytes"] for dec in decided),
                                heldout_rule=heldout_rule(config),
                                tasks=len(tasks), ran=tuple(ran), reused=tuple(reused))
