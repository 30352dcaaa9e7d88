"""Sampler benchmark: `python -m bench.sampler [--tokens 200M] [--repeats 3]`.

On a generated corpus (7 domains, log-normal document lengths, Zipf-distributed uint16 token
ids, 1.25x the budget in tokens; kept in --corpus-dir and reused) it measures, in one run,
each side timed the same way (median of `--repeats`, best kept beside it):

1. the gather of the whole stream with its domain-id sidecar, into pre-touched arrays, against
   memcpy + fill of the same work (`np.copyto` of the token bytes, `fill` of a sidecar of the
   same shape), 1 thread vs 1 thread (goal >= 0.6x) and 2 vs 2; runs alternated, medians; the
   gather on 2 threads must beat itself on 1. The real build-shards path (fresh output arrays)
   is printed beside it.
2. plan + gather (tokens only) against the NumPy sampler in `bench/numpy_sampler.py` doing a
   Python loop of slice copies over the same plan (the faster of stream order and address
   order), identical tokens checked. Goal >= 10x.
3. the interleave against Megatron-Core's `build_blending_indices` (`bench/interleave.py`):
   prefix error over 300 random unrounded weight vectors at K = 7, 30, 1000, and speed (goal >= 1x at K = 7).
4. zstd levels on the stream's tokens, and build-shards end to end per level and worker count,
   with the busy time split into plan, gather, compress, hash and write (`bench/build.py`).
   Goal: 150 M tokens/s.

Expect about 4-6 minutes on 2 cores (the first run also writes the corpus, ~1 min). Figures
go to bench/results/sampler.json, with the load average, thread counts and versions.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import goal, machine, timed
from bench.zipf_corpus import MEAN_LEN, WEIGHTS, make_corpus

def copy_fill_2threads(dst: np.ndarray, src: np.ndarray, side: np.ndarray, pool: ThreadPoolExecutor) -> None:
    """memcpy + fill on two threads: each copies and fills one half (np.copyto / fill release the GIL)."""
    d, s_, f = dst.reshape(-1), src.reshape(-1), side.reshape(-1)
    h, hf = len(d) // 2, len(f) // 2
    list(pool.map(lambda ab: (np.copyto(d[ab[0]:ab[1]], s_[ab[0]:ab[1]]), f[ab[2]:ab[3]].fill(3)),
                  ((0, h, 0, hf), (h, len(d), hf, len(f)))))


def copy_from_parts(parts: tuple[np.ndarray, ...], dst: np.ndarray, side: np.ndarray) -> None:
    """memcpy + fill with the gather's own source memory: as many tokens as `dst` holds copied in
    order from the corpus's memory-mapped parts (page-cache pages, as the gather reads), then the
    sidecar filled. The anonymous arrays of `memcpy_fill` get transparent huge pages when the
    kernel has them to give, and then copy up to 1.5x faster than from the same bytes in 4 KiB
    page-cache pages: this row is the same copy from where the gather reads."""
    flat, at = dst.reshape(-1), 0
    for v in parts:
        k = min(len(v), len(flat) - at)
        if k <= 0:
            break
        np.copyto(flat[at:at + k], v[:k])
        at += k
    side.fill(3)


def anon_huge_pages_kb() -> int | None:
    """AnonHugePages of /proc/meminfo (the anonymous memory in transparent huge pages), or None."""
    try:
        with open("/proc/meminfo") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("AnonHugePages:")), None)
    except OSError:
        return None


def bench_gather(corpus: Path, budget: int, seq_len: int, repeats: int) -> dict:
    """The gather against memcpy + fill of the same work: the token bytes copied and a domain-id
    sidecar of the same shape written, into pre-touched arrays, on 1 thread and on 2; runs
    alternated, medians. The real build-shards path (fresh arrays) is printed beside it."""
    from bench.interleave import alternated
    from mixer.shards.gather import gather_sequences, open_sources
    from mixer.shards.plan import PlanConfig, build_plan

    config = PlanConfig(tokens=budget, seq_len=seq_len, seed=0)
    t0 = time.perf_counter()
    plan = build_plan(corpus, WEIGHTS, config)
    plan_s = time.perf_counter() - t0
    sources = open_sources(corpus, plan)
    n = plan.num_sequences
    ref_tok, ref_dom = gather_sequences(plan, sources, 0, n)  # compile, and bring the corpus into the page cache
    out, dom = np.ones_like(ref_tok), np.ones_like(ref_dom)
    src, dst, side = np.ones_like(out), np.zeros_like(out), np.zeros_like(dom)
    nbytes = out.nbytes + dom.nbytes
    with ThreadPoolExecutor(2) as pool:
        t = alternated({
            "gather_1t": lambda: gather_sequences(plan, sources, 0, n, out=out, domains_out=dom, threads=1),
            "gather_2t": lambda: gather_sequences(plan, sources, 0, n, out=out, domains_out=dom, threads=2),
            "memcpy_fill_1t": lambda: (np.copyto(dst, src), side.fill(3)),
            "memcpy_parts_fill_1t": lambda: copy_from_parts(sources.values, dst, side),
            "memcpy_fill_2t": lambda: copy_fill_2threads(dst, src, side, pool),
            "real_path_2t": lambda: gather_sequences(plan, sources, 0, n, threads=2),
        }, repeats)
    res: dict = {"tokens": plan.budget_tokens, "segments": plan.num_segments, "bytes_tokens_and_sidecar": nbytes,
                 "plan_s": plan_s, **t}
    for k in t:
        res[f"{k}_GBps"] = nbytes / t[k]["median_s"] / 1e9
    res["ratio_1t"] = t["memcpy_fill_1t"]["median_s"] / t["gather_1t"]["median_s"]
    res["ratio_1t_same_source"] = t["memcpy_parts_fill_1t"]["median_s"] / t["gather_1t"]["median_s"]
    res["anon_huge_pages_kB"] = anon_huge_pages_kb()
    res["ratio_2t"] = t["memcpy_fill_2t"]["median_s"] / t["gather_2t"]["median_s"]
    res["speedup_2t_over_1t"] = t["gather_1t"]["median_s"] / t["gather_2t"]["median_s"]
    res["identical_output"] = bool(np.array_equal(out, ref_tok) and np.array_equal(dom, ref_dom))
    return res


def bench_vs_numpy(corpus: Path, budget: int, seq_len: int, repeats: int) -> dict:
    from bench.numpy_sampler import sample
    from mixer.shards.gather import gather_sequences, open_sources
    from mixer.shards.plan import PlanConfig, build_plan

    def ours():
        plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=budget, seq_len=seq_len, seed=0))
        return gather_sequences(plan, open_sources(corpus, plan), 0, plan.num_sequences, domains=False)[0]

    res = {}
    res["ours"], a = timed(ours, repeats)
    same = {}
    for how in ("slices", "slices-address", "slices-2t"):
        res[f"numpy_{how}"], b = timed(lambda how=how: sample(corpus, WEIGHTS, budget, seq_len, 0, gather=how), repeats)
        same[how] = bool(np.array_equal(a, b))
        del b
    best = min(("slices", "slices-address", "slices-2t"), key=lambda h: res[f"numpy_{h}"]["median_s"])
    res["baseline"] = f"numpy_{best}"
    res["identical_output"] = same
    res["speedup"] = res[f"numpy_{best}"]["median_s"] / res["ours"]["median_s"]
    return res


def main() -> None:
    from bench import build, interleave
    from mixer.core.units import parse_count
    from mixer.formats.corpus import load_manifest
    from mixer.shards.gather import gather_sequences, open_sources
    from mixer.shards.plan import PlanConfig, build_plan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="200M", help="budget to sample (the corpus holds 1.25x this)")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--vectors", type=int, default=300, help="random weight vectors for the prefix error")
    ap.add_argument("--items", default="100k", help="items per weight vector for the prefix error")
    ap.add_argument("--speed-items", default="10M", help="items for the interleave speed")
    ap.add_argument("--corpus-dir", default="/tmp/mixer-bench-corpus")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sampler.json"))
    args = ap.parse_args()
    budget = parse_count(args.tokens)
    corpus = Path(args.corpus_dir)
    result = {"machine": machine({"gather": "1 and 2", "memcpy_fill": "1 and 2", "numpy": "1 and 2",
                                  "zstd_workers": "1 and 2"})}

    t0 = time.perf_counter()
    make_corpus(corpus, budget)
    m = load_manifest(corpus)
    total = sum(m.tokens().values())
    docs = sum(d.splits["train"].documents for d in m.domains.values())
    print(f"corpus: {total / 1e6:.0f}M Zipf tokens, {docs:,} documents, 7 domains ({time.perf_counter() - t0:.0f} s)")
    result["corpus"] = {"tokens": total, "documents": docs, "weights": WEIGHTS, "mean_len": MEAN_LEN,
                        "token_ids": "Zipf s=1.1 over the GPT-2 vocabulary, a rank->id permutation per domain"}

    g = result["gather"] = bench_gather(corpus, budget, args.seq_len, args.repeats)
    print(f"plan: {g['plan_s']:.3f} s for {g['segments']:,} segments")
    print(f"gather (tokens + domain-id sidecar, pre-touched outputs), 1 thread vs 1 thread: {g['gather_1t_GBps']:.2f} "
          f"GB/s vs memcpy + fill {g['memcpy_fill_1t_GBps']:.2f} GB/s -> {g['ratio_1t']:.2f}x ({goal(g['ratio_1t'], 0.6)}; "
          f"memcpy + fill from the corpus's own mapped pages {g['memcpy_parts_fill_1t_GBps']:.2f} GB/s -> "
          f"{g['ratio_1t_same_source']:.2f}x); "
          f"2 threads: {g['gather_2t_GBps']:.2f} vs {g['memcpy_fill_2t_GBps']:.2f} GB/s -> {g['ratio_2t']:.2f}x; "
          f"2 threads over 1: {g['speedup_2t_over_1t']:.2f}x (goal > 1x "
          f"{'met' if g['speedup_2t_over_1t'] > 1 else 'MISSED'}); identical output: {g['identical_output']}")
    print(f"  (real build-shards path, fresh output arrays, 2 threads: {g['real_path_2t_GBps']:.2f} GB/s)")

    n = result["numpy"] = bench_vs_numpy(corpus, budget, args.seq_len, args.repeats)
    print(f"plan+gather: ours {n['ours']['median_s']:.2f} s, NumPy slice loop {n['numpy_slices']['median_s']:.2f} s "
          f"(address order {n['numpy_slices-address']['median_s']:.2f} s, 2 threads "
          f"{n['numpy_slices-2t']['median_s']:.2f} s) -> {n['speedup']:.1f}x against the fastest "
          f"({goal(n['speedup'], 10)}); identical tokens: {n['identical_output']}")

    result["interleave"] = interleave.run(args.vectors, parse_count(args.items, "--items"),
                                          parse_count(args.speed_items, "--speed-items"), args.repeats)

    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=budget, seq_len=args.seq_len, seed=0))
    shard = gather_sequences(plan, open_sources(corpus, plan), 0, min(plan.num_sequences, (1 << 25) // args.seq_len),
                             domains=False)[0]
    z = build.zstd_levels(shard, args.repeats)
    del shard, plan
    e = build.end_to_end(corpus, WEIGHTS, budget, args.seq_len, corpus.parent, args.repeats)
    result["zstd"], result["build_shards"] = z, e
    print("zstd on one 32M-token shard of the stream, and build-shards end to end:")
    build.report(z, e)
    result["loadavg_after"] = list(os.getloadavg())
    result["total_s"] = time.perf_counter() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out} ({result['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
