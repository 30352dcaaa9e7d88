"""torchtitan: a job-config TOML whose `[mixture]` table extends torchtitan's `JobConfig`.

torchtitan has no mixture option of its own; its `ConfigManager` merges the `JobConfig`
dataclass of the module named by `[job] custom_config_module` into its own. This module is that
module: with `--job.config_file mixture.toml` (or the tables copied into a run's TOML) the job
config carries `job_config.mixture.domains / paths / weights / seed`, which a dataset builder
registered with torchtitan (e.g. one calling `datasets.interleave_datasets(..., probabilities=
weights, seed=seed)`) reads. Importing this module imports nothing but `dataclasses`.

No `from __future__ import annotations` here: torchtitan rebuilds these dataclasses in its own
module (`make_dataclass`), where a field type written as the string "Mixture" cannot be resolved.
"""
from dataclasses import dataclass, field

from mixer.export.mixture import ExportMixture, flow_list, yaml_comment_block

COMMENTS = True


@dataclass(frozen=True)
class Mixture:
    """The `[mixture]` table: `weights[i]` is the share of `domains[i]`, read from `paths[i]`."""

    domains: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    seed: int = 0


@dataclass(frozen=True)
class JobConfig:
    """What torchtitan merges into its own `JobConfig` (`[job] custom_config_module`)."""

    mixture: Mixture = field(default_factory=Mixture)


def render(mix: ExportMixture) -> str:
    return (yaml_comment_block(mix)
            + "\n[job]\n"
            + f'custom_config_module = "{__name__}"\n'
            + "\n[mixture]\n"
            + f"domains = {flow_list(mix.domains)}\n"
            + f"paths = {flow_list(mix.paths)}\n"
            + f"weights = {flow_list(mix.weights)}\n"
            + "seed = 0\n")
