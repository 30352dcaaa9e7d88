"""Trainer throughput: tokens/s, model FLOPs utilisation and data-loader wait, on the real data path.

    python -m bench.train                 # CPU: short sequences, a few steps (~5-8 min on 2 cores)
    python -m bench.train --device cuda   # GPU: full presets, bf16, torch.compile
    python -m bench.train --sweep 5       # 5 tiny proxies of a DDO sweep: one by one vs batched

Data: the project's own path, as `mixer train --shards` reads it: the corpus is sampled into zstd
shards (`mixer.shards.plan.build_plan` + `write_shards`, what `mixer build-shards` runs) and
streamed by `MixtureStream` through `mixer.trainers.data.source_from_shards` (DataLoader, pinned
memory on a GPU, shards decompressed ahead on a thread); `--source corpus` reads the corpus
through `MixtureSampler` instead (`source_from_corpus`, what the loop's proxies read).
Trainers: "hf" is `mixer.trainers.hf_train.train` (the Hugging Face classes), "stacked" is
`mixer.trainers.batched.train_batched` with one proxy (the compact GPT-2 / BERT of `mixer.trainers.compact`:
SDPA, fused QKV for BERT, fused chunked LM loss; BERT's head only on the masked positions). Stacked cases on a GPU run with dropout 0 (flash attention; the
usual setting of MFU figures); the hf cases keep the preset's dropout; each case records its own.

MFU = (6·N + 12·n_layer·d_model·seq_len) · tokens/s / peak, with N the parameters less the
position embeddings (nanoGPT's estimate; the tied LM head is counted, it is a real matmul).
BERT scores only its masked positions, so its `mfu` counts the prediction head (transform D² and
tied decoder V·D) at the expected masked share of tokens only (15 % of the real ones), for both
trainers: the HF class computes the head everywhere, but that work is wasted, not useful FLOPs;
`mfu_head_all_positions` is the plain 6·N formula (how the 18.1 % of the HF class was counted).
Peak: on a CPU, the best fp32 rate of a large matmul measured in this same run (so CPU MFU
reads "share of what this CPU's BLAS reaches", not of a datasheet figure); on a GPU, the
datasheet dense bf16 peak of the device. Data wait: seconds blocked in `next(batches)` over
training seconds (target: under 1 %). Steady-state tokens/s leaves out the first step
(allocation, compilation). Writes bench/results/train.json.
"""
from __future__ import annotations

import argparse
import math
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

# Dense bf16 tensor-core peaks (datasheet, no sparsity), FLOP/s.
GPU_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "A10": 125e12, "L4": 121e12, "A6000": 155e12}

# (model, preset, seq_len, batch_size, steps, trainer, dropout) per device type. CPU: short sequences
# and few steps so GPT-2 small and BERT-base finish in about a minute each on 2 cores. None: the preset's.
CASES = {
    "cpu": [("gpt2", "tiny", 64, 16, 30, "hf", None), ("gpt2", "tiny", 64, 16, 30, "stacked", None),
            ("gpt2", "small", 128, 2, 5, "hf", None), ("gpt2", "small", 128, 2, 5, "stacked", 0.0),
            ("bert", "bert-base", 128, 2, 5, "hf", None), ("bert", "bert-base", 128, 2, 5, "stacked", 0.0)],
    # One H100/H200 in about 5 minutes (bench/gpu.sh), compilation included.
    "cuda": [("gpt2", "tiny", 128, 64, 200, "hf", None), ("gpt2", "small", 1024, 16, 60, "hf", None),
             ("gpt2", "small", 1024, 32, 40, "stacked", 0.0), ("gpt2", "large", 1024, 16, 15, "stacked", 0.0),
             ("bert", "bert-base", 300, 32, 60, "hf", None), ("bert", "bert-base", 300, 64, 40, "stacked", 0.0)],
}
WEIGHTS = {"code": 0.4, "news": 0.6}


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


def data_source(corpus: Path, work: Path, model: str, seq_len: int, batch: int, tokens: int, source: str):
    """The DataSource a case trains on: shards built from `corpus` and read by MixtureStream, or
    the corpus read by MixtureSampler; `tokens` of the WEIGHTS mixture, epochs repeated as needed."""
    from mixer.core.kinds import ModelKind
    from mixer.shards.plan import PlanConfig
    from mixer.trainers.data import source_from_corpus, source_from_shards

    if source == "corpus":
        return source_from_corpus(corpus, WEIGHTS, PlanConfig(tokens=tokens, seq_len=seq_len, seed=0, max_epochs=math.inf),
                                  model=model, batch_size=batch)
    from mixer.shards import build
    from mixer.shards.write import ShardConfig

    out = work / f"shards-{model}-{seq_len}-{tokens}"
    if not out.exists():
        build(corpus, WEIGHTS, out, plan=PlanConfig(tokens=tokens, seq_len=seq_len, seed=0, max_epochs=math.inf,
                                                    objective=ModelKind.parse(model).objective),
              shards=ShardConfig(shard_tokens=1 << 20))
    return source_from_shards(out, batch, corpus_dir=corpus, model=model)


def run_case(corpus: Path, work: Path, device: str, model: str, preset: str, seq_len: int, batch: int, steps: int,
             trainer: str = "hf", dropout: float | None = None, source: str = "shards") -> dict:
    from mixer.trainers import TrainConfig, train
    from mixer.trainers.batched import Proxy, train_batched

    stamps: dict[int, float] = {}  # step -> time it finished (device synced)
    data = data_source(corpus, work, model, seq_len, batch, batch * seq_len * (steps + 2), source)
    cfg = TrainConfig(model=model, preset=preset, steps=steps, seq_len=seq_len, batch_size=batch, grad_accum=1,
                      eval_seqs=2, eval_batch_size=2, log_every=max(1, steps // 4), device=device, progress=False,
                      dropout=dropout)
    with tempfile.TemporaryDirectory() as out:
        if trainer == "stacked":
            def on_step(step: int) -> None:  # device synced after the first and the last step only
                if step in (1, steps):
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    stamps[step] = time.perf_counter()

            rec = train_batched(cfg, [Proxy(data, Path(out) / "run", seed=0)], on_step=on_step)[0]
        else:
            # The per-domain hook reads the step's losses, so the device is synced at every stamp.
            rec = train(cfg, data, out, hooks=[lambda step, loss, tokens: stamps.__setitem__(step, time.perf_counter())])
    p = cfg.resolve()
    n = rec.provenance["params_total"] - p.max_positions * p.d_model  # less the position embeddings
    flops_per_token = flops_all = 6 * n + 12 * p.n_layer * p.d_model * seq_len
    tokens_per_step = batch * seq_len
    masked_share = None
    if model == "bert":  # the head's FLOPs count for the masked positions only (see the module docstring)
        from mixer.trainers.objectives import MASK_PROB

        head = rec.config["vocab_size"] * p.d_model + p.d_model**2
        masked_share = MASK_PROB * rec.tokens_seen / (rec.steps * tokens_per_step)  # of all B·L positions
        flops_per_token = flops_all - 6 * head * (1 - masked_share)
    # Steady state: from the end of step 1 (allocation, compilation) to the end of the last step.
    steady = ((steps - 1) * tokens_per_step / (stamps[steps] - stamps[1])) if steps > 2 else rec.tokens_per_s
    return {"model": model, "preset": preset, "trainer": trainer, "dropout": p.dropout, "seq_len": seq_len,
            "batch_size": batch, "steps": steps, "data_path": type(data.state).__name__,
            "params": rec.provenance["params_total"], "params_non_embedding": rec.provenance["params_non_embedding"],
            "flops_per_token": flops_per_token, "flops_per_token_head_all_positions": flops_all,
            "masked_share": masked_share, "tokens_per_s_all_steps": rec.tokens_per_s,
            "load_average_1min": os.getloadavg()[0],
            "tokens_per_s_steady": steady, "data_wait_share": rec.provenance["data_wait_share"],
            "final_train_loss": rec.curve["train"]["mean"][-1]}


def sweep(args) -> None:
    """A DDO sweep's proxies, one by one (`mixer.loop.runner.execute`: mixer.trainers.hf_train.train, the
    Hugging Face model) against all at once (`mixer.loop.runner.execute_batch`:
    mixer.trainers.batched, one stacked model): the same specs (`plan_sweep` of a GPT-2-vocab corpus),
    from start to finished run.json and plot, in this process, with the same torch thread count."""
    from mixer.loop.runner import execute_batch
    from mixer.loop.runner import TrainSpec, execute
    from mixer.loop.sweep import LoopConfig, plan_sweep
    from mixer.formats.synthetic import write_skewed_corpus

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    domains = [f"d{i}" for i in range(max(3, (args.sweep - 1) // 2))]  # 1 + 2m runs
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_skewed_corpus(Path(tmp) / "corpus", {d: rng.integers(100, 500, 400) for d in domains},
                                     {d: rng.integers(100, 500, 8) for d in domains}, vocab_size=50257)
        train = TrainSpec(model="gpt2", preset="tiny", eval_seqs=8, threads=args.threads, device=args.device)
        cfg = LoopConfig(corpus=corpus, out=Path(tmp) / "o", train=train, factors=(2.0, 0.5), keep_total=True,
                         progress=False)  # equal budgets: the batched side trains them together
        specs = plan_sweep(cfg, args.budget)[: args.sweep]
        stacked = [replace(s, train=replace(s.train, trainer="stacked")) for s in specs]
        # Three ways to the same run.json files: the default trainer one by one (what a sweep did
        # before), the stacked trainer one by one (isolates what batching adds over its faster
        # implementation), and all at once. The order rotates every repeat, so none always runs
        # first on a warm or cold machine.
        ways = {"one_by_one": lambda: [execute(s) for s in specs],
                "stacked_one_by_one": lambda: [execute_batch([s]) for s in stacked],
                "batched": lambda: execute_batch(stacked)}
        times: dict[str, list[float]] = {k: [] for k in ways}
        for r in range(args.repeats):
            names = list(ways)
            for name in names[r % len(names):] + names[: r % len(names)]:
                t = time.perf_counter()
                ways[name]()
                times[name].append(time.perf_counter() - t)
            print({k: round(v[-1], 2) for k, v in times.items()})
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"device": args.device, "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda")
           else platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
           "proxies": len(specs), "budget_tokens": args.budget, "preset": "gpt2 tiny", "vocab_size": 50257,
           "repeats": args.repeats, "seconds": times, "median_s": med, "speedup": med["one_by_one"] / med["batched"],
           "speedup_vs_stacked_one_by_one": med["stacked_one_by_one"] / med["batched"],
           "load_average_1min_before": load_before, "load_average_1min": os.getloadavg()[0]}
    write_json_atomic(args.out, out)
    print(f"{len(specs)} proxies: one by one {med['one_by_one']:.1f} s (stacked trainer one by one "
          f"{med['stacked_one_by_one']:.1f} s), batched {med['batched']:.1f} s -> {out['speedup']:.2f}x "
          f"({out['speedup_vs_stacked_one_by_one']:.2f}x over the stacked trainer one by one); wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train.json"))
    ap.add_argument("--source", choices=["shards", "corpus"], default="shards",
                    help="shards: MixtureStream over built shards; corpus: MixtureSampler")
    ap.add_argument("--only", default=None, help="run only the cases of this preset (e.g. small)")
    ap.add_argument("--sweep", type=int, default=0, metavar="K",
                    help="instead: K GPT-2 tiny proxies of a DDO sweep, one by one vs batched (results/proxies.json)")
    ap.add_argument("--budget", type=int, default=8 * 64 * 40, help="--sweep: tokens per proxy")
    ap.add_argument("--repeats", type=int, default=3, help="--sweep: repeats of both sides (median)")
    ap.add_argument("--threads", type=int, default=1, help="--sweep: torch threads (as the loop's runs)")
    args = ap.parse_args()
    if args.sweep:
        if args.out == ap.get_default("out"):
            args.out = str(Path(__file__).parent / "results" / "proxies.json")
        return sweep(args)
    from mixer.formats.synthetic import write_skewed_corpus

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
        # GPT-2's vocab size so the LM head costs what it costs in real runs; 2 x 400 docs of ~300 tokens
        # (2 x 4000 on a GPU); longer runs repeat epochs.
        docs = 4000 if kind == "cuda" else 400
        write_skewed_corpus(corpus, {d: rng.integers(100, 500, docs) for d in WEIGHTS},
                            {d: rng.integers(100, 500, 8) for d in WEIGHTS}, vocab_size=50257)
        for case in CASES[kind]:
            if args.only and case[1] != args.only:
                continue
            t = time.perf_counter()
            r = run_case(corpus, Path(tmp), args.device, *case, source=args.source)
            r["mfu"] = r["flops_per_token"] * r["tokens_per_s_steady"] / peak
            r["mfu_head_all_positions"] = r["flops_per_token_head_all_positions"] * r["tokens_per_s_steady"] / peak
            if kind == "cpu":
                # A shared CPU's speed drifts with the load: the matmul peak measured right after the
                # case gives the ratio against what the machine delivered at that time.
                r["peak_flops_after"] = cpu_peak_flops()
                r["mfu_vs_peak_after"] = r["flops_per_token"] * r["tokens_per_s_steady"] / r["peak_flops_after"]
            r["wall_s"] = time.perf_counter() - t
            results.append(r)
            print(f"{r['model']:>5} {r['preset']:<9} {r['trainer']:<7} L={r['seq_len']:<5} B={r['batch_size']:<3} "
                  f"{r['tokens_per_s_steady']:>10,.0f} tok/s  MFU {r['mfu']:6.1%}  "
                  f"data wait {r['data_wait_share']:6.2%} of step time  ({r['wall_s']:.0f} s)"
                  + (f"  [head at all positions: MFU {r['mfu_head_all_positions']:.1%}]" if r["model"] == "bert" else "")
                  + (f"  [MFU vs peak re-measured after: {r['mfu_vs_peak_after']:.1%}]" if kind == "cpu" else ""))
            save(args, kind, peak, peak_how, results, finished=False)
    save(args, kind, peak, peak_how, results, finished=True)


def save(args, kind: str, peak: float, peak_how: str, results: list, finished: bool) -> None:
    """Write the results so far (after every case, so a run stopped by its time limit keeps the
    cases it finished; `finished` says whether every case ran)."""
    out = {"device": args.device, "device_name": torch.cuda.get_device_name() if kind == "cuda" else platform.processor()
           or platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
           "peak_flops": peak, "peak_how": peak_how, "cases": results, "source": args.source, "finished": finished,
           "note": "CPU figures use short sequences and few steps; the GPU run (bf16, torch.compile) is separate"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, out)
    if finished:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
