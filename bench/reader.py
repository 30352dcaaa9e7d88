"""Tokens/s delivered to a training loop by MixtureStream (shards) and MixtureSampler (corpus),
against the same work done by hand and three peers, in one run on the same sequences.

    python -m bench.reader [--tokens 64M] [--seq-len 1024] [--batch-size 8] [--repeats 5]
    python -m bench.reader --quick          # seconds: a smoke test (4M tokens, one round)
    python -m bench.reader --no-peers --tokens 16M --repeats 15 --only decode_widen_tokens,stream_tokens_1thread

* ours: a consumer loop over `stream.loader(num_workers)` (`mixer.stream.loader`), each batch
  `input_ids` + `domain_ids` int64 [B, L] tensors (as a trainer receives them). "1 thread" is
  `read_ahead=0, num_workers=0`: everything on the consumer's thread; "0 workers" adds the
  default decode-ahead thread; "2 workers" two DataLoader worker processes. The per-sequence
  `DataLoader(stream, batch_size=B, num_workers=0|2)` (what the loader replaces) is beside it.
* decode + widen: the same shard bytes read, zstd-decoded and widened to int64 (tokens and the
  domain sidecar) on one thread, no stream around it: the floor of the stream's own work.
* litdata 0.2.76: `optimize(..., TokensLoader())` of the same rows (uncompressed, its best),
  read by `StreamingDataLoader(StreamingDataset(...), batch_size=B, num_workers=0|2)`, tokens
  only (TokensLoader has no field for domain ids), in its own process (`bench/litdata_peer.py`;
  its own venv when it does not import here; skipped with a note when neither works).
* Hugging Face datasets: `interleave_datasets` over per-domain pools of the same corpus packed
  into rows with the same probabilities and a per-row domain column. 0 workers: its fastest
  mode, `with_format("arrow").iter(batch_size=B)` with a zero-copy flatten of the tokens to
  NumPy uint16 (no int64 tensors: less work than ours); 2 workers: a DataLoader over
  `with_format("torch")`, its documented torch path.
* MosaicML streaming 0.13 (`--mosaic`, off by default: its own venv, ~3 min on first use).

Every figure is the median of `--repeats` rounds; within a round every configuration runs once,
in the same order, so load changes hit all alike. Each run's CPU time in this process is kept
beside its wall time (`cpu_tokens_per_s`: all the work of a 1-thread configuration, robust to
other jobs on a shared machine; the worker configurations' workers are not in it). Goals (issue 28) are printed with their ratio,
met or MISSED. Token ids are Zipf-distributed (`bench.common.zipf_map`), so the shards compress
as real ones do. Writes bench/results/reader.json (or --out) with the load average before and
after, thread counts and versions.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import goal, machine, zipf_map
from bench.reader_peers import (
    LITDATA_PINS,
    STREAMING_PINS,
    WEIGHTS,
    HFPeer,
    bench_mosaic,
    litdata_pass,
    litdata_python,
    litdata_run,
    streaming_python,
)

RESULTS = Path(__file__).parent / "results" / "reader.json"


def make_data(work: Path, budget: int, seq_len: int) -> tuple[Path, Path, Path]:
    """A synthetic corpus (1.5x what each domain needs), its shards, and the raw token rows."""
    from mixer.formats.shards import read_index, read_shard
    from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.shards.write import ShardConfig, write_shards

    corpus, shards, raw = work / "corpus", work / "shards", work / "stream.u16"
    mean = 500
    lengths = {d: lognormal_lengths(int(1.5 * w * budget / mean) + 10, mean, 1.0, i)
               for i, (d, w) in enumerate(WEIGHTS.items())}
    write_synthetic_corpus(corpus, lengths, vocab_size=50257, seed=0, token_map=zipf_map(50257))
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=budget, seq_len=seq_len, seed=0))
    # 4M-token shards (at least 4 shards for small smoke runs, so workers have shards to share)
    write_shards(plan, corpus, shards, ShardConfig(shard_tokens=min(1 << 22, max(seq_len, budget // 4)), workers=2))
    index = read_index(shards)
    with open(raw, "wb") as f:
        f.writelines(read_shard(shards / e.file, index).tobytes() for e in index.shards)
    return corpus, shards, raw


def decode_widen(shards: Path, domains: bool) -> int:
    """The stream's own work done by hand on one thread: read each shard (and its domain
    sidecar), zstd-decode, widen to int64. Returns tokens."""
    import zstandard

    from mixer.formats.shards import read_index

    index = read_index(shards)
    dctx = zstandard.ZstdDecompressor()
    tokens = 0
    for e in index.shards:
        ids = np.frombuffer(dctx.decompress((shards / e.file).read_bytes()), dtype=index.dtype).astype(np.int64)
        if domains:
            side = np.frombuffer(dctx.decompress((shards / e.domains.file).read_bytes()), dtype=index.domain_dtype)
            side.astype(np.int64)
        tokens += ids.size
    return tokens


def consume(batches) -> tuple[int, int, float]:
    """Tokens of one pass over an iterable of batches (dicts of [B, L] tensors); and the tokens
    and seconds after its first eighth of batches: the steady state, once workers have started
    and the first shards are decoded (a training run streams far longer than one pass here)."""
    try:
        mark = max(1, len(batches) // 8)
    except TypeError:  # (an iterable without a length: no steady-state figure)
        mark = -1
    tokens = steady_from = 0
    t_mark = time.perf_counter()
    for k, batch in enumerate(batches, 1):
        tokens += batch["input_ids"].numel()
        batch.get("domain_ids")  # delivered alongside unless domain_ids=False: one int64 per token
        if k == mark:
            steady_from, t_mark = tokens, time.perf_counter()
    return tokens, tokens - steady_from, time.perf_counter() - t_mark


def capped(batches, tokens_wanted: int) -> int:
    tokens = 0
    for batch in batches:
        tokens += batch["input_ids"].numel()
        if tokens >= tokens_wanted:
            break
    return tokens


def configurations(corpus: Path, shards: Path, budget: int, L: int, B: int, slow_tokens: int,
                   hf: HFPeer | None, lit: tuple[Path, Path] | None) -> dict[str, Callable[[], int]]:
    """name -> one timed pass returning the tokens it delivered."""
    from torch.utils.data import DataLoader

    from mixer import MixtureSampler, MixtureStream

    def stream(**kw):
        return MixtureStream(shards, rank=0, world_size=1, batch_size=B, **kw)

    def sampler(**kw):
        return MixtureSampler(corpus, WEIGHTS, budget, L, 0, rank=0, world_size=1, batch_size=B, **kw)

    runs: dict[str, Callable[[], int]] = {
        "decode_widen": lambda: decode_widen(shards, True),
        "decode_widen_tokens": lambda: decode_widen(shards, False),
        "stream_1thread": lambda: consume(stream(read_ahead=0).loader(0)),
        "stream_w0": lambda: consume(stream().loader(0)),
        "stream_w2": lambda: consume(stream().loader(2)),
        "stream_tokens_1thread": lambda: consume(stream(read_ahead=0, domain_ids=False).loader(0)),
        "stream_tokens_w2": lambda: consume(stream(domain_ids=False).loader(2)),
        "stream_perseq_w0": lambda: consume(DataLoader(stream(), batch_size=B, num_workers=0)),
        "stream_perseq_w2": lambda: capped(DataLoader(stream(), batch_size=B, num_workers=2), slow_tokens),
        "sampler_w0": lambda: consume(sampler().loader(0)),
        "sampler_w2": lambda: consume(sampler().loader(2)),
    }
    if hf is not None:
        rows = min(budget // L, 20000)
        runs["hf_arrow"] = lambda: hf.arrow_pass(B, rows)
        runs["hf_torch_w0"] = lambda: hf.torch_pass(B, 0, slow_tokens)
        runs["hf_torch_w2"] = lambda: hf.torch_pass(B, 2, slow_tokens)
    if lit is not None:
        python, out = lit
        for w in (0, 2):
            runs[f"litdata_w{w}"] = lambda w=w: litdata_pass(python, out, L, B, w)
    return runs


def alternate(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict]:
    """Every configuration once per round, `repeats` rounds; the median tokens/s of each."""
    seen: dict[str, list] = {name: [] for name in runs}
    steady: dict[str, list] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0, c0, w0 = time.perf_counter(), time.process_time(), _children_cpu()
            out = fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if isinstance(out, dict):  # a peer in its own process times its own loop
                seen[name].append((out["tokens"], out["wall_s"], None, None))
                continue
            if isinstance(out, tuple):  # (tokens, tokens after the first eighth, their seconds)
                out, later, later_s = out
                steady[name].append(later / later_s)
            # the workers' CPU: DataLoader workers are joined at the pass's end, so counted by then
            seen[name].append((out, wall, cpu, _children_cpu() - w0))
    res = {}
    for name, obs in seen.items():
        rates = [t / w for t, w, _, _ in obs]
        res[name] = {"tokens_per_s": float(np.median(rates)), "runs_tokens_per_s": rates, "tokens": obs[-1][0]}
        if obs[0][2] is not None:
            cpu = [t / c for t, _, c, _ in obs]
            res[name].update(cpu_tokens_per_s=float(np.median(cpu)), runs_cpu_tokens_per_s=cpu,
                             cpu_ns_per_token=float(np.median([c / t * 1e9 for t, _, c, _ in obs])),
                             workers_cpu_ns_per_token=float(np.median([k / t * 1e9 for t, _, _, k in obs])))
        if steady[name]:
            res[name].update(steady_tokens_per_s=float(np.median(steady[name])), runs_steady_tokens_per_s=steady[name])
    return res


def _children_cpu() -> float:
    """User + system seconds of this process's finished (joined) child processes."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def report(r: dict[str, dict], notes: list[str]) -> dict[str, float]:
    """Print every figure and each goal with its ratio; returns the ratios."""
    def f(name: str) -> float | None:
        return r[name]["tokens_per_s"] if name in r else None

    def m(name: str) -> str:
        return "-" if f(name) is None else f"{f(name) / 1e6:,.1f} M"

    print(f"MixtureStream, domain ids:  1 thread {m('stream_1thread')} tok/s | 0 workers {m('stream_w0')} | "
          f"2 workers {m('stream_w2')}")
    print(f"MixtureStream, tokens only: 1 thread {m('stream_tokens_1thread')} | 2 workers {m('stream_tokens_w2')}")
    print(f"MixtureStream per sequence through DataLoader(batch_size=B): 0 workers {m('stream_perseq_w0')} | "
          f"2 workers {m('stream_perseq_w2')}")
    print(f"MixtureSampler, domain ids: 0 workers {m('sampler_w0')} | 2 workers {m('sampler_w2')}")
    print(f"decode + widen by hand, 1 thread: tokens + domains {m('decode_widen')} | tokens {m('decode_widen_tokens')}")
    print(f"litdata TokensLoader (tokens only): 0 workers {m('litdata_w0')} | 2 workers {m('litdata_w2')}")
    print(f"datasets: arrow .iter() + zero-copy flatten {m('hf_arrow')} | torch DataLoader 0 workers "
          f"{m('hf_torch_w0')} | 2 workers {m('hf_torch_w2')}")
    ratios: dict[str, float] = {}

    def check(key: str, num: str, den: str, target: float | None, what: str) -> None:
        if f(num) is None or f(den) is None:
            print(f"  {what}: not measured")
            return
        ratios[key] = f(num) / f(den)
        cpu = [r[k].get("cpu_tokens_per_s") for k in (num, den)]
        on_cpu = f"; CPU time {cpu[0] / cpu[1]:.2f}x" if key.endswith("decode_widen") and None not in cpu else ""
        print(f"  {what}: {ratios[key]:.2f}x" + (f" ({goal(ratios[key], target)}{on_cpu})" if target else ""))

    for name, what in (("stream_1thread", "1 thread"), ("stream_w0", "0 workers"), ("stream_w2", "2 workers")):
        if name in r and "steady_tokens_per_s" in r[name]:
            x = r[name]
            print(f"MixtureStream, domain ids, {what}: steady state (after the pass's first eighth) "
                  f"{x['steady_tokens_per_s'] / 1e6:,.1f} M tok/s; CPU per token: the training process "
                  f"{x['cpu_ns_per_token']:.2f} ns, its workers {x['workers_cpu_ns_per_token']:.2f} ns")
    print("goals (issue 28); headline 1 thread vs 1 thread, 2 workers beside it:")
    check("loader_w2_vs_w0", "stream_w2", "stream_w0", 1.5, "stream.loader(2) vs its own 0 workers")
    check("loader_w2_vs_1thread", "stream_w2", "stream_1thread", None, "   (2 workers vs 1 thread)")
    if all(k in r and "steady_tokens_per_s" in r[k] for k in ("stream_w2", "stream_w0")):
        ratios["loader_w2_vs_w0_steady"] = r["stream_w2"]["steady_tokens_per_s"] / r["stream_w0"]["steady_tokens_per_s"]
        print(f"     (steady state, after the pass's first eighth: {ratios['loader_w2_vs_w0_steady']:.2f}x)")
    check("stream_vs_litdata_1thread", "stream_1thread", "litdata_w0", 1.5,
          "stream (domain ids, 1 thread) vs litdata (tokens only, 0 workers)")
    check("stream_vs_litdata_w2", "stream_w2", "litdata_w2", 1.5, "   2 workers vs 2 workers")
    check("stream_vs_hf_1thread", "stream_1thread", "hf_arrow", 1.2,
          "stream (domain ids, 1 thread) vs datasets' fastest (arrow, uint16)")
    check("stream_vs_hf_w2", "stream_w2", "hf_torch_w2", 1.2, "   2 workers vs its 2-worker DataLoader")
    check("stream_vs_decode_widen", "stream_1thread", "decode_widen", 0.8,
          "batched stream (1 thread) vs decode + widen of the same bytes (1 thread)")
    check("stream_tokens_vs_decode_widen", "stream_tokens_1thread", "decode_widen_tokens", 0.8,
          "   tokens only")
    check("loader_vs_perseq_dataloader_w2", "stream_w2", "stream_perseq_w2", None,
          "stream.loader(2) vs DataLoader(stream, batch_size=B, num_workers=2) (before)")
    for n in notes:
        print(f"note: {n}")
    return ratios


def run(argv: list[str] | None = None) -> dict:
    from mixer.core.units import parse_count

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default=None, help="Budget of the stream (tokens; default 64M, --quick 4M).")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--slow-tokens", default=None, help="Tokens the slow worker paths of the per-sequence "
                    "stream and of datasets read (default 8M, --quick 1M).")
    ap.add_argument("--repeats", type=int, default=None, help="alternated rounds; the median is quoted "
                    "(default 5, --quick 1)")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mixer" / "bench")
    ap.add_argument("--mosaic", action="store_true", help="Add the MosaicML streaming peer (own venv).")
    ap.add_argument("--no-peers", action="store_true", help="Only ours and decode + widen.")
    ap.add_argument("--only", default=None, help="Comma-separated configurations to run (e.g. "
                    "decode_widen_tokens,stream_tokens_1thread); default all.")
    ap.add_argument("--quick", action="store_true",
                    help="Smoke test: 4M tokens, 1 round, no venv created, 1M slow tokens.")
    ap.add_argument("--out", type=Path, default=None, help="Result JSON (default bench/results/reader.json; "
                    "--quick or --only: not written unless given).")
    args = ap.parse_args(argv)
    quick = {"tokens": "4M", "repeats": 1, "slow_tokens": "1M"}
    full = {"tokens": "64M", "repeats": 5, "slow_tokens": "8M"}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    before = machine({"consumer": 1, "stream_1thread": 1, "stream_w0": "1 + 1 decode-ahead thread",
                      "dataloader_workers": "0 and 2 (said per row)", "decode_widen": 1})
    budget, L, B = parse_count(args.tokens), args.seq_len, args.batch_size
    slow = parse_count(args.slow_tokens)
    work = Path(tempfile.mkdtemp(prefix="mixer-bench-reader-"))
    notes: list[str] = []
    try:
        t0 = time.perf_counter()
        corpus, shards, raw = make_data(work, budget, L)
        print(f"data: {budget / 1e6:.0f}M tokens, seq_len {L}, B {B}, {len(list(shards.glob('shard-?????.zst')))} "
              f"shards ({time.perf_counter() - t0:.1f} s to build); load average {os.getloadavg()[0]:.2f}", flush=True)
        hf = lit = None
        versions: dict[str, str] = {}
        if not args.no_peers:
            hf = HFPeer(corpus, L)
            python, how = litdata_python(args.cache, may_create=not args.quick)
            if python is None:
                notes.append(f"litdata skipped: {how}")
            else:
                try:
                    litdata_run(python, "write", raw, work / "litdata", L)
                    lit = (python, work / "litdata")
                    versions["litdata"] = litdata_run(python, "version").strip()
                    versions["litdata_python"] = str(python)
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    notes.append(f"litdata skipped: {exc}")
        runs = configurations(corpus, shards, budget, L, B, slow, hf, lit)
        if args.only:
            wanted = set(args.only.split(","))
            if wanted - set(runs):
                ap.error(f"--only: no configuration {', '.join(sorted(wanted - set(runs)))}; choose from {', '.join(runs)}")
            runs = {k: fn for k, fn in runs.items() if k in wanted}
        if not args.quick:  # one untimed round of ours: imports, page cache, first-use costs
            alternate({k: fn for k, fn in runs.items() if k.startswith(("stream", "sampler", "decode"))
                       and k != "stream_perseq_w2"}, 1)
        res = alternate(runs, args.repeats)
        if lit is not None:
            first = np.fromfile(raw, dtype=np.uint16, count=8).tolist()
            if litdata_pass(*lit, L, B, 0)["first"] != first:
                notes.append("litdata delivered other tokens than ours (first row differs)")
        mosaic = None
        if args.mosaic and not args.quick:
            python, how = streaming_python(args.cache)
            try:
                mosaic = None if python is None else \
                    bench_mosaic(python, raw, work, L, slow // L, B, args.repeats)
            except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
                how = str(exc)
            if mosaic is None:
                notes.append(f"MosaicML streaming skipped: {how}")
            else:
                for m in mosaic:
                    res[f"mosaic_w{m['workers']}"] = {"tokens_per_s": m["tokens_per_s"], "tokens": m["tokens"]}
                    print(f"MosaicML StreamingDataset {m['workers']} workers: {m['tokens_per_s'] / 1e6:.1f} M tok/s")
        ratios = report(res, notes)
        out = {"machine": before, "loadavg_after": list(os.getloadavg()), "repeats": args.repeats,
               "tokens": budget, "seq_len": L, "batch_size": B, "slow_tokens": slow,
               "peer_pins": {"litdata": LITDATA_PINS, "mosaic": STREAMING_PINS}, "peer_versions": versions,
               "python": sys.version.split()[0], "results": res, "ratios": ratios, "notes": notes}
        if hf is not None:
            out["hf_interleave"] = {"setup_s": hf.setup_s, **hf.realised(), "target": WEIGHTS}
        path = args.out if args.out is not None else (None if args.quick or args.only else RESULTS)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=2) + "\n")
            print(f"wrote {path}")
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run()
