"""A DDO sweep's proxies: one by one (the default trainer) against K at once (`--batch-proxies`).

    python -m bench.proxies                     # CPU: 5 GPT-2 tiny proxies, 3 repeats, median
    python -m bench.proxies --device cuda --proxies 11 --budget 2000000

Both sides train the same specs (`mixer.loop.sweep.plan_sweep` of a tiny corpus) from start to
finished run.json, in this process, with the same torch thread count: one by one through
`mixer.loop.runner.execute` (trainers.loop.train, the Hugging Face model), batched through
`mixer.loop.batched_backend.execute_batch` (trainers.batched, one stacked model). Everything a
run costs (model build, compile, data, training, evaluation, run.json and plot) is inside the
timing. Writes bench/results/proxies.json (or --out).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mixer.core.atomic import write_json_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--proxies", type=int, default=5)
    ap.add_argument("--budget", type=int, default=8 * 64 * 40, help="tokens per proxy")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "proxies.json"))
    args = ap.parse_args()
    from mixer.loop.batched_backend import execute_batch
    from mixer.loop.runner import TrainSpec, execute
    from mixer.loop.sweep import LoopConfig, plan_sweep
    from mixer.testing import write_skewed_corpus

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    domains = [f"d{i}" for i in range(max(3, (args.proxies - 1) // 2))]  # 1 + 2m runs
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_skewed_corpus(Path(tmp) / "corpus", {d: rng.integers(100, 500, 400) for d in domains},
                                     {d: rng.integers(100, 500, 8) for d in domains}, vocab_size=50257)
        train = TrainSpec(model="gpt2", preset="tiny", eval_seqs=8, threads=args.threads, device=args.device)
        cfg = LoopConfig(corpus=corpus, out=Path(tmp) / "o", train=train, factors=(2.0, 0.5), progress=False)
        specs = plan_sweep(cfg, args.budget)[: args.proxies]
        stacked = [replace(s, train=replace(s.train, trainer="stacked")) for s in specs]
        times: dict[str, list[float]] = {"one_by_one": [], "batched": []}
        for _ in range(args.repeats):
            t = time.perf_counter()
            for s in specs:
                execute(s)
            times["one_by_one"].append(time.perf_counter() - t)
            t = time.perf_counter()
            execute_batch(stacked)
            times["batched"].append(time.perf_counter() - t)
            print({k: round(v[-1], 2) for k, v in times.items()})
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"device": args.device, "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda")
           else platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
           "proxies": len(specs), "budget_tokens": args.budget, "preset": "gpt2 tiny", "vocab_size": 50257,
           "repeats": args.repeats, "seconds": times, "median_s": med, "speedup": med["one_by_one"] / med["batched"],
           "load_average_1min": os.getloadavg()[0]}
    write_json_atomic(args.out, out)
    print(f"{len(specs)} proxies: one by one {med['one_by_one']:.1f} s, batched {med['batched']:.1f} s "
          f"-> {out['speedup']:.2f}x; wrote {args.out}")


if __name__ == "__main__":
    main()
