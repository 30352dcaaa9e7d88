"""What every solution returns and how it is written: `Solution`, `ScaleOptimum` (AutoScale's
input), the weights.json writer and the plots' paths."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mixer.formats.weights import MixtureWeights, save_weights
from mixer.solver.verdict import Verdict


@dataclass(frozen=True)
class Solution:
    weights: dict[str, float]  # on the simplex, as written
    path: Path  # the weights.json written
    method: str
    budget_tokens: int | None
    intervals: dict[str, tuple[float, float]]  # {} where the method or the data allow none
    provenance: dict[str, Any]
    title: str = ""
    columns: dict[str, list[str]] = field(default_factory=dict)  # extra per-domain columns for a table
    notes: tuple[str, ...] = ()  # warnings and caveats for people (also in the provenance)
    plots: tuple[Path, ...] = ()
    estimator: Any = None  # the fitted model, where there is one (DDO)
    verdict: Verdict | None = None  # None: the method is not judged (baselines)
    recommended: str | None = None  # AutoScale: "autoscale", "direct-transfer" or "uniform" (`verdict.recommend`)
    recommended_weights: dict[str, float] | None = None  # the weights of that choice


@dataclass(frozen=True)
class ScaleOptimum:
    """One scale's DDO optimum, AutoScale's input."""
    source: str  # where it came from (a weights.json, a loop folder), for messages and provenance
    budget_tokens: int
    tokens: dict[str, float]  # optimal tokens per domain at this budget
    replicates: list = field(default_factory=list)  # DDO bootstrap replicate weights, columns in `tokens` order
    intervals: dict = field(default_factory=dict)  # {domain: (lo, hi)} of the DDO weights
    verdict: Verdict | None = None  # the DDO verdict at this scale (None: not judged, e.g. an old file)
    metric: str | None = None  # what the DDO fit (None: not recorded)
    floor: float | None = None  # DDO's weight floor at this scale (None: none); floored domains stay floored
    curves: dict | None = None  # DDO's fitted curves and replicates (`DDO.curves_json`): the loss model at the target


def plot_path(out: Path, name: str) -> Path:
    return Path(out).with_name(f"{Path(out).stem}.{name}.png")


def write_solution(out: Path, weights: Mapping[str, float], method: str, budget: int | None, provenance: dict,
           intervals: Mapping[str, tuple[float, float]], verdict: Verdict | None = None) -> dict[str, float]:
    total = math.fsum(float(w) for w in weights.values())
    normalised = {d: float(w) / total for d, w in weights.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    iv = {d: [float(v[0]), float(v[1])] for d, v in intervals.items() if v[0] == v[0]}
    save_weights(out, MixtureWeights(weights=normalised, method=method, budget_tokens=budget, provenance=provenance,
                                     intervals=iv, verdict=None if verdict is None else verdict.label,
                                     reasons=[] if verdict is None else list(verdict.reasons)))
    return normalised


