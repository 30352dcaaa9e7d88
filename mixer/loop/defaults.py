"""The defaults every user-facing entry point shares: `mixer demo`, `mixer loop` and `mixer solve`
give the same weights from the same runs because they start from these (the library's own
estimators keep neutral defaults, e.g. no floor, so that tests can state them explicitly).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defaults:
    metric: str = "perplexity"  # the paper's loss metric ("perplexity is adopted as the loss metric")
    floor_uniform: float = 0.2  # weight floor as a fraction of 1/m (the authors' 0.2; AutoScale needs > 0)
    # Perturbations of each domain's weight, with grown totals (Algorithm 1: the other domains keep
    # their tokens): 4 distinct points per domain, so the 3-parameter fits have residuals to check,
    # on any number of domains (a factor x 1/m is never >= 1 with grown totals). The calibration
    # benchmark (bench.calibration) shows this design unbiased without noise; fixed totals are not.
    factors: tuple[float, ...] = (1 / 3, 2.0, 4.0)
    keep_total: bool = False
    units: str = "authors"  # fit x = tokens / (N/m), y = metric / base run's
    n_bootstrap: int = 200  # bootstrap replicates for the intervals
    eval_seqs: int = 64  # held-out sequences per domain for every proxy's final loss
    seeds: int = 1  # repeats of every run with other model and data seeds (the demo uses 2)
    validate: int = 0  # extra held-out mixtures trained to check the fit's predictions


DEFAULTS = Defaults()
