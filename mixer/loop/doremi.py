"""`mixer loop doremi`: DoReMi online, as the official implementation runs it.

    cfg = DoReMiConfig(corpus="corpus/", out="loop/", train=TrainSpec(model="gpt2", preset="tiny"))
    result = loop_doremi(cfg, budget_tokens=1_000_000)
    result.weights        # the average over steps of the Group DRO weights (the answer)
    result.trajectory     # (steps, m): the weights after every step

1. **Reference**: a proxy trained at the base weights (uniform by default) through the loop's
   runner (the `MixtureSampler` stream, fixed seeds); its run folder keeps the model
   (`checkpoint.pt`) beside run.json, cached by the run's key like every sweep run.
2. **Proxy**: the same model size trained from scratch with a step hook (`mixer.trainers.hooks`):
   after every step the reference scores the same tokens,
   the excess loss is clipped at 0 per token and averaged per domain
   (`mixer.solver.baselines.doremi.per_token_excess`), and `DoReMiWeights.update_excess` takes one
   exponentiated-gradient step with step size `eta` and smoothing `c`; the new weights weight
   the next step's loss (or drive the sampler, `mode="resample"`). The trajectory and its
   average are committed with the proxy run.
3. `weights.json` (method `doremi`): the average, with the trajectory, the final weights and a
   plot of the trajectory (`mixer.solver.solutions.doremi_online_solution`).

`mode="reweight"` (default) is the official code's form: the proxy reads the reference's stream
(base weights) and its training loss weights each token by α of its domain over its base
weight, α_d / base_d (a `StepUpdate` of loss weights; the official trainer divides by the
sampling weights, `doremi/trainer.py` line 349), so each domain's share of the loss is α_d
whatever the base mixture. A domain with no token in a step keeps its last score, and scores
start at log(vocabulary size), as the official code does (`DoReMiWeights`);
`mode="resample"` draws the proxy's batches by the current α instead
(`mixer.trainers.hooks.WeightedDomainSampler`, loss unweighted). GPT-2 (causal) proxies only.
Resume: each of the two runs is committed whole (run.json last); a killed loop re-trains only the
run that had not finished.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixer.core.errors import MixerError
from mixer.core.kinds import ModelKind
from mixer.loop.runner import RunSpec, TrainSpec, commit, is_finished
from mixer.loop.sweep import corpus_identity, run_folder
from mixer.formats.corpus import load_manifest
from mixer.formats.weights import validate_weights
from mixer.loop.runner import KEEP_FILES, _data_source
from mixer.solver.baselines.doremi import DoReMiWeights, per_token_excess
from mixer.solver.solutions import doremi_online_solution

TRAJECTORY = "doremi.json"


@dataclass(frozen=True)
class DoReMiConfig:
    corpus: Path  # prepared corpus
    out: Path  # weights.json, the plot, and (without `cache`) runs/
    train: TrainSpec = field(default_factory=TrainSpec)  # reference and proxy: same model, preset, seeds
    base_weights: dict[str, float] | None = None  # the reference's mixture and the proxy's start; None: uniform
    eta: float = 1.0  # Group DRO step size (the official default)
    smoothing: float = 1e-3  # c: weights mixed with uniform by c after every step (the official default)
    mode: str = "reweight"  # "reweight": batches at the base weights, loss weighted by α (the official code);
    #                         "resample": batches drawn by the current α (mixer.trainers.hooks), loss unweighted
    cache: Path | None = None
    plots: bool = True
    progress: bool = True

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache is not None else Path(self.out) / "runs"


@dataclass(frozen=True)
class DoReMiLoopResult:
    weights: dict[str, float]  # the average over steps
    weights_path: Path
    budget_tokens: int
    trajectory: np.ndarray  # (steps, m)
    domains: tuple[str, ...]
    reference: Path  # run.json of the reference
    proxy: Path  # run.json of the proxy
    ran: int  # runs trained now (0, 1 or 2)
    plots: tuple[Path, ...] = ()


def _base(cfg: DoReMiConfig, domains: list[str]) -> dict[str, float]:
    if cfg.base_weights is None:
        return {d: 1.0 / len(domains) for d in domains}

    return validate_weights(cfg.base_weights, domains, source="base weights")


def plan_doremi(cfg: DoReMiConfig, budget_tokens: int) -> tuple[RunSpec, RunSpec]:
    """(reference, proxy) specs; the proxy's key covers eta, smoothing, the mode, the reference's
    key and the update's form (a cached proxy of an older form is not reused)."""
    if cfg.train.model != ModelKind.GPT2:
        raise MixerError(f"--model {cfg.train.model}: loop doremi trains causal (gpt2) proxies only")
    if not (np.isfinite(cfg.eta) and cfg.eta > 0):
        raise MixerError(f"--eta {cfg.eta}: the Group DRO step size must be positive (the official default is 1)")
    if cfg.mode not in ("reweight", "resample"):
        raise MixerError(f"--mode {cfg.mode!r}: choose reweight (the official code) or resample")
    if not 0 <= cfg.smoothing <= 1:
        raise MixerError(f"--smoothing {cfg.smoothing}: give a value in [0, 1] (the official default is 1e-3)")
    domains, sha = corpus_identity(cfg.corpus)
    base = _base(cfg, domains)
    ref = RunSpec(corpus=str(cfg.corpus), corpus_sha256=sha, name="doremi-reference", weights=base,
                  budget_tokens=int(budget_tokens), train=cfg.train,
                  provenance={"role": "doremi-reference", "domain": None, "factor": None, "total": None})
    proxy = RunSpec(corpus=str(cfg.corpus), corpus_sha256=sha, name="doremi-proxy", weights=base,
                    budget_tokens=int(budget_tokens), train=cfg.train,
                    provenance={"role": "doremi-proxy", "domain": None, "factor": None, "total": None,
                                "eta": float(cfg.eta), "smoothing": float(cfg.smoothing), "reference": ref.key(),
                                "mode": cfg.mode, "absent": "last score", "loss_weights": "alpha/base"})
    return ref, proxy


class DoReMiHook:
    """The Group DRO step inside the proxy's training (a `mixer.trainers.hooks.StepHook`)."""

    def __init__(self, reference, weights, mode: str = "reweight", base: dict[str, float] | None = None):
        self.reference = reference.eval()
        self.weights = weights  # mixer.solver.baselines.doremi.DoReMiWeights
        self.mode = mode
        self.base = base  # the stream's sampling weights: the reweighted loss divides α by them
        self.trajectory: list[list[float]] = []

    def __call__(self, s):
        import torch

        from mixer.trainers.objectives import causal_token_losses

        device = s.token_loss.device
        self.reference.to(device)
        with torch.no_grad():
            ref = torch.cat([causal_token_losses(self.reference, b)[0] for b in s.batches])
        excess = per_token_excess(s.token_loss.float().cpu().numpy(), ref.float().cpu().numpy(),
                                  s.token_domain.cpu().numpy(), s.counted.cpu().numpy(), len(s.domains))
        w = self.weights.update_excess(excess)
        self.trajectory.append([float(x) for x in w])
        new = dict(zip(s.domains, map(float, w)))
        if self.mode == "resample":
            return new
        from mixer.trainers.hooks import StepUpdate

        if self.base is not None:  # α_d / base_d per token: domain d's share of the loss is α_d
            new = {d: v / self.base[d] if self.base.get(d, 0.0) > 0 else 0.0 for d, v in new.items()}
        return StepUpdate(loss_weights=new)


def _train_reference(spec: RunSpec) -> dict[str, bytes]:
    """runner.execute, keeping the model: the proxy's hook needs it."""
    import torch

    from mixer.trainers.hf_train import train

    torch.set_num_threads(spec.train.threads)
    tmp = Path(tempfile.mkdtemp(prefix="mixer-doremi-ref-"))
    try:
        train(spec.train.train_config(), _data_source(spec), tmp / "run", log=spec.metrics())
        return {n: (tmp / "run" / n).read_bytes() for n in (*KEEP_FILES, "checkpoint.pt") if (tmp / "run" / n).exists()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_reference(folder: Path, spec: RunSpec):
    from mixer.trainers.checkpoint import CHECKPOINT_NAME, read_checkpoint
    from mixer.trainers.models import build_model, vocab_for

    cfg = spec.train.train_config()
    model = build_model(cfg.resolve(), vocab_for(cfg.model, load_manifest(spec.corpus)), spec.train.seed)
    model.load_state_dict(read_checkpoint(folder / CHECKPOINT_NAME).model)
    return model


def _train_proxy(cfg: DoReMiConfig, spec: RunSpec, reference) -> dict[str, bytes]:
    import torch

    from mixer.trainers.hooks import WeightedDomainSampler
    from mixer.trainers.hf_train import train

    torch.set_num_threads(spec.train.threads)
    tc = spec.train.train_config(progress=cfg.progress)
    preset = tc.resolve()
    prov = {**spec.provenance, "run_name": spec.name, "run_key": spec.key()}
    if cfg.mode == "resample":
        source = WeightedDomainSampler(spec.corpus, spec.weights, preset.seq_len, preset.batch_size,
                                       spec.train.data_seed).source(spec.budget_tokens, prov)
    else:  # the reference's stream: the base mixture, exact per-domain counts

        source = _data_source(spec)
    from mixer.trainers.models import vocab_for

    manifest = load_manifest(spec.corpus)
    domains = tuple(manifest.domain_names)  # the order token_domain indexes
    start = float(np.log(vocab_for(spec.train.model, manifest).size))  # the official first scores
    hook = DoReMiHook(reference, DoReMiWeights(domains=domains, eta=cfg.eta, smoothing=cfg.smoothing,
                                               init=spec.weights, initial_score=start), cfg.mode,
                      base=None if cfg.mode == "resample" else dict(spec.weights))
    tmp = Path(tempfile.mkdtemp(prefix="mixer-doremi-proxy-"))
    try:
        train(tc, source, tmp / "run", step_hooks=[hook], log=spec.metrics())
        files = {n: (tmp / "run" / n).read_bytes() for n in ("run.json", "loss_curves.png") if (tmp / "run" / n).exists()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {"domains": list(domains), "mode": cfg.mode, "trajectory": hook.trajectory, "average": hook.weights.average_,
           "eta": cfg.eta, "smoothing": cfg.smoothing, "initial_score": start}
    files[TRAJECTORY] = (json.dumps(doc, sort_keys=True) + "\n").encode()
    return files


def loop_doremi(cfg: DoReMiConfig, budget_tokens: int) -> DoReMiLoopResult:
    """Reference, then proxy with online Group DRO (each cached); weights.json in `cfg.out`."""

    ref, proxy = plan_doremi(cfg, budget_tokens)
    ref_dir, proxy_dir = run_folder(cfg.cache_dir, ref), run_folder(cfg.cache_dir, proxy)
    ran = 0
    if not (is_finished(ref_dir) and (ref_dir / "checkpoint.pt").is_file()):
        commit(_train_reference(ref), ref_dir, ref)
        ran += 1
    if not (is_finished(proxy_dir) and (proxy_dir / TRAJECTORY).is_file()):
        commit(_train_proxy(cfg, proxy, _load_reference(ref_dir, ref)), proxy_dir, proxy)
        ran += 1
    doc: dict[str, Any] = json.loads((proxy_dir / TRAJECTORY).read_text())
    domains = tuple(doc["domains"])
    traj = np.array(doc["trajectory"], float)
    prov = {"loop": "doremi", "reference": str(ref_dir / "run.json"), "proxy": str(proxy_dir / "run.json"),
            "base_weights": ref.weights, "budget_tokens": int(budget_tokens), "train": proxy.to_json()["train"],
            "mode": cfg.mode}
    sol = doremi_online_solution(domains, traj, Path(cfg.out) / "weights.json", eta=cfg.eta, smoothing=cfg.smoothing,
                                 budget_tokens=int(budget_tokens), provenance=prov, plots=cfg.plots)
    return DoReMiLoopResult(weights=sol.weights, weights_path=sol.path, budget_tokens=int(budget_tokens),
                            trajectory=traj, domains=domains, reference=ref_dir / "run.json",
                            proxy=proxy_dir / "run.json", ran=ran, plots=sol.plots)
