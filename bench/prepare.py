"""Throughput of `mixer prepare` on the bundled corpus with 1 and 2 processes.

Prints documents/s and MB/s (UTF-8 bytes of source text read per second of wall time) and
the tokenizer's share of the time; writes bench/results/prepare.json. Expect on a 2-core
machine: a few seconds per run, tokenization the largest stage, 2 processes faster than 1.

    python -m bench.prepare [--raw work/demo/raw] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from mixer.prepare.default_corpus import assemble_default_corpus
from mixer.prepare.domain_map import load_domain_map
from mixer.prepare.pipeline import PrepareConfig, prepare_corpus

RESULTS = Path(__file__).parent / "results" / "prepare.json"


def run_once(raw: Path, out: Path, workers: int) -> dict:
    t0 = time.perf_counter()
    result = prepare_corpus(PrepareConfig(sources=tuple(load_domain_map(raw / "domains.json")), out=out,
                                          workers=workers, overwrite=True, progress=False))
    wall = time.perf_counter() - t0
    docs = sum(r.seen for r in result.reports)
    return {"workers": workers, "wall_s": wall, "documents": docs, "docs_per_s": docs / wall,
            "source_mb": result.source_bytes / 1e6, "mb_per_s": result.source_bytes / 1e6 / wall,
            "tokens": sum(r.train_tokens + r.heldout_tokens for r in result.reports),
            "stages_s": result.timings, "tokenizer_share": result.timings["tokenize"] / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=None, help="An assembled default corpus (else assembled into a temp dir).")
    ap.add_argument("--repeats", type=int, default=2, help="Runs per worker count; the fastest is reported.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mixer-bench-prepare-"))
    try:
        raw = args.raw
        if raw is None:
            raw = tmp / "raw"
            assemble_default_corpus(raw, progress=False)
        runs = {}
        for workers in (1, 2):
            best = min((run_once(raw, tmp / f"corpus{workers}", workers) for _ in range(args.repeats)),
                       key=lambda r: r["wall_s"])
            runs[workers] = best
            print(f"workers={workers}: {best['docs_per_s']:,.0f} docs/s, {best['mb_per_s']:.2f} MB/s, "
                  f"{best['wall_s']:.1f} s wall, tokenizer share {best['tokenizer_share']:.0%}")
        speedup = runs[1]["wall_s"] / runs[2]["wall_s"]
        print(f"2 processes vs 1: {speedup:.2f}x")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"machine": platform.machine(), "cpus": __import__("os").cpu_count(),
                                       "runs": list(runs.values()), "speedup_2_vs_1": speedup}, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
