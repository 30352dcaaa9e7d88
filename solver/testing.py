"""Synthetic run.json files with known answers, for tests, demos and benchmarks.

`ddo_sweep`: the aggregate loss follows the additive model of §2.2 exactly,
`L / L_base = C + sum_j (n0_j + x_j)^(-b_j)` with x_j = tokens_j / (N/m) and C chosen so the base
run is 1; so with `keep_total=False` (Algorithm 1) each domain's points lie on
`(n0_j + x)^(-b_j) + c_j` and the DDO optimum is `solve_ddo(n0, b, m)`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from mixer.atomic import write_json_atomic
from solver.ddo import plan

CORPUS = "c0ffee" * 10 + "abcd"


def run_json(weights: dict, budget: int, losses: dict, provenance: dict, seed: int = 0,
             corpus: str = CORPUS, history: dict | None = None) -> dict:
    tokens = {d: max(1, int(round(w * budget))) for d, w in weights.items()}
    obj = {"format_version": 1, "corpus_sha256": corpus, "budget_tokens": int(budget), "weights": weights,
           "tokens_per_domain": tokens, "final_loss": losses, "model": "synthetic", "preset": "test", "seed": seed,
           "provenance": provenance, "wall_seconds": 0.0}
    if history is not None:
        obj["loss_history"] = history
    return obj


def ddo_sweep(domains: Sequence[str], n0, b, *, budget: int = 1_000_000, factors=(0.2, 3.0),
              keep_total: bool = False, base_loss: float = 3.0, noise: float = 0.0, seeds=(0,),
              rng_seed: int = 0) -> dict[str, dict]:
    """`{name: run.json object}` for a DDO sweep; `noise` is the relative std of each loss."""
    m = len(domains)
    n0, b = np.asarray(n0, float), np.asarray(b, float)
    rng = np.random.default_rng(rng_seed)
    planned = plan(domains, budget, factors=factors, keep_total=keep_total)
    unit = budget / m

    def y_of(tokens):
        x = np.array([tokens[d] for d in domains]) / unit
        return float(np.sum((n0 + x) ** (-b)))

    base_tokens = {d: max(1, int(round(w * budget))) for d, w in planned[0].weights.items()}
    const = 1.0 - y_of(base_tokens)
    out = {}
    for pr in planned:
        tokens = {d: max(1, int(round(w * pr.budget_tokens))) for d, w in pr.weights.items()}
        y = const + y_of(tokens)
        for s in seeds:
            loss = base_loss * y * (1 + noise * rng.standard_normal()) if noise else base_loss * y
            name = pr.name if len(seeds) == 1 else f"{pr.name}-s{s}"
            out[name] = run_json(pr.weights, pr.budget_tokens, {d: loss for d in domains}, pr.provenance, seed=s)
    return out


def write_runs(folder: str | Path, runs: dict[str, dict]) -> list[Path]:
    folder = Path(folder)
    paths = []
    for name, obj in runs.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        path = folder / name / "run.json"
        write_json_atomic(path, obj)
        paths.append(path)
    return paths


def mixing_law_runs(c, k, T, n_runs: int, *, budget: int = 1_000_000, noise: float = 0.0, seed: int = 0,
                    domains: Sequence[str] | None = None) -> dict[str, dict]:
    """Random-mixture runs whose per-domain losses follow L_i(r) = c_i + k_i exp(T_i . r)."""
    c, k, T = np.asarray(c, float), np.asarray(k, float), np.asarray(T, float)
    m = T.shape[1]
    domains = list(domains or [f"d{i}" for i in range(m)])
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_runs):
        r = rng.dirichlet(np.ones(m))
        tokens = np.maximum(1, np.round(r * budget))
        r = tokens / tokens.sum()
        L = c + k * np.exp(T @ r)
        L = L * (1 + noise * rng.standard_normal(L.shape)) if noise else L
        w = {d: float(x) for d, x in zip(domains, r)}
        out[f"mix{i:03d}"] = run_json(w, budget, {d: float(v) for d, v in zip(domains, L)},
                                      {"role": "random", "domain": None, "factor": None, "total": None})
    return out
