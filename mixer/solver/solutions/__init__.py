"""Measured runs -> weights.json, intervals and plots: the one path that `mixer solve` and
`mixer loop` share, so the same runs give the same file whichever command solved them.

Each `*_solution` function fits its method, writes `out` (weights normalised onto the simplex,
provenance with the fit, the intervals and how they were obtained) and the PNG plots beside it
(`<out stem>.<plot>.png`), and returns a `Solution` the caller prints or builds on. A fit that
cannot be made is one `MixerError` naming `out` (or the run at fault) and the fix.
"""
from mixer.solver.solutions.autoscale import autoscale_curve, autoscale_solution
from mixer.solver.solutions.baselines import (doremi_online_solution, doremi_solution, mixing_laws_solution,
                                              nested_mixing_laws_solution, regmix_corpus_bounds,
                                              regmix_solution)
from mixer.solver.solutions.ddo import ddo_solution, gain_lines
from mixer.solver.solutions.written import ScaleOptimum, Solution, plot_path

__all__ = ["Solution", "ScaleOptimum", "plot_path", "ddo_solution", "gain_lines", "autoscale_solution",
           "autoscale_curve", "regmix_solution", "regmix_corpus_bounds", "mixing_laws_solution", "nested_mixing_laws_solution",
           "doremi_solution", "doremi_online_solution"]
