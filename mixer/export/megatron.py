"""Megatron-LM: the `--data-path` blend, `w1 prefix1 w2 prefix2 …`.

Written as the file `--data-args-path FILE` reads (Megatron splits its text on whitespace and
hands the list to `megatron.core.datasets.utils.get_blend_from_list`), which is also what to
paste after `--data-path`. Each prefix names an indexed dataset (`PREFIX.bin` + `PREFIX.idx`,
e.g. `/data/code_text_document`); `mixer export-shards --format megatron` writes one. The format
has no comments, so the verdict and intervals are printed beside it (on stderr) instead.
"""
from __future__ import annotations

from mixer.core.errors import MixerError
from mixer.export.mixture import ExportMixture, number

COMMENTS = False


def render(mix: ExportMixture) -> str:
    for domain, path in zip(mix.domains, mix.paths):
        if not path or any(c.isspace() for c in path):
            raise MixerError(f"domain {domain!r}: Megatron prefix {path!r} is empty or has whitespace, which "
                             "Megatron's blend cannot hold; give --prefix or --path without spaces")
    return " ".join(f"{number(w)} {p}" for w, p in zip(mix.weights, mix.paths)) + "\n"
