"""The AutoScale curve as a mixture schedule: the optimal mixture for every point of a run.

AutoScale's fit gives, for every total budget B, the optimal tokens of each domain N_i*(B)
(`mixer.solver.autoscale.predict_floored`: N_i*(t) = N_i(1)* r_i^t with t solved from B). A run
that grows to the target passes through every B on the way; the schedule makes the data it has
read by each stage boundary B_s *be* the optimum for B_s: stage s draws domain i at

    w_{s,i} = (N_i*(B_s) - N_i*(B_{s-1})) / (B_s - B_{s-1}),   B_0 = 0, N*(0) = 0,

the per-domain token increments. So the first stage is the optimum at B_1 and every later stage
adds what the optimum at its end adds. Boundaries are the multiples of `stage_tokens` below the
target, then the target. A domain whose optimum shrinks with B (r_i < 1) cannot give tokens
back: its increment is clipped at 0 and the stage renormalised (`provenance["clipped"]` names
those stages). Budgets below the smallest one the fit reaches (a shrinking domain puts a floor
under them) are merged into the first boundary it reaches.

Intervals: with bootstrap fits (one `FlooredFit` per replicate), each stage's weights are
recomputed per replicate and its 95 % interval is their central 95 %.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mixer.core.errors import MixerError
from mixer.formats.schedule import MixtureSchedule, ScheduleStage, make_schedule
from mixer.solver.autoscale import FlooredFit, predict_floored


def stage_boundaries(target: int, stage_tokens: int) -> list[int]:
    """Multiples of `stage_tokens` below `target`, then `target`."""
    if not isinstance(target, int) or target <= 0:
        raise MixerError(f"--target {target!r}: must be a positive number of tokens")
    if not isinstance(stage_tokens, int) or stage_tokens <= 0:
        raise MixerError(f"--stage-tokens {stage_tokens!r}: must be a positive number of tokens")
    return [*range(stage_tokens, target, stage_tokens), target]


def stage_weights(fit: FlooredFit, bounds: Sequence[int]) -> tuple[list[int], np.ndarray, list[int]]:
    """(boundaries kept, (S, m) stage weights, stages whose increments were clipped) for the
    boundaries the fit reaches; ValueError when it reaches none."""
    kept, tokens = [], []
    for b in bounds:
        try:
            tokens.append(predict_floored(fit, float(b)).x)
            kept.append(int(b))
        except ValueError:
            continue
    if not kept:
        raise ValueError(f"the fit reaches none of the budgets up to {bounds[-1]:,}")
    if kept[-1] != bounds[-1]:
        raise ValueError(f"the fit does not reach the target {bounds[-1]:,}")
    X = np.vstack([np.zeros(len(tokens[0])), np.array(tokens)])
    inc = np.diff(X, axis=0)
    clipped = [s for s in range(len(kept)) if inc[s].min() < 0]
    inc = np.maximum(inc, 0.0)
    W = inc / inc.sum(axis=1, keepdims=True)
    return kept, W, clipped


def schedule_from_fit(fit: FlooredFit, domains: Sequence[str], *, target: int, stage_tokens: int,
                      replicate_fits: Sequence[FlooredFit] = (), provenance: dict[str, Any] | None = None,
                      source: str = "autoscale schedule") -> MixtureSchedule:
    """The schedule that follows `fit`'s optimum from the first stage to `target` (see the
    module docstring); stage intervals from `replicate_fits` where there are 10 or more."""
    from mixer.solver.intervals import quantile_intervals

    try:
        kept, W, clipped = stage_weights(fit, stage_boundaries(target, stage_tokens))
    except ValueError as exc:
        raise MixerError(f"{source}: AutoScale gives no schedule ({exc})") from None
    samples: list[np.ndarray] = []
    for rf in replicate_fits:
        try:
            k, w, _ = stage_weights(rf, kept)
        except ValueError:
            continue
        if k == kept:
            samples.append(w)
    per_stage = [quantile_intervals(list(domains), [s[i] for s in samples]) for i in range(len(kept))]
    stages = [ScheduleStage(until_tokens=b, weights=dict(zip(domains, map(float, w))), intervals=iv)
              for b, w, iv in zip(kept, W, per_stage)]
    prov = {**(provenance or {}), "stage_tokens": int(stage_tokens), "target_tokens": int(target),
            "clipped": clipped, "interval_replicates": len(samples),
            # boundaries below the smallest budget the fit reaches, merged into the first stage
            "merged_below": [b for b in stage_boundaries(target, stage_tokens) if b < kept[0]]}
    return make_schedule(stages, method="autoscale", provenance=prov, source=source)
