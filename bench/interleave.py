"""The interleave of unit items against Megatron-Core's `build_blending_indices`: prefix error and speed.

    python -m bench.interleave [--vectors 300] [--items 100k] [--speed-items 10M] [--repeats 5]

Ours is `mixer.kernels.blend.blend_items` (exact largest-remainder counts, a prefix error never
above Megatron's on the same weights); `mixer.kernels.edf.smallest_feasible_items` (what
masked-LM plans use today: the smallest deviation against the *rounded* shares) is printed
beside it.

Prefix error: for K = 7, 30 and 1000, `--vectors` flat-Dirichlet weight vectors, unrounded.
Megatron gets w and N; ours gets w and the counts N w rounded by largest remainder (each domain
exactly its share of a shard). Both are measured the way Megatron measures samples, against
the same unrounded w: max over prefixes n and datasets i of |count_i(n) - w_i n|. Goal: ours
larger on no vector; the worst case (largest ours - Megatron) is printed.

Speed: items/s of each call on `--speed-items` items (Megatron on 1/5 and 1/50 of them at
K = 1000 and 10,000, where it is O(N K) slow: its items/s does not depend on N), both on one
thread (neither has a threaded mode), runs alternated, median of `--repeats`; both write into
arrays allocated outside the timing, as Megatron's API requires. The physical limit of the same
output, timed in the same rounds: filling blend's two arrays (domain int32 and position int64,
12 bytes an item) with no decision made. Goal: >= 1x at K = 7.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import goal, machine

RESULTS = Path(__file__).parent / "results" / "interleave.json"


def alternated(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """Each function run `repeats` times, one round of all of them after another (so a change in
    the machine's load hits every side alike); {name: {median_s, best_s, runs_s}}."""
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t0)
    return {name: {"median_s": statistics.median(r), "best_s": min(r), "runs_s": r} for name, r in runs.items()}


def ours(w: np.ndarray, counts: np.ndarray, out_dom: np.ndarray, out_pos: np.ndarray) -> float:
    from mixer.kernels.blend import blend_items

    return blend_items(w, counts, out_dom, out_pos)


def edf_rounded(counts: np.ndarray, out_dom: np.ndarray, out_pos: np.ndarray) -> None:
    from mixer.kernels.edf import smallest_feasible_items

    smallest_feasible_items(counts, out_dom, out_pos)


def prefix_error(k: int, vectors: int, items: int, blend_fn, seed: int = 0) -> dict:
    from bench.megatron_blend import blend
    from mixer.kernels.deviation import max_prefix_deviation_items
    from mixer.kernels.targets import largest_remainder

    rng = np.random.default_rng(seed + k)
    mine, edf, theirs = [], [], []
    d, p = np.empty(items, np.int32), np.empty(items, np.int64)
    for _ in range(vectors):
        w = rng.dirichlet(np.ones(k))
        counts = largest_remainder(w, items)
        ours(w, counts, d, p)
        mine.append(max_prefix_deviation_items(d, w))
        edf_rounded(counts, d, p)
        edf.append(max_prefix_deviation_items(d, w))
        theirs.append(max_prefix_deviation_items(blend(blend_fn, w, items), w))
    a, e, m = np.array(mine), np.array(edf), np.array(theirs)
    worst = int(np.argmax(a - m))
    return {"K": k, "vectors": vectors, "items": items,
            "blend_median": float(np.median(a)), "blend_max": float(a.max()),
            "edf_rounded_median": float(np.median(e)), "edf_rounded_max": float(e.max()),
            "megatron_median": float(np.median(m)), "megatron_max": float(m.max()),
            "vectors_where_blend_larger": int(np.sum(a > m + 1e-12)),
            "vectors_where_edf_rounded_larger": int(np.sum(e > m + 1e-12)),
            "worst_case": {"blend": float(a[worst]), "megatron": float(m[worst]), "excess": float(a[worst] - m[worst])}}


SPEED_VECTORS = {7: 20, 30: 10}  # weight vectors timed per K (one at K >= 1000: Megatron is O(N K) there)


def speed_over_vectors(k: int, items: int, megatron_items: int, repeats: int, blend_fn) -> dict:
    """`speed` on several flat-Dirichlet weight vectors (seeds 1000 + k, 2000 + k, ...): blend's
    time depends on the vector (whether its lanes side by side hold at the first tolerance, or a
    lock-step pass and a search run first), Megatron's hardly. The ratio quoted is the median of the per-vector ratios; the
    least and the most beside it."""
    runs = [speed(k, items, megatron_items, repeats, blend_fn, seed=1000 * (j + 1) + k)
            for j in range(SPEED_VECTORS.get(k, 1))]
    ratios = [r["ratio_1t"] for r in runs]
    out = {key: float(np.median([r[key] for r in runs])) for key in
           ("blend_Mitems_per_s", "megatron_Mitems_per_s", "fill_Mitems_per_s", "ratio_1t", "ratio_to_limit")}
    return {"K": k, "items": items, "megatron_items": megatron_items, "vectors": len(runs), **out,
            "ratio_1t_min": min(ratios), "ratio_1t_max": max(ratios),
            "vectors_at_least_1x": sum(r >= 1.0 for r in ratios), "per_vector": runs}


def speed(k: int, items: int, megatron_items: int, repeats: int, blend_fn, seed: int | None = None) -> dict:
    from mixer.kernels.targets import largest_remainder

    seed = 1000 + k if seed is None else seed
    w = np.random.default_rng(seed).dirichlet(np.ones(k))
    counts = largest_remainder(w, items)
    d, p = np.empty(items, np.int32), np.empty(items, np.int64)
    di, si = np.zeros(megatron_items, np.int16 if k < 2**15 else np.int32), np.zeros(megatron_items, np.int64)
    ours(w, largest_remainder(w, 1000), d[:1000], p[:1000])  # compile outside the timing
    t = alternated({"blend": lambda: ours(w, counts, d, p),
                    "megatron": lambda: blend_fn(di, si, w, k, megatron_items, False),
                    # the physical limit: writing blend's two output arrays, nothing decided
                    "fill": lambda: (d.fill(k - 1), p.fill(items))}, repeats)
    res = {"K": k, "seed": seed, "items": items, "megatron_items": megatron_items, "blend": t["blend"],
           "megatron": t["megatron"],
           "fill": t["fill"], "blend_Mitems_per_s": items / t["blend"]["median_s"] / 1e6,
           "megatron_Mitems_per_s": megatron_items / t["megatron"]["median_s"] / 1e6,
           "fill_Mitems_per_s": items / t["fill"]["median_s"] / 1e6}
    res["ratio_1t"] = res["blend_Mitems_per_s"] / res["megatron_Mitems_per_s"]
    res["ratio_to_limit"] = res["blend_Mitems_per_s"] / res["fill_Mitems_per_s"]
    return res


def run(vectors: int, items: int, speed_items: int, repeats: int) -> dict:
    from bench.megatron_blend import load

    blend_fn, which = load()
    print(f"interleave vs {which}")
    out: dict[str, Any] = {"peer": which, "prefix_error": [], "speed": []}
    for k in (7, 30, 1000):
        t0 = time.perf_counter()
        r = prefix_error(k, vectors, items, blend_fn)
        out["prefix_error"].append(r)
        wc = r["worst_case"]
        print(f"  prefix error K={k:>4}, {vectors} unrounded vectors x {items:,} items (median / max): Megatron "
              f"{r['megatron_median']:.3f} / {r['megatron_max']:.3f}; blend {r['blend_median']:.3f} / "
              f"{r['blend_max']:.3f}, larger on {r['vectors_where_blend_larger']}/{vectors} (goal 0: "
              f"{'met' if r['vectors_where_blend_larger'] == 0 else 'MISSED'}; worst case {wc['blend']:.4f} vs "
              f"{wc['megatron']:.4f}, {wc['excess']:+.4f}); edf on rounded shares larger on "
              f"{r['vectors_where_edf_rounded_larger']}/{vectors} ({time.perf_counter() - t0:.0f} s)")
    for k, nm in ((7, speed_items), (30, speed_items), (1000, max(speed_items // 5, 1000)),
                  (10000, max(speed_items // 50, 1000))):
        r = speed_over_vectors(k, speed_items, nm, repeats, blend_fn)
        out["speed"].append(r)
        tail = f" ({goal(r['ratio_1t'], 1)})" if k == 7 else ""
        spread = f", median of {r['vectors']} weight vectors ({r['ratio_1t_min']:.2f}x-{r['ratio_1t_max']:.2f}x; " \
            f"{r['vectors_at_least_1x']} of {r['vectors']} at 1x or more)" if r["vectors"] > 1 else ""
        print(f"  speed K={k:>5}, 1 thread vs 1 thread: blend {r['blend_Mitems_per_s']:.1f} M items/s, Megatron "
              f"{r['megatron_Mitems_per_s']:.1f} -> {r['ratio_1t']:.2f}x{spread}{tail}; limit (fill of the same output "
              f"arrays) {r['fill_Mitems_per_s']:.0f} M items/s, blend at {r['ratio_to_limit']:.2f}x of it; 2 threads: "
              "neither has a threaded mode")
    return out


def main() -> None:
    from mixer.core.units import parse_count

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=300)
    ap.add_argument("--items", default="100k", help="items per weight vector for the prefix error")
    ap.add_argument("--speed-items", default="10M")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    before = machine({"blend": 1, "megatron": 1})
    res = run(args.vectors, parse_count(args.items, "--items"), parse_count(args.speed_items, "--speed-items"),
              args.repeats)
    res["machine"] = before
    res["loadavg_after"] = list(os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
