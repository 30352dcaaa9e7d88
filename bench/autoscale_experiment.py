"""The paper's §4.2 scaled down to a CPU: does AutoScale's extrapolated mixture beat the others
at a budget 8x larger than the proxies?

    python -m bench.autoscale_experiment            # ~15 min on 2 busy CPU cores
    python -m bench.autoscale_experiment --small    # a few minutes, for a smoke run

For GPT-2 tiny (causal) and, smaller, BERT tiny (masked LM), on the bundled corpus prepared
with a 2,048-id BPE trained on it (cached under work/bench-cache/):
1. DDO at two budgets S and 2S (base + x3 + x1/3 per domain: 22 proxy runs, `mixer.loop.sweep`);
2. AutoScale from the two optima to the target T = 16S (8x the larger proxy);
3. train at T with uniform, natural (proportional to available tokens), DDO at 2S (direct
   transfer) and AutoScale weights, held-out evaluation every T/10 steps.
Reported per mixture: mean held-out loss and perplexity (mean over the 5 domains of exp(loss))
at T, and the paper's metric: the steps each needs to reach uniform's final mean held-out loss
(interpolated between evaluations), as a speed-up in % of uniform's steps (None: never reached).
Expect at these sizes: proxies of 50-100 steps, so the DDO fits are noisy (one seed, three
points, three parameters: exact interpolations) and the answer can go either way; the
results file says what happened. Results: bench/results/autoscale.json and PNGs beside it.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
CACHE = Path("work/bench-cache")


def prepared_corpus(cache: Path) -> Path:
    """The bundled corpus, prepared once with a 2,048-id BPE (tiny models train ~20x faster than at 50k ids)."""
    from mixer.formats.corpus import load_manifest
    from mixer.prepare.default_corpus import assemble_default_corpus
    from mixer.prepare.domain_map import load_domain_map
    from mixer.prepare.pipeline import PrepareConfig, prepare_corpus

    raw, corpus = cache / "raw", cache / "corpus-bpe2k"
    if not (raw / "domains.json").is_file():
        assemble_default_corpus(raw, overwrite=True, progress=False)
    if not (corpus / "corpus.json").is_file():
        prepare_corpus(PrepareConfig(sources=tuple(load_domain_map(raw / "domains.json")), out=corpus,
                                     tokenizer="train", vocab_size=2048, workers=2, progress=False))
    load_manifest(corpus)
    return corpus


def steps_to_reach(steps: list[int], losses: list[float], level: float) -> float | None:
    """First step where the eval curve reaches `level`, linearly interpolated; None if never."""
    prev_s, prev_l = 0, float("inf")
    for s, l in zip(steps, losses):
        if l <= level:
            if not np.isfinite(prev_l):
                return float(s)
            return float(prev_s + (s - prev_s) * (prev_l - level) / (prev_l - l))
        prev_s, prev_l = s, l
    return None


def mean_eval_curve(run_json: Path, domains: list[str]) -> tuple[list[int], list[float]]:
    rec = json.loads(run_json.read_text())
    ev = rec["curve"]["eval"]
    return ev["step"], [float(np.mean([ev["loss"][d][i] for d in domains])) for i in range(len(ev["step"]))]


def experiment(model: str, scale: int, corpus: Path, out: Path, ray: str | None, keep_total: bool = True) -> dict:
    from mixer.formats.corpus import load_manifest
    from mixer.loop.sweep import LoopConfig, run_all
    from mixer.loop.autoscale import loop_autoscale, target_comparison, target_specs
    from mixer.loop.runner import TrainSpec
    from solver.baselines import natural_weights

    t0 = time.perf_counter()
    scales, target = [scale, 2 * scale], 16 * scale
    train = TrainSpec(model=model, preset="tiny", eval_seqs=32, allow_repeat=True)
    cfg = LoopConfig(corpus=corpus, out=out, train=train, factors=(3.0, 1 / 3), keep_total=keep_total, n_bootstrap=0, ray=ray,
                     ray_cpus=2, cache=CACHE / "runs", progress=False)
    auto = loop_autoscale(cfg, scales, target)
    t_ddo = time.perf_counter() - t0
    domains = list(auto.weights)
    manifest = load_manifest(corpus)
    mixtures = {"uniform": {d: 1 / len(domains) for d in domains},
                "natural": natural_weights({d: float(n) for d, n in manifest.tokens("train").items()}),
                "ddo_small": auto.scales[-1].weights, "autoscale": auto.weights}
    p = train.train_config().resolve()
    steps_total = target // (p.seq_len * p.batch_size * p.grad_accum)
    tcfg = replace(cfg, train=replace(train, eval_every=max(1, steps_total // 10), eval_seqs=48))
    specs = target_specs(tcfg, target, mixtures)
    paths, _ = run_all(specs, cfg.cache_dir, _backend(cfg), progress=True, desc=f"{model} target runs")
    comp = target_comparison(specs, paths)
    curves = {name: mean_eval_curve(Path(c["run"]), domains) for name, c in comp.items()}
    u_steps, u_loss = curves["uniform"]
    level = u_loss[-1]
    for name, (steps, losses) in curves.items():
        reach = steps_to_reach(steps, losses, level)
        comp[name]["steps_to_uniform_final"] = reach
        comp[name]["speedup_pct"] = None if reach is None else 100.0 * (u_steps[-1] - reach) / u_steps[-1]
        comp[name]["eval_curve"] = {"step": steps, "mean_loss": losses}
        del comp[name]["run"]
    _plot_curves(curves, RESULTS / f"autoscale_{model}_loss_curves.png", f"{model} tiny at {target:,} tokens")
    src = auto.plots[0] if auto.plots else None
    if src is not None:
        (RESULTS / f"autoscale_{model}_weights_vs_scale.png").write_bytes(src.read_bytes())
    return {"model": model, "preset": "tiny", "perturbation_total": "fixed" if keep_total else "grown", "scales": scales, "target": target, "t_target": auto.t,
            "ddo_weights": {str(r.budget_tokens): r.weights for r in auto.scales}, "autoscale_weights": auto.weights,
            "ddo_fit_warnings": {str(r.budget_tokens): r.estimator.warnings_ for r in auto.scales},
            "mixtures": comp, "wall_s": {"ddo_sweeps": t_ddo, "total": time.perf_counter() - t0}}


def _backend(cfg):
    from mixer.loop.sweep import make_backend

    return make_backend(cfg)


def _plot_curves(curves: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, (steps, losses) in curves.items():
        ax.plot(steps, losses, "-o", ms=3, label=name)
    ax.axhline(curves["uniform"][1][-1], color="k", ls=":", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("mean held-out loss (5 domains)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    lo = min(min(l) for _, l in curves.values())
    ax.set_ylim(lo - 0.05, lo + 1.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="smoke run: a quarter of the budgets")
    ap.add_argument("--gpt2-scale", type=int, default=25_000, help="smallest DDO budget of GPT-2 (target = 16x)")
    ap.add_argument("--bert-scale", type=int, default=12_000, help="smallest DDO budget of BERT (target = 16x)")
    ap.add_argument("--ray", default="local", help="'local' (2-CPU cluster), an address, or 'none'")
    ap.add_argument("--models", default="gpt2,bert", help="which experiments to (re)run; others keep their saved results")
    ap.add_argument("--grow-total", action="store_true",
                    help="perturbed runs keep the other domains' tokens (Algorithm 1) instead of rescaling them (§2.2)")
    args = ap.parse_args()
    ray = None if args.ray == "none" else args.ray
    div = 4 if args.small else 1
    RESULTS.mkdir(parents=True, exist_ok=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    corpus = prepared_corpus(CACHE)
    saved = RESULTS / "autoscale.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {"experiments": {}}
    results["corpus"] = "bundled default corpus, BPE 2,048 ids (work/bench-cache/corpus-bpe2k)"
    results.pop("cpu", None)
    wanted = set(args.models.split(","))
    for model, scale in (("gpt2", args.gpt2_scale // div), ("bert", args.bert_scale // div)):
        if model not in wanted:
            continue
        res = experiment(model, scale, corpus, CACHE / f"loop-{model}-{scale}", ray, keep_total=not args.grow_total)
        res["cpu"] = f"{__import__('os').cpu_count()} cores"
        results["experiments"][model] = res
        (RESULTS / "autoscale.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"\n{model}: DDO at {res['scales']}, target {res['target']:,} (t = {res['t_target']:.3g})")
        for name, c in res["mixtures"].items():
            sp = "never" if c["speedup_pct"] is None else f"{c['speedup_pct']:+.1f}%"
            print(f"  {name:>10}: mean loss {c['mean_loss']:.4f}  mean ppl {c['mean_perplexity']:8.2f}  "
                  f"speed-up to uniform's final loss {sp}")
    print(f"wrote {RESULTS / 'autoscale.json'}")


if __name__ == "__main__":
    main()
