"""litdata: the arguments of `CombinedStreamingDataset(datasets=…, weights=…)`, as YAML.

    cfg = yaml.safe_load(open("mixture.yaml"))
    mixed = litdata.CombinedStreamingDataset(
        datasets=[litdata.StreamingDataset(d["input_dir"]) for d in cfg["datasets"]],
        weights=cfg["weights"], iterate_over_all=cfg["iterate_over_all"], seed=cfg["seed"])

`iterate_over_all: false` is what makes litdata sample by `weights` (with `true` it ignores
them and reads every dataset to its end).
"""
from __future__ import annotations

from mixer.export.mixture import ExportMixture, flow_list, quoted, yaml_comment_block

COMMENTS = True


def render(mix: ExportMixture) -> str:
    datasets = "".join(f"  - input_dir: {quoted(p)}  # {d}\n" for d, p in zip(mix.domains, mix.paths))
    return (yaml_comment_block(mix)
            + f"domains: {flow_list(mix.domains)}\n"
            + f"datasets:\n{datasets}"
            + f"weights: {flow_list(mix.weights)}\n"
            + "iterate_over_all: false\n"
            + "seed: 0\n")
