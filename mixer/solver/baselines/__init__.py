"""The baselines the paper compares against, one file each, by name."""
from __future__ import annotations

from mixer.solver.baselines.doremi import DoReMiResult, DoReMiWeights, doremi_weights
from mixer.solver.baselines.mixing_laws import MixingLawsResult, mixing_laws_weights
from mixer.solver.baselines.natural import natural_weights
from mixer.solver.baselines.regmix import RegMixResult, regmix_weights
from mixer.solver.baselines.uniform import uniform_weights

BASELINES = {
    "uniform": uniform_weights,          # (domains) -> {domain: w}
    "natural": natural_weights,          # ({domain: available tokens}) -> {domain: w}
    "doremi": doremi_weights,            # (proxy (steps, m), reference (steps, m)) -> DoReMiResult
    "regmix": regmix_weights,            # (W (runs, m), loss (runs,)) -> RegMixResult
    "mixing-laws": mixing_laws_weights,  # (R (runs, m), losses (runs, n_eval)) -> MixingLawsResult
}

__all__ = ["BASELINES", "DoReMiResult", "DoReMiWeights", "MixingLawsResult", "RegMixResult", "doremi_weights",
           "mixing_laws_weights", "natural_weights", "regmix_weights", "uniform_weights"]
