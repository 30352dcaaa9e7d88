"""MixtureSampler: the same stream as the shards `build-shards` writes, sequence by sequence,
with the same rank / worker split and resumption (also across the two classes)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mixer import MixtureSampler, MixtureStream
from mixer.core.errors import MixerError
from mixer.shards.plan import PlanConfig, build_plan
from mixer.shards.write import ShardConfig, write_shards
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

B = 4
SEQ_LEN = 48
SEED = 7
WEIGHTS = {"books": 0.25, "code": 0.35, "wiki": 0.4}
TOKENS = 130 * SEQ_LEN + 5  # rounded down to 130 sequences
STATEFUL_WARNING = "ignore:'set_vital' is deprecated:UserWarning"  # torchdata 0.11 on torch 2.13


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sampler") / "corpus"
    write_synthetic_corpus(path, {"books": lognormal_lengths(120, 90, 1.2, 1), "code": lognormal_lengths(200, 60, 1.0, 2),
                                  "wiki": lognormal_lengths(260, 50, 0.8, 3)}, vocab_size=70000, seed=9)
    return path


def build(corpus: Path, out: Path, objective: str = "causal", tokens: int = TOKENS) -> Path:
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=tokens, seq_len=SEQ_LEN, seed=SEED, objective=objective))
    write_shards(plan, corpus, out, ShardConfig(shard_tokens=37 * SEQ_LEN, workers=2))
    return out


@pytest.fixture(scope="module")
def shards(corpus: Path) -> Path:
    return build(corpus, corpus.parent / "shards")


def sampler(corpus: Path, **kw) -> MixtureSampler:
    return MixtureSampler(corpus, WEIGHTS, TOKENS, SEQ_LEN, SEED, **kw)


def stack(items, key="input_ids") -> np.ndarray:
    return np.concatenate([x[key].reshape(-1, SEQ_LEN).numpy() for x in items])


@pytest.mark.parametrize("objective", ["causal", "mlm"])
def test_sampler_equals_shards_sequence_by_sequence(corpus, shards, tmp_path, objective):
    if objective == "mlm":
        shards = build(corpus, tmp_path / "mlm", objective="mlm", tokens=90 * SEQ_LEN)
        ours = MixtureSampler(corpus, WEIGHTS, 90 * SEQ_LEN, SEQ_LEN, SEED, objective="mlm")
    else:
        ours = sampler(corpus)
    theirs = MixtureStream(shards)
    assert ours.state_dict()["fingerprint"] == theirs.state_dict()["fingerprint"]
    assert len(ours) == len(theirs) and ours.budget_tokens == theirs.budget_tokens
    n = 0
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == torch.int64 and torch.equal(a[key], b[key]), (n, key)
        n += 1
    assert n == len(theirs)
    # uint32 corpus tokens (vocab > 2**16) come through unchanged
    assert stack(list(sampler(corpus))).max() >= 1 << 16 if objective == "causal" else True


def test_sampler_split_matches_stream(corpus, shards):
    for world_size in (2, 3):
        parts = []
        for rank in range(world_size):
            kw = dict(rank=rank, world_size=world_size, batch_size=B, drop_remainder=False)
            ours = stack(DataLoader(sampler(corpus, **kw), batch_size=B, num_workers=2))
            theirs = stack(DataLoader(MixtureStream(shards, **kw), batch_size=B, num_workers=0))
            assert np.array_equal(ours, theirs)
            parts.append(ours)
        assert np.array_equal(np.concatenate(parts), stack(list(MixtureStream(shards))))


def test_sampler_resume_main_process_and_across_classes(corpus, shards):
    whole = stack(DataLoader(sampler(corpus), batch_size=B))
    k = 6
    first = sampler(corpus)
    it = iter(DataLoader(first, batch_size=B))
    head = stack([next(it) for _ in range(k)])
    state = pickle.loads(pickle.dumps(first.state_dict()))
    again = sampler(corpus)
    again.load_state_dict(state)
    assert np.array_equal(np.concatenate([head, stack(DataLoader(again, batch_size=B))]), whole)
    # a position saved by the sampler resumes the shards at the same sequence, and back
    stream = MixtureStream(shards)
    stream.load_state_dict(state)
    assert np.array_equal(np.concatenate([head, stack(DataLoader(stream, batch_size=B))]), whole)


@pytest.mark.filterwarnings(STATEFUL_WARNING)
def test_sampler_resume_stateful_dataloader_two_workers(corpus):
    from torchdata.stateful_dataloader import StatefulDataLoader

    def loader():
        return StatefulDataLoader(sampler(corpus, rank=0, world_size=2, batch_size=B), batch_size=B, num_workers=2)

    whole = stack(loader())
    first = loader()
    it = iter(first)
    head = stack([next(it) for _ in range(3)])
    state = pickle.loads(pickle.dumps(first.state_dict()))
    del it
    second = loader()
    second.load_state_dict(state)
    assert np.array_equal(np.concatenate([head, stack(second)]), whole)


def test_sampler_resume_plain_dataloader_with_consumed_count(corpus):
    whole = stack(DataLoader(sampler(corpus, batch_size=B), batch_size=B, num_workers=2))
    it = iter(DataLoader(sampler(corpus, batch_size=B), batch_size=B, num_workers=2))
    head = stack([next(it) for _ in range(5)])
    del it
    again = sampler(corpus, batch_size=B)
    again.load_state_dict({"consumed": 5 * B})
    assert np.array_equal(np.concatenate([head, stack(DataLoader(again, batch_size=B, num_workers=2))]), whole)


def test_sampler_bad_input_is_a_mixer_error(corpus):
    with pytest.raises(MixerError, match="unknown|not in"):
        MixtureSampler(corpus, {"nope": 1.0}, TOKENS, SEQ_LEN, SEED)
    with pytest.raises(MixerError, match="domain 'books'"):
        MixtureSampler(corpus, {"books": 1.0, "code": 0.0, "wiki": 0.0}, 10**6, SEQ_LEN, SEED)
