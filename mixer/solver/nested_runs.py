"""run.json files at several model sizes and mixtures -> the losses the Data Mixing Laws fit,
predicted at a target step count and model size (`mixer.solver.baselines.nested_laws`).

Each run contributes its held-out loss curve (`curve.eval`: steps and per-domain losses, written
when the trainer ran with `eval_every`), its model size (`provenance.params_non_embedding`) and
its mixture (the run's weights). Runs are grouped by mixture (weights rounded to 1e-9) and size;
every mixture needs one run at every size, and every curve 3 or more evaluations.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from mixer.core.errors import MixerError


def nested_table(paths: Sequence[str | Path], target_steps: float, target_size: float | None = None,
                 delta: float | None = None) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, list[float]]:
    """-> (domains, R (mixtures x domains), predicted L (mixtures x domains) at the target, sizes)."""
    from mixer.formats.run import load_run
    from mixer.solver.baselines.nested_laws import predict_target_losses

    groups: dict[tuple, dict[float, tuple[str, dict]]] = {}
    domains: tuple[str, ...] | None = None
    for p in paths:
        rec = load_run(p)
        size = rec.provenance.get("params_non_embedding")
        if not isinstance(size, (int, float)) or size <= 0:
            raise MixerError(f"{p}: provenance.params_non_embedding is {size!r}; the size law needs each run's "
                             "model size (runs written by the trainers record it)")
        ev = rec.curve.get("eval", {}) if isinstance(rec.curve, dict) else {}
        if len(ev.get("step", [])) < 3:
            raise MixerError(f"{p}: {len(ev.get('step', []))} held-out evaluations; the step law needs 3 or more "
                             "(train with --eval-every)")
        doms = tuple(sorted(rec.final_loss))
        if domains is None:
            domains = doms
        elif doms != domains:
            raise MixerError(f"{p}: its domains {list(doms)} differ from the other runs' {list(domains)}")
        key = tuple(round(float(rec.weights[d]), 9) for d in domains)
        if float(size) in groups.setdefault(key, {}):
            raise MixerError(f"{p}: a second run of the same mixture and model size; give one per (mixture, size)")
        groups[key][float(size)] = (str(p), ev)
    if domains is None:
        raise MixerError("no run.json given; the nested laws need runs at several mixtures")
    sizes = sorted({s for g in groups.values() for s in g})
    for key, g in groups.items():
        if sorted(g) != sizes:
            raise MixerError(f"{next(iter(g.values()))[0]}: its mixture has runs at {len(g)} of the {len(sizes)} model "
                             "sizes; give every mixture a run at every size")
    mixtures = sorted(groups)
    R = np.array(mixtures, float)
    L = np.empty((len(mixtures), len(domains)))
    for j, d in enumerate(domains):
        curves = [[(groups[m][s][1]["step"], groups[m][s][1]["loss"][d]) for m in mixtures] for s in sizes]
        try:
            L[:, j] = predict_target_losses(curves, sizes, target_steps, target_size, delta=delta)
        except ValueError as exc:
            raise MixerError(f"nested laws, domain {d!r}: {exc}") from None
    return domains, R / R.sum(axis=1, keepdims=True), L, sizes
