"""Hugging Face `datasets`: the arguments of `interleave_datasets`, as YAML.

    cfg = yaml.safe_load(open("mixture.yaml"))
    mixed = datasets.interleave_datasets([datasets.load_from_disk(p) for p in cfg["paths"]],
                                         probabilities=cfg["probabilities"], seed=cfg["seed"],
                                         stopping_strategy=cfg["stopping_strategy"])

`probabilities[i]` is the weight of `domains[i]` (data at `paths[i]`). `first_exhausted`, the
library's default, stops when a domain runs out, so nothing is repeated; `all_exhausted` repeats
the smaller domains until every one is used up.
"""
from __future__ import annotations

from mixer.export.mixture import ExportMixture, flow_list, yaml_comment_block

COMMENTS = True


def render(mix: ExportMixture) -> str:
    return (yaml_comment_block(mix)
            + "# datasets.interleave_datasets([datasets.load_from_disk(p) for p in paths],\n"
            + "#     probabilities=probabilities, seed=seed, stopping_strategy=stopping_strategy)\n"
            + f"domains: {flow_list(mix.domains)}\n"
            + f"paths: {flow_list(mix.paths)}\n"
            + f"probabilities: {flow_list(mix.weights)}\n"
            + "seed: 0\n"
            + 'stopping_strategy: "first_exhausted"\n')
