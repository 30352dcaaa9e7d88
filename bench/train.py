"""Trainer throughput: tokens/s, model FLOPs utilisation and data-loader wait.

    python -m bench.train                 # CPU: short sequences, a few steps (~3-6 min on 2 cores)
    python -m bench.train --device cuda   # GPU: full presets, bf16, torch.compile

MFU = (6·N + 12·n_layer·d_model·seq_len) · tokens/s / peak, with N the parameters less the
position embeddings (nanoGPT's estimate; the tied LM head is counted, it is a real matmul).
Peak: on a CPU, the best fp32 rate of a large matmul measured in this same run (so CPU MFU
reads "share of what this CPU's BLAS reaches", not of a datasheet figure); on a GPU, the
datasheet dense bf16 peak of the device. Data wait: seconds blocked in `next(batches)` over
training seconds (target: under 1 %). Steady-state tokens/s leaves out the first step
(allocation, compilation). Writes bench/results/train.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mixer.core.atomic import write_json_atomic

# Dense bf16 tensor-core peaks (datasheet, no sparsity), FLOP/s.
GPU_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "A10": 125e12, "L4": 121e12, "A6000": 155e12}

# (model, preset, seq_len, batch_size, steps) per device type. CPU: short sequences and few steps
# so GPT-2 small and BERT-base finish in about a minute each on 2 cores.
CASES = {
    "cpu": [("gpt2", "tiny", 64, 16, 30), ("gpt2", "small", 128, 2, 5), ("bert", "bert-base", 128, 2, 5)],
    "cuda": [("gpt2", "tiny", 128, 64, 200), ("gpt2", "small", 1024, 16, 60), ("gpt2", "large", 1024, 4, 30),
             ("bert", "bert-base", 300, 32, 60)],
}


def cpu_peak_flops(n: int = 2048, repeats: int = 5) -> float:
    """Best measured fp32 matmul rate of this CPU with torch's current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm the BLAS
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def gpu_peak_flops(device: torch.device) -> tuple[float, str]:
    name = torch.cuda.get_device_name(device)
    for key, peak in GPU_PEAK_BF16.items():
        if key in name:
            return peak, f"datasheet dense bf16 of {name}"
    n = 8192  # unknown GPU: measure, and say so
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ a
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize()
    return 10 * 2 * n**3 / (time.perf_counter() - t), f"measured bf16 matmul on {name}"


def run_case(corpus: Path, device: str, model: str, preset: str, seq_len: int, batch: int, steps: int) -> dict:
    from trainers import DataSource, TrainConfig, train
    from mixer.testing import ToyStream

    stamps: list[float] = []
    weights = {"code": 0.4, "news": 0.6}
    stream = ToyStream(corpus, weights, seq_len, seed=0, mlm=model == "bert")
    loader = torch.utils.data.DataLoader(stream, batch_size=batch, pin_memory=device.startswith("cuda"))
    cfg = TrainConfig(model=model, preset=preset, steps=steps, seq_len=seq_len, batch_size=batch, grad_accum=1,
                      eval_seqs=2, eval_batch_size=2, log_every=max(1, steps // 4), device=device, progress=False)
    with tempfile.TemporaryDirectory() as out:
        rec = train(cfg, DataSource(loader, corpus, weights, state=stream), out,
                    hooks=[lambda step, loss, tokens: stamps.append(time.perf_counter())])
    p = cfg.resolve()
    n = rec.provenance["params_total"] - p.max_positions * p.d_model  # less the position embeddings
    flops_per_token = 6 * n + 12 * p.n_layer * p.d_model * seq_len
    tokens_per_step = batch * seq_len
    steady = (len(stamps) - 1) * tokens_per_step / (stamps[-1] - stamps[0]) if len(stamps) > 2 else rec.tokens_per_s
    return {"model": model, "preset": preset, "seq_len": seq_len, "batch_size": batch, "steps": steps,
            "params": rec.provenance["params_total"], "params_non_embedding": rec.provenance["params_non_embedding"],
            "flops_per_token": flops_per_token, "tokens_per_s_all_steps": rec.tokens_per_s,
            "load_average_1min": os.getloadavg()[0],
            "tokens_per_s_steady": steady, "data_wait_share": rec.provenance["data_wait_share"],
            "final_train_loss": rec.curve["train"]["mean"][-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train.json"))
    args = ap.parse_args()
    from mixer.testing import write_skewed_corpus

    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    if kind == "cpu":
        peak, peak_how = cpu_peak_flops(), f"measured fp32 2048^3 matmul, {torch.get_num_threads()} threads, this run"
    else:
        peak, peak_how = gpu_peak_flops(torch.device(args.device))
    print(f"peak {peak / 1e9:,.1f} GFLOP/s ({peak_how})")
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        # GPT-2's vocab size so the LM head costs what it costs in real runs; 2 x 400 docs of ~300 tokens.
        write_skewed_corpus(corpus, {d: rng.integers(100, 500, 400) for d in ("code", "news")},
                            {d: rng.integers(100, 500, 8) for d in ("code", "news")}, vocab_size=50257)
        for case in CASES[kind]:
            t = time.perf_counter()
            r = run_case(corpus, args.device, *case)
            r["mfu"] = r["flops_per_token"] * r["tokens_per_s_steady"] / peak
            if kind == "cpu":
                # A shared CPU's speed drifts with the load: the matmul peak measured right after the
                # case gives the ratio against what the machine delivered at that time.
                r["peak_flops_after"] = cpu_peak_flops()
                r["mfu_vs_peak_after"] = r["flops_per_token"] * r["tokens_per_s_steady"] / r["peak_flops_after"]
            r["wall_s"] = time.perf_counter() - t
            results.append(r)
            print(f"{r['model']:>5} {r['preset']:<9} L={r['seq_len']:<5} B={r['batch_size']:<3} "
                  f"{r['tokens_per_s_steady']:>10,.0f} tok/s  MFU {r['mfu']:6.1%}  "
                  f"data wait {r['data_wait_share']:6.2%} of step time  ({r['wall_s']:.0f} s)"
                  + (f"  [MFU vs peak re-measured after: {r['mfu_vs_peak_after']:.1%}]" if kind == "cpu" else ""))
    out = {"device": args.device, "device_name": torch.cuda.get_device_name() if kind == "cuda" else platform.processor()
           or platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
           "peak_flops": peak, "peak_how": peak_how, "cases": results,
           "note": "CPU figures use short sequences and few steps; the GPU run (bf16, torch.compile) is separate"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
