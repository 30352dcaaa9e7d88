"""`build-shards` end to end and zstd on realistic tokens: where the time goes.

Called by `python -m bench.sampler` on its Zipf-token corpus. Two parts:

1. zstd alone on one shard of the real stream (Zipf tokens, never uniform random: those do not
   compress, and zstd skips over them at 1+ GB/s): ratio and MB/s at levels 1 and 3, single
   threaded and with zstd's own 2 worker threads; median of `repeats`.
2. `write_shards` end to end (plan + gather + compression + checksums + writes, fresh folder)
   at each level with 1 and 2 workers: tokens/s against the 150 M tokens/s goal, and the share
   of busy time in each stage (gather, compress, hash, write; summed over threads).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from bench.common import goal, timed

GOAL_TOKENS_PER_S = 150e6


def zstd_levels(tokens: np.ndarray, repeats: int) -> list[dict]:
    import zstandard

    raw = memoryview(np.ascontiguousarray(tokens)).cast("B")
    out = []
    for level in (1, 3):
        for threads in (0, 2):
            comp = zstandard.ZstdCompressor(level=level, threads=threads)
            t, data = timed(lambda: comp.compress(raw), repeats)
            out.append({"level": level, "zstd_threads": threads, "ratio": len(raw) / len(data),
                        "MBps": len(raw) / t["median_s"] / 1e6, "time": t})
    return out


def end_to_end(corpus: Path, weights: dict, budget: int, seq_len: int, scratch: Path, repeats: int) -> dict:
    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.shards.write import ShardConfig, write_shards

    res: dict = {"runs": []}
    indexes = {}
    for level in (1, 3):
        for workers in (1, 2):
            out = scratch / f"shards-l{level}-w{workers}"
            walls, last = [], None
            for _ in range(repeats):
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                plan = build_plan(corpus, weights, PlanConfig(tokens=budget, seq_len=seq_len, seed=0))
                plan_s = time.perf_counter() - t0
                stats = write_shards(plan, corpus, out,
                                     ShardConfig(zstd_level=level, workers=workers))
                walls.append(time.perf_counter() - t0)
                last = (plan_s, stats, plan)
            plan_s, stats, plan = last
            indexes[(level, workers)] = (out / "index.json").read_bytes()
            shutil.rmtree(out, ignore_errors=True)
            wall = float(np.median(walls))
            busy = {"plan": plan_s, "gather": stats.gather_s, "compress": stats.compress_s,
                    "hash": stats.hash_s, "write": stats.write_s}
            total = sum(busy.values())
            res["runs"].append({
                "level": level, "workers": workers, "wall_s_median": wall, "wall_s_runs": walls,
                "tokens_per_s": plan.budget_tokens / wall, "busy_s": busy,
                "share_of_busy": {k: v / total for k, v in busy.items()},
                "compression_ratio": plan.budget_tokens * np.dtype(plan.dtype).itemsize / stats.compressed_bytes
                if stats.compressed_bytes else None})
    res["identical_across_workers"] = all(indexes[(lv, 1)] == indexes[(lv, 2)] for lv in (1, 3))
    return res


def report(z: list[dict], e: dict) -> None:
    for r in z:
        print(f"  zstd level {r['level']} ({r['zstd_threads'] or 1} thread{'s' if r['zstd_threads'] else ''}): "
              f"ratio {r['ratio']:.2f}, {r['MBps']:.0f} MB/s")
    for r in e["runs"]:
        sh = r["share_of_busy"]
        print(f"  build-shards level {r['level']}, {r['workers']} worker(s): {r['tokens_per_s'] / 1e6:.0f} M tokens/s "
              f"({goal(r['tokens_per_s'] / GOAL_TOKENS_PER_S, 1).replace('x', 'x of 150M')}); ratio "
              f"{r['compression_ratio']:.2f}; busy time: plan {sh['plan']:.0%}, gather {sh['gather']:.0%}, "
              f"compress {sh['compress']:.0%}, hash {sh['hash']:.0%}, write {sh['write']:.0%}")
    print(f"  byte-identical index across workers: {e['identical_across_workers']}")
