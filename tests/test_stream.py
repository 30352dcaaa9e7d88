"""MixtureStream over real shards: rank x worker coverage and order, resumption (plain
DataLoader, StatefulDataLoader), read-ahead, corrupt and truncated shards, masked LM."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mixer import MixtureStream
from mixer.core.errors import MixerError, MixerNote
from mixer.shards.plan import PlanConfig, build_plan
from mixer.formats.shards import read_shard, read_shard_domains
from mixer.shards.write import ShardConfig, write_shards
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

B = 4  # the DataLoader batch size of every test
WEIGHTS = {"code": 0.2, "news": 0.5, "web": 0.3}
SEQ_LEN = 32


def make_corpus(path: Path) -> Path:
    write_synthetic_corpus(path, {"code": lognormal_lengths(150, 40, 1.0, 1), "news": lognormal_lengths(300, 50, 1.0, 2),
                                  "web": lognormal_lengths(250, 40, 1.0, 3)}, vocab_size=2000, seed=5)
    return path


def make_shards(corpus: Path, out: Path, tokens: int = 150 * SEQ_LEN + 7, objective: str = "causal",
                per_shard: int = 40) -> Path:
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=tokens, seq_len=SEQ_LEN, seed=11, objective=objective))
    write_shards(plan, corpus, out, ShardConfig(shard_tokens=per_shard * SEQ_LEN, workers=1))
    return out


def shard_rows(shards: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(shards.glob("shard-?????.zst"))
    return (np.concatenate([read_shard(f) for f in files]).astype(np.int64),
            np.concatenate([read_shard_domains(f) for f in files]).astype(np.int64))


def rows(batches) -> np.ndarray:
    out = [b["input_ids"].numpy() for b in batches]
    return np.concatenate(out) if out else np.zeros((0, SEQ_LEN), np.int64)


STATEFUL_WARNING = "ignore:'set_vital' is deprecated:UserWarning"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("stream") / "corpus")


@pytest.fixture(scope="module")
def shards(corpus: Path) -> Path:
    return make_shards(corpus, corpus.parent / "shards")


@pytest.fixture(scope="module")
def reference(shards: Path) -> tuple[np.ndarray, np.ndarray]:
    return shard_rows(shards)


def test_items_are_int64_sequences_with_domains(shards, reference):
    stream = MixtureStream(shards, rank=0, world_size=1)
    items = list(stream)
    ids, doms = reference
    assert len(items) == len(stream) == len(ids) == 150
    assert set(items[0]) == {"input_ids", "domain_ids"}
    assert items[0]["input_ids"].dtype == torch.int64 and items[0]["input_ids"].shape == (SEQ_LEN,)
    assert np.array_equal(np.stack([x["input_ids"].numpy() for x in items]), ids)
    assert np.array_equal(np.stack([x["domain_ids"].numpy() for x in items]), doms)
    # domain ids index the sorted domain names, in the mixture's proportions
    share = np.bincount(doms.ravel(), minlength=3) / doms.size
    assert np.allclose(share, [WEIGHTS[d] for d in sorted(WEIGHTS)], atol=0.01)
    assert stream.domains == tuple(sorted(WEIGHTS)) and stream.budget_tokens == 150 * SEQ_LEN


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_and_workers_cover_every_sequence_once_in_order(shards, reference, world_size):
    ids = reference[0]
    per_rank = []
    for rank in range(world_size):
        seen = {}
        for workers in (0, 1, 2):
            stream = MixtureStream(shards, rank=rank, world_size=world_size, batch_size=B)
            seen[workers] = rows(DataLoader(stream, batch_size=B, num_workers=workers))
        # the batches do not depend on the number of workers
        assert np.array_equal(seen[0], seen[1]) and np.array_equal(seen[0], seen[2])
        assert len(seen[0]) == len(stream)
        per_rank.append(seen[0])
    # disjoint and complete: the ranks' contiguous ranges put back together are the stream
    assert np.array_equal(np.concatenate(per_rank), ids)
    assert max(map(len, per_rank)) - min(map(len, per_rank)) <= 1


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_mode_gives_the_same_batches(shards, workers):
    def batches(**kw):
        stream = MixtureStream(shards, rank=1, world_size=2, batch_size=B, **kw)
        if kw.get("batched"):
            return list(DataLoader(stream, batch_size=None, num_workers=workers))
        return list(DataLoader(stream, batch_size=B, num_workers=workers))

    plain, fast = batches(), batches(batched=True)
    assert len(plain) == len(fast) == len(MixtureStream(shards, rank=1, world_size=2, batch_size=B, batched=True))
    for a, b in zip(plain, fast):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.filterwarnings(STATEFUL_WARNING)
@pytest.mark.parametrize("workers", [0, 2])
def test_loader_takes_the_batch_size_from_the_stream(shards, workers):
    """`stream.loader()` gives what `DataLoader(stream, batch_size=B)` gives, plain or batched,
    and `stateful=True` resumes exactly."""
    want = list(DataLoader(MixtureStream(shards, rank=1, world_size=2, batch_size=B), batch_size=B,
                           num_workers=workers))
    for kw in ({}, {"batched": True}):
        got = list(MixtureStream(shards, rank=1, world_size=2, batch_size=B, **kw).loader(num_workers=workers))
        assert len(got) == len(want)
        assert all(a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) for a, b in zip(got, want))
    loader = MixtureStream(shards, rank=1, world_size=2, batch_size=B).loader(workers, stateful=True)
    it = iter(loader)
    head = [next(it) for _ in range(3)]
    state = loader.state_dict()
    del it
    again = MixtureStream(shards, rank=1, world_size=2, batch_size=B).loader(workers, stateful=True)
    again.load_state_dict(state)
    rest = list(again)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(head + rest, want))
    assert len(head + rest) == len(want)


def test_batched_blocks_straddling_shards_resume(shards, reference):
    # batch_size 7 does not divide the 40-sequence shards: some batches join two shards
    whole = rows(DataLoader(MixtureStream(shards, batch_size=7, batched=True), batch_size=None))
    assert np.array_equal(whole, reference[0])
    stream = MixtureStream(shards, batch_size=7, batched=True)
    it = iter(stream)
    head = rows([next(it) for _ in range(6)])
    resumed = MixtureStream(shards, batch_size=7, batched=True)
    resumed.load_state_dict(stream.state_dict())
    assert np.array_equal(np.concatenate([head, rows(resumed)]), whole)


def test_ranks_get_equal_counts_by_default_and_the_remainder_is_said(shards, reference):
    """An uneven last step hangs DDP: by default every rank gets 150 // 4 = 37 sequences, the 2
    left out are said once (rank 0) and counted; drop_remainder=False keeps them."""
    with pytest.warns(MixerNote) as notes:
        streams = [MixtureStream(shards, rank=r, world_size=4) for r in range(4)]
    said = ("stream: 150 sequences over 4 ranks: 37 each, the last 2 left out so that every rank takes the same "
            "number of steps (drop_remainder=False keeps them)")
    assert [str(n.message) for n in notes] == [said]
    assert [len(s) for s in streams] == [37] * 4 and streams[0].dropped == 2
    assert np.array_equal(np.concatenate([rows(DataLoader(s, batch_size=B)) for s in streams]), reference[0][:148])
    kept = [MixtureStream(shards, rank=r, world_size=4, drop_remainder=False) for r in range(4)]
    assert [len(s) for s in kept] == [37, 38, 37, 38] and kept[0].dropped == 0


@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("old_world,new_world,steps", [(2, 3, 5), (3, 2, 4), (4, 1, 3), (1, 4, 7)])
def test_resume_on_another_world_size_loses_and_repeats_nothing(shards, reference, old_world, new_world, steps, drop):
    """Elastic resumption: each of the old ranks consumed `steps` batches; the new ranks read the
    rest of the pass, in stream order; then a second resize; the union is the whole stream once
    (less the stated remainder), and the next pass is whole again."""
    import warnings

    warnings.simplefilter("ignore", MixerNote)
    ids = reference[0]
    head = []
    for r in range(old_world):
        stream = MixtureStream(shards, rank=r, world_size=old_world, batch_size=B, drop_remainder=drop)
        it = iter(DataLoader(stream, batch_size=B))
        head.append(rows([next(it) for _ in range(steps)]))
    state = pickle.loads(pickle.dumps(stream.state_dict()))  # any rank's: all consumed steps * B
    middle, tail = [], []
    for r in range(new_world):
        resumed = MixtureStream(shards, rank=r, world_size=new_world, batch_size=B, drop_remainder=drop)
        resumed.load_state_dict(state)
        share = len(resumed)
        it = iter(DataLoader(resumed, batch_size=B))
        middle.append(rows([next(it) for _ in range(2)]))
        again = pickle.loads(pickle.dumps(resumed.state_dict()))
        tail.append(rows(DataLoader(resumed, batch_size=B)))
        assert share == len(middle[-1]) + len(tail[-1])
        assert np.array_equal(rows(DataLoader(resumed, batch_size=B)),  # the next pass: the usual share
                              rows(DataLoader(MixtureStream(shards, rank=r, world_size=new_world, batch_size=B,
                                                            drop_remainder=drop), batch_size=B)))
    # the new ranks split the remaining sequences in stream order: concatenated, they are sorted
    rest = np.concatenate([np.concatenate([m, t]) for m, t in zip(middle, tail)])
    index = {row.tobytes(): i for i, row in enumerate(ids)}
    assert len(index) == len(ids)  # rows are unique, so a row names its sequence
    position = np.array([index[row.tobytes()] for row in rest])
    assert np.all(np.diff(position) > 0)
    seen = np.concatenate([np.concatenate(head), rest])
    taken = sorted(index[row.tobytes()] for row in seen)
    assert len(taken) == len(set(taken))  # nothing read twice
    remaining = len(ids) - old_world * steps * B
    assert len(taken) == old_world * steps * B + (remaining // new_world * new_world if drop else remaining)
    if not drop:
        assert taken == list(range(len(ids)))  # nothing lost
    # resizing again from a resized state (back to the old world size) continues the same pass
    moved = MixtureStream(shards, rank=0, world_size=old_world, batch_size=B, drop_remainder=drop)
    moved.load_state_dict(again)
    later = {index[row.tobytes()] for row in rows(DataLoader(moved, batch_size=B))}
    before = {index[row.tobytes()] for row in np.concatenate([*head, *middle])}
    assert later and not later & before


def test_rank_from_environment(shards, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    stream = MixtureStream(shards)
    assert (stream.rank, stream.world_size, stream.first, stream.stop) == (1, 3, 50, 100)
    with pytest.raises(MixerError, match="rank 3"):
        MixtureStream(shards, rank=3, world_size=3)


@pytest.mark.parametrize("world_size,rank", [(1, 0), (2, 1)])
def test_resume_main_process(shards, reference, world_size, rank):
    whole = rows(DataLoader(MixtureStream(shards, rank=rank, world_size=world_size), batch_size=B))
    for k in (0, 3, 7):
        stream = MixtureStream(shards, rank=rank, world_size=world_size)
        it = iter(DataLoader(stream, batch_size=B))
        head = rows([next(it) for _ in range(k)])
        state = pickle.loads(pickle.dumps(stream.state_dict()))
        assert state["consumed"] == k * B
        resumed = MixtureStream(shards, rank=rank, world_size=world_size)
        resumed.load_state_dict(state)
        tail = rows(DataLoader(resumed, batch_size=B))
        assert np.array_equal(np.concatenate([head, tail]), whole)
        # the next pass starts over
        assert np.array_equal(rows(DataLoader(resumed, batch_size=B)), whole)


def test_resume_plain_dataloader_workers_from_consumed_count(shards, reference):
    whole = reference[0]
    for k in (3, 4):  # odd and even numbers of batches with two workers
        loader = DataLoader(MixtureStream(shards, batch_size=B), batch_size=B, num_workers=2)
        it = iter(loader)
        head = rows([next(it) for _ in range(k)])
        del it
        stream = MixtureStream(shards, batch_size=B)
        stream.load_state_dict({"consumed": k * B})
        tail = rows(DataLoader(stream, batch_size=B, num_workers=2))
        assert np.array_equal(np.concatenate([head, tail]), whole)


# torchdata 0.11 calls torch.set_vital, which torch 2.13 deprecates


@pytest.mark.filterwarnings(STATEFUL_WARNING)
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_stateful_dataloader(shards, workers):
    from torchdata.stateful_dataloader import StatefulDataLoader

    def loader():
        return StatefulDataLoader(MixtureStream(shards, rank=1, world_size=2, batch_size=B), batch_size=B,
                                  num_workers=workers)

    whole = rows(loader())
    k = 5
    it = iter(first := loader())
    head = rows([next(it) for _ in range(k)])
    state = pickle.loads(pickle.dumps(first.state_dict()))
    del it
    second = loader()
    second.load_state_dict(state)
    tail = rows(second)
    assert np.array_equal(np.concatenate([head, tail]), whole)


def test_worker_state_is_per_worker(shards):
    stream = MixtureStream(shards, batch_size=B)
    stream.load_state_dict({**stream.state_dict(), "worker": 1, "num_workers": 2, "yielded": 3, "consumed": None})
    with pytest.raises(MixerError, match="worker 1 of 2"):
        next(iter(stream))


def test_state_from_another_stream_or_layout_is_refused(shards, corpus, tmp_path):
    other = make_shards(corpus, tmp_path / "other", tokens=100 * SEQ_LEN)
    state = MixtureStream(other).state_dict()
    with pytest.raises(MixerError, match="another stream"):
        MixtureStream(shards).load_state_dict(state)
    state = MixtureStream(shards, rank=0, world_size=2).state_dict()
    with pytest.raises(MixerError, match="rank=0"):
        MixtureStream(shards, rank=1, world_size=2).load_state_dict(state)  # same layout: each rank its own state
    with pytest.raises(MixerError, match="consumed=999"):
        MixtureStream(shards).load_state_dict({"consumed": 999})


def corrupt(shards: Path, tmp_path: Path, how: str) -> Path:
    bad = tmp_path / f"bad-{how}"
    bad.mkdir()
    for f in shards.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    victim = bad / "shard-00002.zst"
    data = bytearray(victim.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x40
    else:
        data = data[: len(data) // 2]
    victim.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_bad_shard_is_named(shards, tmp_path, how):
    bad = corrupt(shards, tmp_path, how)
    stream = MixtureStream(bad)
    seen = 0
    with pytest.raises(MixerError, match=r"shard-00002\.zst: checksum mismatch"):
        for _ in stream:
            seen += 1
    assert seen == 80  # the two good shards before it were delivered
    # ... also from inside a DataLoader worker
    with pytest.raises(MixerError, match=r"shard-00002\.zst"):
        list(DataLoader(MixtureStream(bad, batch_size=B), batch_size=B, num_workers=1))


def test_missing_index_is_clear(tmp_path):
    with pytest.raises(MixerError, match="no shard index"):
        MixtureStream(tmp_path)


def test_masked_lm_shards_carry_attention_mask(corpus, tmp_path):
    shards = make_shards(corpus, tmp_path / "mlm", tokens=60 * SEQ_LEN, objective="mlm", per_shard=25)
    stream = MixtureStream(shards, batch_size=B)
    pad = stream.index.special_tokens.pad
    batches = list(DataLoader(stream, batch_size=B, num_workers=0))
    ids = torch.cat([b["input_ids"] for b in batches])
    mask = torch.cat([b["attention_mask"] for b in batches])
    assert ids.shape == mask.shape == (60, SEQ_LEN) and mask.dtype == torch.int64
    assert torch.equal(mask.bool(), ids != pad)
    assert torch.all(mask[:, 0] == 1)
    assert np.array_equal(ids.numpy(), shard_rows(shards)[0])


def test_early_break_stops_read_ahead(shards):
    import threading

    stream = MixtureStream(shards)
    for i, _ in enumerate(stream):
        if i == 5:
            break
    assert not [t for t in threading.enumerate() if t.name == "mixer-read-ahead"]
    # nothing was lost: the position is 6 and the stream continues from there
    assert stream.state_dict()["consumed"] == 6


def test_without_domain_ids_same_tokens_and_no_sidecar_read(tmp_path):
    """domain_ids=False skips the sidecar: deleting it changes nothing, and the tokens are the
    stream's own."""
    from mixer.stream.sampler import MixtureSampler

    write_synthetic_corpus(tmp_path / "c", {"a": [30] * 200, "b": [50] * 200})
    weights = {"a": 0.4, "b": 0.6}
    full = list(MixtureSampler(tmp_path / "c", weights, 4096, 64, seed=3))
    bare = list(MixtureSampler(tmp_path / "c", weights, 4096, 64, seed=3, domain_ids=False, batched=True,
                               batch_size=4))
    assert all(set(b) == {"input_ids"} for b in bare)
    assert torch.equal(torch.cat([b["input_ids"] for b in bare]), torch.stack([f["input_ids"] for f in full]))
    plan = build_plan(tmp_path / "c", weights, PlanConfig(tokens=4096, seq_len=64, seed=3))
    write_shards(plan, tmp_path / "c", tmp_path / "s", ShardConfig(shard_tokens=1024))
    for sidecar in (tmp_path / "s").glob("*.domains.zst"):
        sidecar.unlink()
    stream = list(MixtureStream(tmp_path / "s", domain_ids=False))  # would fail reading a missing sidecar
    assert torch.equal(torch.stack([s["input_ids"] for s in stream]), torch.stack([f["input_ids"] for f in full]))
