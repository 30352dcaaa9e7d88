"""Every mixture method on one corpus and one budget, judged at the same target.

    python -m bench.methods                 # synthetic skewed corpus, CPU: a few minutes
    python -m bench.methods --quick         # smaller, for a smoke run
    python -m bench.methods --corpus DIR    # a prepared corpus (`mixer prepare`, e.g. the bundled one)
    python -m bench.methods --gpu           # sized for one ~8-minute call on an H100/H200

GPU size (`--gpu`): the bundled corpus without the 1000-character cut (14.0M training tokens,
`bench.autoscale_experiment.prepared_corpus`), GPT-2 tiny at 128 tokens per sequence on CUDA,
proxies of 250k tokens (56 proxy runs, about 17M tokens), every answer trained at 4M tokens with
3 seeds (84M tokens). Not yet run: this task had no GPU (the figure is owed).

Methods, all through the loop's machinery with the same GPT-2 tiny proxies, seeds and run cache:
uniform and natural (token shares; no proxies), DDO at N (`loop_ddo`, factors x3 and x1/3,
grown totals, the authors' floor), AutoScale from N and 2N to the target (`loop_autoscale`),
RegMix (`loop_regmix`: LightGBM on random mixtures around the token distribution), Data Mixing
Laws (Huber fit on RegMix's random-mixture runs, which is the kind of grid the authors fit), and
DoReMi online (`loop_doremi`: reference, then the proxy with Group DRO). Each answer is trained
at the target with `--seeds` model and data seeds; reported: mean held-out loss and mean
perplexity (mean over domains of exp(loss)) with a 95 % t-interval over the seeds, and the proxy
compute each method spent (runs and tokens; RegMix and Data Mixing Laws share theirs).
Results: bench/results/methods.json (`--quick`: methods_quick.json), with the machine and its load
before and after (`bench.common.machine`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
DOMAINS = {"books": 300, "code": 900, "news": 600, "web": 450}  # documents per domain: natural != uniform


def make_corpus(out: Path, scale: float) -> Path:
    from mixer.formats.synthetic import lognormal_lengths, write_skewed_corpus

    if (out / "corpus.json").is_file():
        return out
    train = {d: lognormal_lengths(int(n * scale), 60.0, 1.0, i) for i, (d, n) in enumerate(DOMAINS.items())}
    held = {d: lognormal_lengths(40, 60.0, 1.0, 100 + i) for i, d in enumerate(DOMAINS)}
    return write_skewed_corpus(out, train, held, vocab_size=512)


def _tokens(paths) -> tuple[int, int]:
    """(runs, tokens) over run.json paths."""
    from mixer.formats.run import load_run

    paths = list(paths)
    return len(paths), sum(int(load_run(p).budget_tokens) for p in paths)


def _interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval over seeds (the mean twice with one seed)."""
    from scipy.stats import t

    v = np.asarray(values, float)
    if v.size < 2:
        return float(v.mean()), float(v.mean()), float(v.mean())
    half = float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def run(args: argparse.Namespace) -> dict:
    from mixer.formats.corpus import load_manifest
    from mixer.loop.autoscale import loop_autoscale
    from mixer.loop.doremi import DoReMiConfig, loop_doremi
    from mixer.loop.regmix import RegMixConfig, loop_regmix
    from mixer.loop.runner import RunSpec, TrainSpec
    from mixer.loop.sweep import LoopConfig, corpus_identity, loop_ddo, make_backend, run_all
    from mixer.solver.runs import read_runs
    from mixer.solver.solutions import mixing_laws_solution

    out = Path(args.out)
    if args.corpus:
        corpus = Path(args.corpus)
    elif getattr(args, "gpu", False):
        from bench.autoscale_experiment import CACHE, prepared_corpus

        corpus = prepared_corpus(CACHE, cut=False)
    else:
        corpus = make_corpus(out / "corpus", 0.5 if args.quick else 1.0)
    N, T = args.proxy_tokens, args.target
    train = TrainSpec(model="gpt2", preset="tiny", eval_seqs=args.eval_seqs, max_epochs=math.inf,
                      device=getattr(args, "device", "auto"), seq_len=getattr(args, "seq_len", None))
    cfg = LoopConfig(corpus=corpus, out=out / "ddo", train=train, factors=(3.0, 1 / 3), keep_total=False,
                     n_bootstrap=0, plots=False, progress=not args.quiet, cache=out / "runs", ray=args.ray,
                     ray_cpus=args.ray_cpus)
    spent: dict[str, tuple[int, int]] = {}
    answers: dict[str, dict[str, float]] = {}
    clock: dict[str, float] = {}

    t0 = time.perf_counter()
    ddo = loop_ddo(cfg, N)
    answers["DDO"], spent["DDO"], clock["DDO"] = ddo.weights, _tokens(ddo.runs.values()), time.perf_counter() - t0
    t0 = time.perf_counter()
    auto = loop_autoscale(replace(cfg, out=out / "autoscale"), [N, 2 * N], T)
    answers["AutoScale"] = auto.weights
    spent["AutoScale"] = _tokens([p for r in auto.scales for p in r.runs.values()])
    clock["AutoScale"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rm = loop_regmix(RegMixConfig(loop=replace(cfg, out=out / "regmix"), runs=args.regmix_runs, held_out=4,
                                  n_search=20_000), N)
    answers["RegMix"], spent["RegMix"] = rm.weights, _tokens([*rm.runs.values(), *rm.held_out.values()])
    clock["RegMix"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dml = mixing_laws_solution(read_runs(list(rm.runs.values())), out / "mixing-laws" / "weights.json",
                               n_bootstrap=0, plots=False)
    answers["Data Mixing Laws"], spent["Data Mixing Laws"] = dml.weights, _tokens(rm.runs.values())
    clock["Data Mixing Laws"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dr = loop_doremi(DoReMiConfig(corpus=corpus, out=out / "doremi", train=train, cache=out / "runs",
                                  progress=not args.quiet), N)
    answers["DoReMi"], spent["DoReMi"] = dr.weights, _tokens([dr.reference, dr.proxy])
    clock["DoReMi"] = time.perf_counter() - t0
    tok = load_manifest(corpus).tokens("train")
    answers["natural"] = {d: n / sum(tok.values()) for d, n in tok.items()}
    answers["uniform"] = {d: 1 / len(tok) for d in tok}

    _, sha = corpus_identity(corpus)
    specs = {(name, k): RunSpec(corpus=str(corpus), corpus_sha256=sha, name=f"target-{name}-s{k}", weights=w,
                                budget_tokens=int(T), train=replace(train, seed=k, data_seed=k),
                                provenance={"role": "target", "mixture": name})
             for name, w in answers.items() for k in range(args.seeds)}
    paths, _ = run_all(specs.values(), out / "runs", make_backend(cfg), not args.quiet, desc=f"targets @ {T:,}")
    from mixer.formats.run import load_run

    rows = {}
    for name, w in answers.items():
        recs = [load_run(paths[specs[(name, k)].key()]) for k in range(args.seeds)]
        loss = [float(np.mean(list(r.final_loss.values()))) for r in recs]
        ppl = [float(np.mean([math.exp(v) for v in r.final_loss.values()])) for r in recs]
        runs, tokens = spent.get(name, (0, 0))
        rows[name] = {"weights": w, "mean_loss": _interval(loss), "mean_perplexity": _interval(ppl),
                      "proxy_runs": runs, "proxy_tokens": tokens, "solve_s": clock.get(name, 0.0)}
    extra = {"regmix_spearman": rm.spearman, "ddo_verdict": getattr(ddo.verdict, "label", None),
             "autoscale_verdict": getattr(auto.verdict, "label", None)}
    return {"corpus": str(corpus), "proxy_tokens": N, "target_tokens": T, "seeds": args.seeds,
            "domains": list(tok), "train_tokens": tok, "methods": rows, "checks": extra}


def show(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Mixtures at {res['target_tokens']:,} tokens (proxies at {res['proxy_tokens']:,}; "
                        f"{res['seeds']} seeds; mean [95 % t-interval])")
    for col in ("method", "mean held-out loss", "mean perplexity", "proxy runs", "proxy tokens",
                *res["domains"]):
        table.add_column(col, justify="left" if col == "method" else "right")
    best = min(r["mean_perplexity"][0] for r in res["methods"].values())
    for name, r in sorted(res["methods"].items(), key=lambda kv: kv[1]["mean_perplexity"][0]):
        (lm, llo, lhi), (pm, plo, phi) = r["mean_loss"], r["mean_perplexity"]
        table.add_row(name + (" *" if pm == best else ""), f"{lm:.4f} [{llo:.4f}, {lhi:.4f}]",
                      f"{pm:.2f} [{plo:.2f}, {phi:.2f}]", str(r["proxy_runs"]), f"{r['proxy_tokens']:,}",
                      *[f"{r['weights'][d]:.3f}" for d in res["domains"]])
    console = Console(width=170)
    console.print(table)
    console.print(f"checks: {res['checks']}", soft_wrap=True, markup=False)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="work/bench-methods")
    p.add_argument("--corpus", default=None, help="A prepared corpus; default: a synthetic skewed one under --out.")
    p.add_argument("--proxy-tokens", type=int, default=16_384)
    p.add_argument("--target", type=int, default=131_072)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--regmix-runs", type=int, default=24)
    p.add_argument("--eval-seqs", type=int, default=32)
    p.add_argument("--ray", default=None, help="local|auto|ADDRESS: proxies as Ray tasks.")
    p.add_argument("--ray-cpus", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="Half the corpus, 8k-token proxies, 32k target, 2 seeds.")
    p.add_argument("--gpu", action="store_true",
                   help="GPU size: uncut bundled corpus, 250k-token proxies, 4M target, 3 seeds, 128-token sequences")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu or cuda")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: the preset's)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-save", action="store_true", help="Do not write bench/results/methods.json.")
    args = p.parse_args(argv)
    if args.quick:
        args.proxy_tokens, args.target, args.seeds, args.regmix_runs = 8192, 32_768, 2, 12
    if args.gpu:
        args.proxy_tokens, args.target, args.seeds, args.regmix_runs = 250_000, 4_000_000, 3, 32
        args.eval_seqs, args.seq_len = 64, args.seq_len or 128
        args.device = "cuda" if args.device == "auto" else args.device
    from bench.common import machine

    before = machine()
    t0 = time.perf_counter()
    res = run(args)
    res["wall_s"] = time.perf_counter() - t0
    res["machine"], res["loadavg_after"] = before, list(os.getloadavg())
    show(res)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        name = "methods_gpu.json" if args.gpu else "methods_quick.json" if args.quick else "methods.json"
        (RESULTS / name).write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
        print(f"wrote {RESULTS / name} ({res['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
