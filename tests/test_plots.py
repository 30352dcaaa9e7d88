"""The solver's figures say what they show: axes in words with units, a legend that names every
mark (the optimum line included), the budget in the title, and measured optima apart from the
extrapolation. Checked on the matplotlib figures themselves, drawn from synthetic sweeps."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from mixer.solver.ddo_model import DDO
from mixer.solver.runs import group_ddo, read_runs
from mixer.solver.solutions import ScaleOptimum, autoscale_solution, ddo_solution
from support import ddo_sweep, write_runs

DOMAINS = ("code", "news", "web")
N0, B = np.array([0.5, 1.0, 2.0]), np.array([0.8, 0.5, 0.3])


@pytest.fixture
def figures(monkeypatch):
    """Every figure the plots close, kept open long enough to be read."""
    figs = []
    real = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figs.append(fig), real(fig)))
    return figs


def _legend(fig):
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def _solve(tmp_path, budget, seed=0):
    paths = write_runs(tmp_path / f"runs{budget}", ddo_sweep(DOMAINS, N0, B, budget=budget, factors=(0.2, 3.0),
                                                            noise=1e-4, seeds=(0, 1), rng_seed=seed))
    return ddo_solution(group_ddo(read_runs(paths), metric="loss"), tmp_path / f"ddo{budget}" / "weights.json",
                        estimator=DDO(form="shifted", units="authors", n_bootstrap=0, floor=0.05))


def test_fits_and_predicted_vs_measured_read_in_words(tmp_path, figures):
    sol = _solve(tmp_path, 3_000_000)
    fits, pvm = figures
    assert fits._suptitle.get_text().startswith("DDO power-law fits, 3,000,000 tokens per proxy run")
    assert set(_legend(fits)) == {"fitted power law", "measured proxy runs (every seed)",
                                  "optimum: the domain's tokens in the solved mixture"}
    for ax, d in zip(fits.axes, DOMAINS):
        assert ax.get_xlabel() == "training tokens of this domain (millions)"
        assert ax.get_ylabel() == "held-out loss (nats/token) relative to the base mixture"
        assert ax.get_title() == f"{d}: optimal weight {sol.weights[d]:.3f}"
        # the optimum line sits at the domain's optimal tokens, in millions
        (opt,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert opt.get_xdata()[0] == pytest.approx(sol.weights[d] * 3.0, rel=1e-6)
    ax = pvm.axes[0]
    assert ax.get_xlabel().startswith("measured held-out loss") and "3,000,000 tokens" in ax.get_title()
    assert "predicted = measured" in _legend(pvm)


def test_weights_vs_scale_marks_measured_optima_and_shades_the_extrapolation(tmp_path, figures):
    optima = []
    for i, budget in enumerate((1_000_000, 3_000_000)):
        s = _solve(tmp_path, budget, seed=i)
        optima.append(ScaleOptimum(source=str(s.path), budget_tokens=budget, tokens={d: w * budget for d, w in
                                                                                    s.weights.items()}))
    figures.clear()
    autoscale_solution(optima, 30_000_000, tmp_path / "auto.json")
    (fig,) = figures
    ax = fig.axes[0]
    labels = _legend(fig)
    assert {"measured DDO optima", "extrapolated (AutoScale)", "DDO scales (measured)",
            "target 30,000,000 tokens"} <= set(labels) and set(DOMAINS) <= set(labels)
    assert "30,000,000 tokens" in ax.get_title() and ax.get_xlabel() == "training budget (tokens, log scale)"
    dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert sorted({x for ln in dots for x in ln.get_xdata()}) == [1_000_000, 3_000_000]
    shaded = [p for p in ax.patches if p.get_hatch() == "//"]
    assert len(shaded) == 1 and shaded[0].get_x() == pytest.approx(3_000_000)  # from the largest measured scale up
