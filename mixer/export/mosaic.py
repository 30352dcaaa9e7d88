"""MosaicML streaming: one `Stream(local=…|remote=…, proportion=…)` per domain, as YAML.

The `streams` map is what LLM Foundry's `train_loader.dataset.streams` takes; in plain Python:

    cfg = yaml.safe_load(open("mixture.yaml"))
    streams = [streaming.Stream(**s) for s in cfg["streams"].values()]
    dataset = streaming.StreamingDataset(streams=streams, batch_size=…)

A path with `://` (s3://, gs://, …) is written as the stream's `remote`, any other as its
`local`. Each path holds one domain's MDS dataset (`index.json` + `shard.*.mds`).
"""
from __future__ import annotations

from mixer.export.mixture import ExportMixture, number, quoted, yaml_comment_block

COMMENTS = True


def render(mix: ExportMixture) -> str:
    lines = [yaml_comment_block(mix), "streams:\n"]
    for domain, path, w in zip(mix.domains, mix.paths, mix.weights):
        key = "remote" if "://" in path else "local"
        lines.append(f"  {quoted(domain)}:\n    {key}: {quoted(path)}\n    proportion: {number(w)}\n")
    return "".join(lines)
