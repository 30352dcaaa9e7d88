"""bench.train trains on the project's own data path: shards built from the corpus and read by
MixtureStream (or the corpus read by MixtureSampler), not a toy stream; both trainers report
throughput, MFU inputs and the data-wait share."""
from __future__ import annotations

import pytest
import torch

from bench.train import WEIGHTS, data_source, run_case
from mixer.stream.sampler import MixtureSampler
from mixer.stream.stream import MixtureStream
from mixer.formats.synthetic import random_skewed_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return random_skewed_corpus(tmp_path_factory.mktemp("bench") / "corpus", WEIGHTS, 60, 6)


def test_data_path_is_the_mixture_stream(corpus, tmp_path):
    src = data_source(corpus, tmp_path, "gpt2", 32, 4, 4 * 32 * 5, "shards")
    assert isinstance(src.state, MixtureStream)
    first = next(iter(src.batches))
    direct = MixtureStream(tmp_path / f"shards-gpt2-32-{4 * 32 * 5}", batch_size=4)
    rows = [next(it) for it in [iter(direct)] for _ in range(4)]
    assert torch.equal(first["input_ids"], torch.stack([torch.as_tensor(r["input_ids"]) for r in rows]))
    assert first["input_ids"].is_pinned() == torch.cuda.is_available()
    sampled = data_source(corpus, tmp_path, "gpt2", 32, 4, 4 * 32 * 5, "corpus")
    assert isinstance(sampled.state, MixtureSampler)
    # The sampler yields the sequences the shards hold (same plan, same seed).
    assert torch.equal(next(iter(sampled.batches))["input_ids"], first["input_ids"])


@pytest.mark.parametrize("trainer", ["hf", "stacked"])
def test_run_case_reports_real_stream_and_data_wait(corpus, tmp_path, trainer):
    r = run_case(corpus, tmp_path, "cpu", "gpt2", "tiny", 32, 4, 4, trainer=trainer)
    assert r["data_path"] == "MixtureStream" and r["trainer"] == trainer
    assert 0 <= r["data_wait_share"] < 1 and r["tokens_per_s_steady"] > 0
    assert r["flops_per_token"] > 6 * r["params_non_embedding"]


@pytest.mark.parametrize("trainer", ["hf", "stacked"])
def test_bert_case_counts_the_head_at_the_masked_share(corpus, tmp_path, trainer):
    r = run_case(corpus, tmp_path, "cpu", "bert", "tiny", 32, 4, 4, trainer=trainer, dropout=0.0)
    assert r["data_path"] == "MixtureStream" and r["trainer"] == trainer and r["tokens_per_s_steady"] > 0
    assert 0.05 < r["masked_share"] <= 0.15  # 15 % of the real (unpadded) positions
    assert r["flops_per_token"] < r["flops_per_token_head_all_positions"]


def test_sweep_times_both_sides_and_writes_json(tmp_path):
    import argparse
    import json

    from bench.train import sweep

    out = tmp_path / "proxies.json"
    sweep(argparse.Namespace(sweep=3, budget=8 * 64 * 2, repeats=1, threads=1, device="cpu", out=str(out)))
    res = json.loads(out.read_text())
    assert res["proxies"] == 3 and res["threads"] == 1
    assert res["median_s"]["one_by_one"] > 0 and res["median_s"]["batched"] > 0
    assert res["speedup"] == res["median_s"]["one_by_one"] / res["median_s"]["batched"]
