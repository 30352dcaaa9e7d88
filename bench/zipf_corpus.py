"""The seven-domain corpus of Zipf token ids that `bench.sampler` and `bench.build` measure on:
lognormal document lengths per domain, written once under a stamp of its parameters."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from bench.common import zipf_map

WEIGHTS = {"arxiv": 0.08, "books": 0.12, "code": 0.15, "forum": 0.10, "news": 0.20, "web": 0.30, "wiki": 0.05}
MEAN_LEN = {"arxiv": 500, "books": 400, "code": 350, "forum": 180, "news": 250, "web": 220, "wiki": 300}
SIGMA = 1.0
VOCAB = 50257


def make_corpus(path: Path, budget: int) -> None:
    from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

    stamp = path / "bench-params.json"
    params = {"budget": budget, "weights": WEIGHTS, "mean_len": MEAN_LEN, "sigma": SIGMA, "tokens": "zipf-1.1",
              "version": 2}
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return
    shutil.rmtree(path, ignore_errors=True)
    lengths = {}
    for i, (name, w) in enumerate(sorted(WEIGHTS.items())):
        want = int(1.25 * w * budget)
        n = int(want / MEAN_LEN[name] * 1.05) + 100
        lens = lognormal_lengths(n, MEAN_LEN[name], SIGMA, seed=100 + i)
        lengths[name] = lens[: int(np.searchsorted(np.cumsum(lens), want)) + 1]
    write_synthetic_corpus(path, lengths, vocab_size=VOCAB, seed=1, token_map=zipf_map(VOCAB))
    stamp.write_text(json.dumps(params))
