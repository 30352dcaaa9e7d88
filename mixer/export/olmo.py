"""OLMo-core: a source mixture, `olmo_core.data.source_mixture.SourceMixtureList`, as YAML.

    sources = SourceMixtureList.from_dict(yaml.safe_load(open("mixture.yaml")))
    SourceMixtureDatasetConfig(source_list=sources, requested_tokens=…, global_batch_size=…)

OLMo-core keeps a source list apart from the dataset config so that it can live in a YAML file
of its own, which is what this is. `paths` are each domain's token files (`.npy`, globs
allowed); `max_repetition_ratio: 1.0` forbids repeating a source, as mixer's default does.
"""
from __future__ import annotations

from mixer.export.mixture import ExportMixture, number, quoted, yaml_comment_block

COMMENTS = True


def render(mix: ExportMixture) -> str:
    lines = [yaml_comment_block(mix), "sources:\n"]
    for domain, path, w in zip(mix.domains, mix.paths, mix.weights):
        lines.append(f"  - source_name: {quoted(domain)}\n    target_ratio: {number(w)}\n"
                     f"    paths: [{quoted(path)}]\n    max_repetition_ratio: 1.0\n")
    return "".join(lines)
