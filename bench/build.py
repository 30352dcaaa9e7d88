"""`mixer build-shards` as a user runs it, against the physical limit; and where its time goes.

`python -m bench.build` (about 8 minutes on 2 cores; `--quick`: seconds, the CI smoke test;
results in `bench/results/build.json`):

1. Whole command: `mixer build-shards` in a fresh process (python start-up, imports, the
   compiled kernels (`mixer.kernels.aot`), opening the corpus, plan, gather, compression, checksums, writes), timed from outside
   as a user sees it, against the physical limit: the `zstd` command line reading the very
   token bytes the shards hold, compressing them at level 1 and writing them, in a fresh process
   too. Same CPUs on both sides: the 1-thread row runs both pinned to one CPU (`--threads 1`,
   `zstd -T1`), the 2-thread row to two (`--threads 2`, `zstd -T2`). On real text (the bundled
   corpus, whole documents, ~12M GPT-2 tokens) and on 64M Zipf tokens. Goal: >= 0.7x. The same
   command with numba's JIT (`MIXER_COMPILED_KERNELS=0`, as before the compiled kernels) runs in
   the same rounds, beside it.
2. The same builds in this process (`mixer.shards.build`, numba's cache already loaded) against
   read + `zstandard` level 1 + write of the same bytes in this process: the kernels' share.
3. Many domains: the whole command at K = 10,000 domains against K = 10, the same 8M tokens.
   Goal: within 2x.

Runs are alternated (limit, ours, limit, ours, ...) and medians of `--repeats` are compared.
Called by `python -m bench.sampler` too (`zstd_levels`, `end_to_end`, `report`): zstd levels on
the stream's tokens and `write_shards` per level and worker count, with busy time per stage.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import bytecode_as_installed, goal, machine, timed, zipf_map

GOAL_TOKENS_PER_S = 150e6


def zstd_levels(tokens: np.ndarray, repeats: int) -> list[dict]:
    import zstandard

    raw = memoryview(np.ascontiguousarray(tokens)).cast("B")
    out = []
    for level in (1, 3):
        for threads in (0, 2):
            comp = zstandard.ZstdCompressor(level=level, threads=threads)
            t, data = timed(lambda comp=comp: comp.compress(raw), repeats)
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


# ---- whole command against the physical limit ------------------------------------------------

RESULTS = Path(__file__).parent / "results" / "build.json"
MIXER = [sys.executable, "-c", "import sys; from mixer.cli import main; sys.exit(main())"]  # the `mixer` script
GOAL_WHOLE, GOAL_DOMAINS = 0.7, 0.5  # >= 0.7x the limit; K = 10,000 within 2x of K = 10
REAL_RULES = ["--min-chars", "0", "--cut-chars", "1000000000"]  # whole documents: ~12M tokens


PINNED = hasattr(os, "sched_setaffinity")  # Linux; elsewhere both sides run unpinned (recorded)


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if PINNED else (os.cpu_count() or 1)


def cpus(n: int) -> set[int]:
    """The first `n` CPUs this process may use: both sides of a row run pinned to the same ones."""
    return set(sorted(os.sched_getaffinity(0))[:n]) if PINNED else set(range(n))


def pin(mask: set[int]) -> None:
    if PINNED:
        os.sched_setaffinity(0, mask)


CPU_S: list[float] = []  # CPU seconds (user + system) of every run_pinned, in order


def run_pinned(cmd: list[str], n_cpus: int, env: dict | None = None) -> float:
    """Wall seconds of `cmd` in a fresh process pinned to `n_cpus` CPUs (start-up included).
    Its CPU seconds go to `CPU_S`: on a loaded machine wall time includes waiting for a core,
    CPU time does not."""
    mask = cpus(n_cpus)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=lambda: pin(mask),
                   env=None if env is None else {**os.environ, **env})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_S.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def limit_command(src: Path, dst: Path, threads: int) -> tuple[list[str], str]:
    """Read `src`, zstd level 1 on `threads` threads, write `dst`: the zstd command line when
    installed, else the same through `zstandard` in a fresh python."""
    if shutil.which("zstd"):
        return ["zstd", "-q", "-f", "-1", f"-T{threads}", str(src), "-o", str(dst)], "zstd command line"
    code = ("import sys, zstandard; d = open(sys.argv[1], 'rb').read(); "
            f"open(sys.argv[2], 'wb').write(zstandard.ZstdCompressor(level=1, threads={0 if threads == 1 else threads})"
            ".compress(d))")
    return [sys.executable, "-c", code, str(src), str(dst)], "python zstandard (no zstd command line)"


def stream_bytes(shards: Path, dst: Path) -> int:
    """The token bytes the shards hold, in stream order, into `dst` (what the limit compresses)."""
    from mixer.formats.shards import read_index, read_shard

    index = read_index(shards)
    with open(dst, "wb") as f:
        f.writelines(memoryview(np.ascontiguousarray(read_shard(shards / f"shard-{k:05d}.zst", index))).cast("B")
                     for k in range(len(index.shards)))
    return dst.stat().st_size


def build_args(corpus: Path, weights: Path, tokens: int, out: Path, threads: int, extra=()) -> list[str]:
    return ["build-shards", "--corpus", str(corpus), "--weights", str(weights), "--tokens", str(tokens),
            "--out", str(out), "--quiet", "--threads", str(threads), *extra]


def whole_vs_limit(name: str, corpus: Path, weights: dict, tokens: int, scratch: Path, repeats: int,
                   threads: tuple[int, ...]) -> dict:
    """Alternated whole-command runs of build-shards and of the limit; then the same in process."""
    from mixer.shards import build
    from mixer.shards.plan import PlanConfig
    from mixer.shards.write import ShardConfig

    scratch.mkdir(parents=True, exist_ok=True)
    wfile, out, raw = scratch / f"{name}-weights.json", scratch / f"{name}-shards", scratch / f"{name}-stream.bin"
    wfile.write_text(json.dumps({"weights": weights}))
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(MIXER + build_args(corpus, wfile, tokens, out, 1), check=True, capture_output=True)  # warm-up
    nbytes = stream_bytes(out, raw)
    res: dict = {"tokens": tokens, "stream_bytes": nbytes, "rows": []}
    for t in threads:
        limit_cmd, res["limit_tool"] = limit_command(raw, scratch / f"{name}-stream.zst", t)
        ours_runs, limit_runs, ours_cpu, limit_cpu, jit_runs, jit_cpu = [], [], [], [], [], []
        for _ in range(repeats):
            limit_runs.append(run_pinned(limit_cmd, t))
            limit_cpu.append(CPU_S[-1])
            shutil.rmtree(out, ignore_errors=True)
            ours_runs.append(run_pinned(MIXER + build_args(corpus, wfile, tokens, out, t), t))
            ours_cpu.append(CPU_S[-1])
            shutil.rmtree(out, ignore_errors=True)  # the same with numba's JIT (before the compiled kernels)
            jit_runs.append(run_pinned(MIXER + build_args(corpus, wfile, tokens, out, t), t, JIT_ENV))
            jit_cpu.append(CPU_S[-1])
        # In process: numba's cache loaded, the corpus in the page cache; the same CPUs.
        import zstandard

        mask, saved = cpus(t), (os.sched_getaffinity(0) if PINNED else set())
        pin(mask)
        try:
            def ours(t: int = t) -> None:
                shutil.rmtree(out, ignore_errors=True)
                build(corpus, weights, out, plan=PlanConfig(tokens=tokens), shards=ShardConfig(workers=t))

            def limit(t: int = t) -> None:
                data = raw.read_bytes()
                (scratch / f"{name}-stream.zst").write_bytes(
                    zstandard.ZstdCompressor(level=1, threads=0 if t == 1 else t).compress(data))

            ours()
            k_ours, k_limit = [], []
            for _ in range(repeats):
                k_limit.append(timed(limit, 1)[0]["median_s"])
                k_ours.append(timed(ours, 1)[0]["median_s"])
        finally:
            pin(saved)
        med = statistics.median
        res["rows"].append({
            "threads": t, "cpus": len(mask), "whole_s_runs": ours_runs, "limit_whole_s_runs": limit_runs,
            "whole_s": med(ours_runs), "limit_whole_s": med(limit_runs), "ratio": med(limit_runs) / med(ours_runs),
            "in_process_s_runs": k_ours, "limit_in_process_s_runs": k_limit, "in_process_s": med(k_ours),
            "limit_in_process_s": med(k_limit), "in_process_ratio": med(k_limit) / med(k_ours),
            "outside_work_s": med(ours_runs) - med(k_ours), "whole_cpu_s_runs": ours_cpu,
            "limit_whole_cpu_s_runs": limit_cpu, "cpu_ratio": med(limit_cpu) / med(ours_cpu),
            "jit_whole_s_runs": jit_runs, "jit_whole_cpu_s_runs": jit_cpu, "jit_whole_s": med(jit_runs),
            "jit_ratio": med(limit_runs) / med(jit_runs)})
    shutil.rmtree(out, ignore_errors=True)
    for f in (raw, scratch / f"{name}-stream.zst"):
        f.unlink(missing_ok=True)
    return res


JIT_ENV = {"MIXER_COMPILED_KERNELS": "0"}  # build-shards with numba's JIT, as before the compiled kernels
BARE = "import numpy, zstandard, xxhash, click"  # (no pyarrow: build-shards reads parts by their cached layout)
COMPILED_FLOOR = (BARE + "\nimport numpy as np\nfrom pathlib import Path\nfrom mixer.core.urls import cache_root\n"
                  "from mixer.kernels.aot import compiled_kernels, kernel\nfrom mixer.kernels.aot.store import default_cache\n"
                  "with compiled_kernels(default_cache(cache_root() / 'kernels')):\n"
                  "    kernel('largest_remainder')(np.ones(2) / 2, 10)")
FLOOR = ("import numpy as np, zstandard, xxhash, click; from mixer.kernels import without_numba_extras\n"
         "with without_numba_extras():\n"
         "    from mixer.kernels.targets import largest_remainder; largest_remainder(np.ones(2) / 2, 10)")


def floor(repeats: int) -> dict:
    """What a process that runs one of mixer's numba kernels pays before any work, as
    build-shards runs them: python, numpy, zstandard, click, numba and the first kernel
    loaded from numba's cache (numba's registries, without scipy, cffi and yaml:
    `without_numba_extras`). Pinned to one CPU, like the 1-thread rows."""
    runs, bare, compiled = [], [], []
    for _ in range(repeats):
        runs.append(run_pinned([sys.executable, "-c", FLOOR], 1))
        bare.append(run_pinned([sys.executable, "-c", BARE], 1))
        compiled.append(run_pinned([sys.executable, "-c", COMPILED_FLOOR], 1))
    return {"code": FLOOR, "runs_s": runs, "median_s": statistics.median(runs), "without_numba_runs_s": bare,
            "without_numba_s": statistics.median(bare), "compiled_code": COMPILED_FLOOR, "compiled_runs_s": compiled,
            "compiled_s": statistics.median(compiled)}


def equal_domains_corpus(path: Path, k: int, tokens: int) -> dict:
    """K domains of Zipf tokens, each 1.3x its share of `tokens` (equal weights); cached by a stamp."""
    from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

    names = [f"d{i:05d}" for i in range(k)]
    params = {"k": k, "tokens": tokens, "version": 1}
    stamp = path / "bench-params.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == params):
        shutil.rmtree(path, ignore_errors=True)
        want = 1.3 * tokens / k
        mean = min(250.0, want / 4)
        lengths = {}
        for i, name in enumerate(names):
            lens = lognormal_lengths(int(want / mean * 1.5) + 8, mean, 0.8, seed=1000 + i)
            lengths[name] = lens[: int(np.searchsorted(np.cumsum(lens), want)) + 1]
        write_synthetic_corpus(path, lengths, seed=3, token_map=zipf_map(50257))
        stamp.write_text(json.dumps(params))
    return {n: 1 / k for n in names}


def many_domains(scratch: Path, ks: tuple[int, int], tokens: int, repeats: int) -> dict:
    """The whole command at ks[0] and ks[1] domains, the same tokens and flags, alternated."""
    runs: dict = {k: [] for k in ks}
    cpu: dict = {k: [] for k in ks}
    files = {}
    for k in ks:
        weights = equal_domains_corpus(scratch / f"k{k}", k, tokens)
        files[k] = scratch / f"k{k}-weights.json"
        files[k].write_text(json.dumps({"weights": weights}))
    cmd = {k: MIXER + build_args(scratch / f"k{k}", files[k], tokens, scratch / f"k{k}-shards", 2) for k in ks}
    for _ in range(repeats):
        for k in ks:
            shutil.rmtree(scratch / f"k{k}-shards", ignore_errors=True)
            runs[k].append(run_pinned(cmd[k], 2))
            cpu[k].append(CPU_S[-1])
    for k in ks:
        shutil.rmtree(scratch / f"k{k}-shards", ignore_errors=True)
    small, large = (statistics.median(runs[k]) for k in ks)
    return {"k": list(ks), "tokens": tokens, "threads": 2, "runs_s": {str(k): runs[k] for k in ks},
            "median_s": {str(ks[0]): small, str(ks[1]): large}, "ratio": small / large,
            "cpu_s_runs": {str(k): cpu[k] for k in ks},
            "cpu_ratio": statistics.median(cpu[ks[0]]) / statistics.median(cpu[ks[1]])}


def real_corpus(path: Path) -> Path | None:
    """The bundled real text (`mixer corpus default`), prepared with whole documents, once."""
    if (path / "corpus.json").is_file():
        return path
    raw = path.with_name(path.name + "-raw")
    try:
        subprocess.run(MIXER + ["corpus", "default", "--out", str(raw), "--quiet", "--overwrite"], check=True)
        subprocess.run(MIXER + ["prepare", "--domain-map", str(raw / "domains.json"), "--out", str(path), "--quiet",
                                *REAL_RULES], check=True)
    except subprocess.CalledProcessError:
        print("  (real text unavailable: `mixer corpus default` needs its packages; row skipped)")
        return None
    return path


def real_weights(corpus: Path) -> tuple[dict, int]:
    """Each domain at its share of the tokens, 98 % of them: the whole corpus, once."""
    from mixer.formats.corpus import load_manifest

    tok = load_manifest(corpus).tokens()
    total = sum(tok.values())
    return {d: n / total for d, n in tok.items()}, int(0.98 * total)


def print_whole(name: str, r: dict) -> None:
    rows = {row["threads"]: row for row in r["rows"]}
    head = rows[min(rows)]
    beside = "; ".join(f"{t} threads: {row['ratio']:.2f}x ({row['whole_s']:.2f} s vs {row['limit_whole_s']:.2f} s)"
                       for t, row in rows.items() if t != min(rows))
    print(f"{name}: whole command {head['whole_s']:.2f} s vs read + zstd-1 + write {head['limit_whole_s']:.2f} s "
          f"({r['limit_tool']}, {head['threads']} thread): {head['ratio']:.2f}x ({goal(head['ratio'], GOAL_WHOLE)})"
          + (f"; {beside}" if beside else ""))
    for t, row in rows.items():
        print(f"  CPU seconds (user + system), {t} thread{'s' if t > 1 else ''}: "
              f"{statistics.median(row['whole_cpu_s_runs']):.2f} vs {statistics.median(row['limit_whole_cpu_s_runs']):.2f}"
              f" = {row['cpu_ratio']:.2f}x (not waiting for a core: the load-independent view)")
        print(f"  in process, {t} thread{'s' if t > 1 else ''}: {row['in_process_s']:.2f} s vs "
              f"{row['limit_in_process_s']:.2f} s = {row['in_process_ratio']:.2f}x; outside the work "
              f"{row['outside_work_s']:.2f} s")
        print(f"  with numba's JIT instead of the compiled kernels (MIXER_COMPILED_KERNELS=0), {t} thread"
              f"{'s' if t > 1 else ''}: {row['jit_whole_s']:.2f} s ({row['jit_ratio']:.2f}x the limit); compiled: "
              f"{row['jit_whole_s'] / row['whole_s']:.2f}x as fast")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small sizes, one run each: the CI smoke test")
    ap.add_argument("--scratch", default="/tmp/mixer-bench-build", help="corpora (kept between runs) and outputs")
    ap.add_argument("--real-corpus", default=None, help="a prepared real corpus [default: the bundled text, "
                    "whole documents, prepared into SCRATCH/real once; --quick: none]")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from bench.zipf_corpus import WEIGHTS, make_corpus

    scratch = Path(args.scratch)
    repeats = 1 if args.quick else args.repeats
    zipf_tokens, k_tokens, ks = (2_000_000, 1_000_000, (10, 100)) if args.quick else (64_000_000, 8_000_000,
                                                                                       (10, 10_000))
    threads = tuple(t for t in ((1,) if args.quick else (1, 2)) if t <= usable_cpus())
    res: dict = {"machine": machine({"build-shards": "--threads 1 and 2, pinned to as many CPUs",
                                     "limit": "zstd -T1 and -T2, pinned the same"}), "quick": args.quick,
                      "pinned": PINNED, "bytecode": bytecode_as_installed()}
    f = res["floor"] = floor(repeats)
    print(f"start-up floor, 1 CPU: python + numpy + zstandard + xxhash + click {f['without_numba_s']:.2f} s; with "
          f"one compiled kernel (build-shards) {f['compiled_s']:.2f} s; with numba and one kernel from its cache "
          f"{f['median_s']:.2f} s")
    real = Path(args.real_corpus) if args.real_corpus else (None if args.quick else real_corpus(scratch / "real"))
    if real is not None:
        weights, tokens = real_weights(real)
        res["real"] = whole_vs_limit("real", real, weights, tokens, scratch, repeats, threads)
        print_whole(f"real text, {tokens / 1e6:.1f}M tokens", res["real"])
    make_corpus(scratch / f"zipf{zipf_tokens}", zipf_tokens)
    res["zipf"] = whole_vs_limit("zipf", scratch / f"zipf{zipf_tokens}", WEIGHTS, zipf_tokens, scratch, repeats,
                                 threads)
    print_whole(f"Zipf tokens, {zipf_tokens / 1e6:.0f}M", res["zipf"])
    m = res["domains"] = many_domains(scratch, ks, k_tokens, repeats)
    print(f"K = {ks[1]:,} domains: {m['median_s'][str(ks[1])]:.2f} s vs K = {ks[0]}: {m['median_s'][str(ks[0])]:.2f} s, "
          f"{k_tokens / 1e6:g}M tokens, 2 threads: {1 / m['ratio']:.1f}x slower; K = {ks[0]} / K = {ks[1]:,} = "
          f"{m['ratio']:.2f}x ({goal(m['ratio'], GOAL_DOMAINS)}: within 2x); CPU seconds: {m['cpu_ratio']:.2f}x")
    res["machine"]["loadavg_after"] = list(os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    print(f"load average before {res['machine']['loadavg']}, after {res['machine']['loadavg_after']} -> {args.out}")
    return res


if __name__ == "__main__":
    main()
