"""Throughput of `mixer prepare` on the bundled corpus: 1 and 2 processes, and a 2-CPU local Ray cluster.

Prints documents/s and MB/s (UTF-8 bytes of source text read per second of wall time, all work
from reading the sources to the renamed corpus folder inside the timing) and the stages' times;
writes bench/results/prepare.json with the machine record (load, threads, versions). Every
configuration runs `--repeats` times, the 1- and 2-process runs alternating; figures quote the
median (best and all runs kept beside).

The Ray runs use the same 2 cores as the 2-process run: a local cluster of 2 CPUs, one task per
CPU, tasks of `--task-mb` source megabytes. The cluster is started once, outside the timed runs
(its start-up is reported apart, `ray_start_s`); the first Ray run also pays every worker's
imports and tokenizer load and is reported apart as `cold_run_s`. Expect on 2 idle cores: a few
seconds per run, tokenization the largest stage, 2 processes and Ray faster than 1 process.

    python -m bench.prepare [--raw work/demo/raw] [--repeats 3] [--task-mb 4]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import machine, timed
from mixer.core.cluster import ClusterConfig
from mixer.prepare.config import PrepareConfig
from mixer.prepare.default_corpus import assemble_default_corpus
from mixer.prepare.domain_map import load_domain_map
from mixer.prepare.pipeline import prepare_corpus

RESULTS = Path(__file__).parent / "results" / "prepare.json"


def summarise(label: str, timing: dict, result) -> dict:
    wall = timing["median_s"]
    docs = sum(r.seen for r in result.reports)
    return {"config": label, "median_s": wall, "best_s": timing["best_s"], "runs_s": timing["runs_s"],
            "documents": docs, "docs_per_s": docs / wall, "source_mb": result.source_bytes / 1e6,
            "mb_per_s": result.source_bytes / 1e6 / wall,
            "tokens": sum(r.train_tokens + r.heldout_tokens for r in result.reports),
            "stages_s_last_run": result.timings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=None, help="An assembled default corpus (else assembled into a temp dir).")
    ap.add_argument("--repeats", type=int, default=3, help="Runs per configuration; the median is reported.")
    ap.add_argument("--task-mb", type=float, default=4.0, help="Source megabytes per Ray task.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mixer-bench-prepare-"))
    record = {"machine_before": machine({"prepare_workers": 2, "ray_cpus": 2})}
    try:
        raw = args.raw
        if raw is None:
            raw = tmp / "raw"
            assemble_default_corpus(raw, progress=False)
        sources = tuple(load_domain_map(raw / "domains.json"))

        def config(name: str, workers: int = 1) -> PrepareConfig:
            return PrepareConfig(sources=sources, out=tmp / name, workers=workers, overwrite=True, progress=False)

        # 1 and 2 processes alternate, run after run, so a change in the machine's load affects both alike
        times, results = {1: [], 2: []}, {}
        for _ in range(args.repeats):
            for workers in (1, 2):
                t, results[workers] = timed(lambda: prepare_corpus(config(f"p{workers}", workers)), 1)
                times[workers] += t["runs_s"]
        runs, outputs = [], {}
        for workers in (1, 2):
            timing = {"median_s": statistics.median(times[workers]), "best_s": min(times[workers]),
                      "runs_s": times[workers]}
            runs.append(summarise(f"{workers} process{'es' if workers > 1 else ''}", timing, results[workers]))
            outputs[runs[-1]["config"]] = tmp / f"p{workers}"

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - t0
        try:
            cluster = ClusterConfig("local", num_cpus=2, task_bytes=int(args.task_mb * 1e6))
            cold, _ = timed(lambda: prepare_corpus(config("ray"), cluster), 1)
            timing, result = timed(lambda: prepare_corpus(config("ray"), cluster), args.repeats)
        finally:
            ray.shutdown()
        ray_run = summarise("ray local, 2 CPUs", timing, result)
        ray_run.update(ray_start_s=ray_start, cold_run_s=cold["median_s"], tasks=result.tasks, task_mb=args.task_mb)
        runs.append(ray_run)
        outputs[ray_run["config"]] = tmp / "ray"

        def files(p: Path) -> dict:
            return {f.relative_to(p).as_posix(): f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()}

        reference = files(tmp / "p1")
        identical = all(files(p) == reference for p in outputs.values())
        for r in runs:
            print(f"{r['config']:>18}: {r['mb_per_s']:.2f} MB/s, {r['docs_per_s']:,.0f} docs/s, "
                  f"median {r['median_s']:.1f} s (best {r['best_s']:.1f} s)")
        print(f"ray: cluster start {ray_start:.1f} s, first run {cold['median_s']:.1f} s, {ray_run['tasks']} tasks; "
              f"outputs byte-identical: {identical}")
        one = runs[0]["median_s"]
        record.update(runs=runs, speedup_vs_1_process={r["config"]: one / r["median_s"] for r in runs},
                      outputs_identical=identical, machine_after=machine())
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
