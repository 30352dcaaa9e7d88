"""DDO optima at two or more scales -> `schedule.json`: AutoScale's optimal mixture for every
point of a run up to the target (`mixer.solver.schedule`), with per-stage intervals from the same
bootstrap draws as `weights.json`'s, and its plot (stacked areas over tokens)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixer.core.errors import MixerError
from mixer.formats.schedule import MixtureSchedule, save_schedule
from mixer.solver.solutions.autoscale import _checked_optima, _columns
from mixer.solver.solutions.written import ScaleOptimum, plot_path

MAX_DEFAULT_STAGES = 64


@dataclass(frozen=True)
class ScheduleSolution:
    schedule: MixtureSchedule
    path: Path
    plots: tuple[Path, ...] = ()


def default_stage_tokens(budgets: Sequence[int], target: int) -> int:
    """Stages as long as the smallest measured scale, but at most `MAX_DEFAULT_STAGES` of them."""
    return max(int(min(budgets)), -(-int(target) // MAX_DEFAULT_STAGES))


def autoscale_schedule(optima: Sequence[ScaleOptimum], target: int, out: str | Path, *,
                       stage_tokens: int | None = None, seed: int = 0, plots: bool = False,
                       provenance: dict[str, Any] | None = None) -> ScheduleSolution:
    """Fit AutoScale on `optima` as `autoscale_solution` does and write the schedule to `out`."""
    from mixer.solver.autoscale import fit_floored
    from mixer.solver.intervals import autoscale_replicate_fits
    from mixer.solver.schedule import schedule_from_fit

    out = Path(out)
    optima, domains, floor = _checked_optima(optima, int(target))
    budgets = [o.budget_tokens for o in optima]
    step = default_stage_tokens(budgets, int(target)) if stage_tokens is None else int(stage_tokens)
    N = np.array([[o.tokens[d] for d in domains] for o in optima])
    try:
        ff = fit_floored(N, floor)
    except ValueError as exc:
        raise MixerError(f"{out}: AutoScale failed ({exc})") from None
    reps = autoscale_replicate_fits([_columns(o, domains) for o in optima], budgets, floor=floor, seed=seed)
    prov = {**(provenance or {}), "budgets": budgets, "floor": floor}
    schedule = schedule_from_fit(ff, domains, target=int(target), stage_tokens=step, replicate_fits=reps,
                                 provenance=prov, source=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_schedule(out, schedule)
    drawn: tuple[Path, ...] = ()
    if plots:
        from mixer.solver.plots import plot_schedule

        W = np.array([[s.weights[d] for d in domains] for s in schedule.stages])
        drawn = (plot_schedule([s.until_tokens for s in schedule.stages], W, domains, plot_path(out, "stages"),
                               marks=budgets, title=f"AutoScale schedule: {len(schedule.stages)} stages "
                                                    f"up to {int(target):,} tokens"),)
    return ScheduleSolution(schedule=schedule, path=out, plots=drawn)
