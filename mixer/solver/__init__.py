"""solver: measured losses in, mixture weights out (DDO, AutoScale, baselines).

Pure numerics; no training. See docs/solver.md.
"""
from mixer.solver.autoscale import AutoScale, AutoScaleFit, AutoScaleResult, fit_autoscale, predict, weights_curve
from mixer.solver.ddo import DDOResult, PlannedRun, plan, solve_ddo, solve_ddo_pgd
from mixer.solver.ddo_model import DDO
from mixer.solver.powerlaw import PowerLawFit, fit_power_law

__all__ = ["AutoScale", "AutoScaleFit", "AutoScaleResult", "DDO", "DDOResult", "PlannedRun", "PowerLawFit",
           "fit_autoscale", "fit_power_law", "plan", "predict", "solve_ddo", "solve_ddo_pgd", "weights_curve"]
