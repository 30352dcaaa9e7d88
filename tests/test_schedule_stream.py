"""A stream that follows a mixture schedule: exact counts per stage and domain, no document in two
stages, a one-stage schedule byte-identical to one mixture, the stages in the shards' index, and
resumption mid-stage equal to the uninterrupted stream (0 and 2 workers, 2 ranks)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from torch.utils.data import DataLoader

from mixer import MixtureSampler, MixtureStream
from mixer.cli import main
from mixer.core.errors import MixerError
from mixer.formats.corpus import open_split
from mixer.formats.schedule import make_schedule, save_schedule
from mixer.formats.shards import read_index
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
from mixer.kernels.targets import largest_remainder
from mixer.shards.gather import gather_sequences, open_sources
from mixer.shards.plan import PlanConfig, build_plan, build_schedule_plan
from mixer.shards.write import ShardConfig, write_shards

B = 4
SEQ_LEN = 48
SEED = 5
DOMAINS = ("books", "code", "wiki")
# Three stages; boundaries that are not multiples of B or of SEQ_LEN (rounded down to 37, 81, 130 sequences).
SCHEDULE = make_schedule([(37 * SEQ_LEN + 11, {"books": 0.6, "code": 0.3, "wiki": 0.1}),
                          (81 * SEQ_LEN, {"books": 0.2, "code": 0.5, "wiki": 0.3}),
                          (130 * SEQ_LEN + 7, {"books": 0.1, "code": 0.2, "wiki": 0.7})])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("schedule") / "corpus"
    write_synthetic_corpus(path, {"books": lognormal_lengths(150, 90, 1.2, 1), "code": lognormal_lengths(200, 60, 1.0, 2),
                                  "wiki": lognormal_lengths(300, 50, 0.8, 3)}, vocab_size=70000, seed=9)
    return path


def plan_of(corpus, schedule=SCHEDULE, **kw):
    return build_schedule_plan(corpus, schedule, PlanConfig(tokens=schedule.budget_tokens, seq_len=SEQ_LEN,
                                                            seed=SEED, **kw))


def test_counts_per_stage_and_domain_are_exact(corpus):
    plan = plan_of(corpus)
    assert [(s.first_sequence, s.sequences) for s in plan.stages] == [(0, 37), (37, 44), (81, 49)]
    _, doms = gather_sequences(plan, open_sources(corpus, plan), 0, plan.num_sequences)
    for stage, sched in zip(plan.stages, SCHEDULE.stages):
        w = np.array([sched.weights[d] for d in DOMAINS])
        expected = largest_remainder(w, stage.sequences * SEQ_LEN)
        rows = doms[stage.first_sequence:stage.first_sequence + stage.sequences]
        np.testing.assert_array_equal(np.bincount(rows.ravel(), minlength=3), expected)
        assert stage.targets == tuple(expected.tolist())
    np.testing.assert_array_equal(plan.realised(), np.sum([s.targets for s in plan.stages], axis=0))


@pytest.mark.parametrize("objective", ["causal", "mlm"])
def test_no_document_in_two_stages(corpus, objective):
    plan = plan_of(corpus, objective=objective)
    for i, name in enumerate(plan.domains):
        ids = open_split(corpus, name).parts[0].doc_ids[plan.seg_doc[plan.seg_domain == i]]
        assert len(ids) > 0 and len(set(ids.tolist())) == len(ids)
    if objective == "mlm":  # one document per row, every row in its stage's counts
        for s in plan.stages:
            counts = np.bincount(plan.seg_domain[s.first_sequence:s.first_sequence + s.sequences], minlength=3)
            assert tuple(counts.tolist()) == s.targets


def test_each_domain_walks_one_permutation_across_stages(corpus):
    """The documents of all stages, in stage order, are the one-mixture plan's first documents
    of the same permutation (cut documents aside): the stages continue, they do not restart."""
    plan = plan_of(corpus)
    bounds = [0] + [s.first_sequence + s.sequences for s in plan.stages]
    seg_stage = np.searchsorted(np.array(bounds[1:]) * SEQ_LEN, plan.seg_dst, side="right")
    whole = build_plan(corpus, {"books": 1 / 3, "code": 1 / 3, "wiki": 1 / 3},
                       PlanConfig(tokens=600 * SEQ_LEN, seq_len=SEQ_LEN, seed=SEED, max_epochs=3.0))
    for i in range(3):
        ours = np.concatenate([plan.seg_doc[(plan.seg_domain == i) & (seg_stage == k)] for k in range(3)])
        # within a stage the interleave keeps each domain's selection order
        theirs = whole.seg_doc[whole.seg_domain == i][:len(ours)]
        np.testing.assert_array_equal(np.sort(ours), np.sort(theirs))


def test_one_stage_schedule_is_byte_identical_to_one_mixture(corpus, tmp_path):
    w = {"books": 0.25, "code": 0.35, "wiki": 0.4}
    one = make_schedule([(130 * SEQ_LEN + 5, w)])
    cfg = PlanConfig(tokens=130 * SEQ_LEN + 5, seq_len=SEQ_LEN, seed=SEED)
    a, b = build_plan(corpus, w, cfg), build_schedule_plan(corpus, one, cfg)
    shard = ShardConfig(shard_tokens=37 * SEQ_LEN, workers=2)
    write_shards(a, corpus, tmp_path / "fixed", shard)
    write_shards(b, corpus, tmp_path / "sched", shard)
    files = sorted(p.name for p in (tmp_path / "fixed").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "sched").iterdir())
    for name in files:
        assert (tmp_path / "fixed" / name).read_bytes() == (tmp_path / "sched" / name).read_bytes(), name
    ours = MixtureSampler(corpus, one, None, SEQ_LEN, SEED)
    theirs = MixtureSampler(corpus, w, 130 * SEQ_LEN + 5, SEQ_LEN, SEED)
    assert ours.source.fingerprint == theirs.source.fingerprint


def test_a_stage_asking_too_much_names_the_stage_and_domain(corpus):
    books = int(sum(open_split(corpus, "books").lengths())) + 150
    greedy = make_schedule([(2 * books // 3, {"books": 0.9, "code": 0.05, "wiki": 0.05}),
                            (2 * books, {"books": 0.9, "code": 0.05, "wiki": 0.05})])
    with pytest.raises(MixerError) as e:
        build_schedule_plan(corpus, greedy, PlanConfig(tokens=greedy.budget_tokens, seq_len=SEQ_LEN, seed=SEED))
    assert "schedule stage 1" in str(e.value) and "domain 'books'" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(MixerError, match="beyond the schedule's last stage"):
        build_schedule_plan(corpus, SCHEDULE, PlanConfig(tokens=200 * SEQ_LEN, seq_len=SEQ_LEN, seed=SEED))
    tiny = make_schedule([(10, {"books": 1.0, "code": 0.0, "wiki": 0.0}), (20 * SEQ_LEN, {"books": 0.5, "code": 0.5,
                                                                                           "wiki": 0.0})])
    with pytest.raises(MixerError, match="stage 0 .* less than one sequence"):
        build_schedule_plan(corpus, tiny, PlanConfig(tokens=tiny.budget_tokens, seq_len=SEQ_LEN, seed=SEED))


def test_tokens_below_the_schedule_end_cut_it(corpus):
    plan = build_schedule_plan(corpus, SCHEDULE, PlanConfig(tokens=60 * SEQ_LEN, seq_len=SEQ_LEN, seed=SEED))
    assert [(s.first_sequence, s.sequences) for s in plan.stages] == [(0, 37), (37, 23)]
    full = plan_of(corpus)
    t1, _ = gather_sequences(plan, open_sources(corpus, plan), 0, 37)
    t2, _ = gather_sequences(full, open_sources(corpus, full), 0, 37)
    np.testing.assert_array_equal(t1, t2)  # the first stage does not depend on what follows


@pytest.fixture(scope="module")
def shards(corpus) -> Path:
    path = corpus.parent / "shards"
    save_schedule(corpus.parent / "schedule.json", SCHEDULE)
    r = CliRunner().invoke(main, ["build-shards", "--corpus", str(corpus), "--schedule",
                                  str(corpus.parent / "schedule.json"), "--seq-len", str(SEQ_LEN), "--data-seed",
                                  str(SEED), "--out", str(path), "--shard-tokens", str(20 * SEQ_LEN), "--quiet"])
    assert r.exit_code == 0, r.output
    return path


def stack(items) -> np.ndarray:
    return np.concatenate([x["input_ids"].reshape(-1, SEQ_LEN).numpy() for x in items])


def test_shards_record_the_stages_and_equal_the_sampler(corpus, shards):
    ix = read_index(shards)
    assert [(s.first_sequence, s.sequences) for s in ix.stages] == [(0, 37), (37, 44), (81, 49)]
    assert ix.stages[1].weights == SCHEDULE.stages[1].weights
    plan = plan_of(corpus)
    assert [tuple(s.target_tokens[d] for d in DOMAINS) for s in ix.stages] == [s.targets for s in plan.stages]
    assert np.array_equal(stack(MixtureStream(shards)), stack(MixtureSampler(corpus, SCHEDULE, None, SEQ_LEN, SEED)))
    out = CliRunner().invoke(main, ["inspect", str(shards)])
    assert out.exit_code == 0, out.output
    assert "schedule: 3 stages" in out.output and "81 .. 130" in out.output


def test_resume_mid_stage_equals_uninterrupted(corpus, shards):
    """20 random positions inside stages, per worker count, over 2 ranks; resumed by the
    sampler's own state (0 workers) and by the consumed count (2 workers); the shards resume too."""
    rng = np.random.default_rng(0)
    boundaries = {0, 37, 81, 130}
    for workers in (0, 2):
        for rank in range(2):
            kw = {"rank": rank, "world_size": 2, "batch_size": B}
            whole = stack(DataLoader(MixtureSampler(corpus, SCHEDULE, None, SEQ_LEN, SEED, **kw), batch_size=B,
                                     num_workers=workers))
            first = 0 if rank == 0 else 65  # rank 1 reads sequences 65..130
            steps = [k for k in range(1, len(whole) // B) if first + k * B not in boundaries]
            for k in rng.choice(steps, size=10, replace=False).tolist():
                again = MixtureSampler(corpus, SCHEDULE, None, SEQ_LEN, SEED, **kw)
                if workers == 0:
                    head = MixtureSampler(corpus, SCHEDULE, None, SEQ_LEN, SEED, **kw)
                    it = iter(DataLoader(head, batch_size=B))
                    for _ in range(k):
                        next(it)
                    state = pickle.loads(pickle.dumps(head.state_dict()))
                else:
                    state = {"consumed": k * B}
                again.load_state_dict(state)
                rest = stack(DataLoader(again, batch_size=B, num_workers=workers))
                assert np.array_equal(rest, whole[k * B:]), (workers, rank, k)
                if workers == 0 and k % 3 == 0:  # the shards resume from the sampler's position
                    stream = MixtureStream(shards, **kw)
                    stream.load_state_dict(state)
                    assert np.array_equal(stack(DataLoader(stream, batch_size=B)), whole[k * B:])


def test_prefix_bound_holds_within_every_stage(corpus):
    """Each stage's interleave is one mixture's: against the stage's shares s_i, every prefix of
    the stage (counted from its start) keeps each domain within
    ((1 - s_i) l_i + s_i sum_{j != i} l_j) / 2 tokens, l the longest segment (EOS included)."""
    plan = plan_of(corpus)
    units = plan.seg_count + 1
    seg_stage = np.searchsorted(np.array([s.first_sequence + s.sequences for s in plan.stages]) * SEQ_LEN,
                                plan.seg_dst, side="right")
    for k, stage in enumerate(plan.stages):
        sel = seg_stage == k
        dom, u = plan.seg_domain[sel], units[sel]
        assert np.array_equal(np.bincount(dom, weights=u, minlength=3).astype(np.int64), stage.targets)
        share = np.array(stage.targets) / sum(stage.targets)
        longest = np.array([u[dom == i].max() for i in range(3)], float)
        bound = ((1 - share) * longest + share * (longest.sum() - longest)) / 2
        done = np.cumsum(np.eye(3)[dom] * u[:, None], axis=0)  # (segments, domains) delivered
        prefix = done.sum(axis=1, keepdims=True)
        assert np.all(np.abs(done - share * prefix) <= bound + 1e-9), k


def test_further_epochs_across_stages(corpus):
    """A schedule that needs more than one pass over a domain: refused at max_epochs 1 by stage
    and domain, allowed at 2, where no document appears more than twice."""
    books = int(sum(open_split(corpus, "books").lengths())) + 150
    heavy = make_schedule([(books // 2, {"books": 0.9, "code": 0.05, "wiki": 0.05}),
                           (books // 2 + books, {"books": 0.9, "code": 0.05, "wiki": 0.05})])
    with pytest.raises(MixerError, match="schedule stage 1 .*domain 'books'"):
        plan_of(corpus, heavy)
    plan = plan_of(corpus, heavy, max_epochs=2.0)
    i = plan.domains.index("books")
    assert plan.epochs[i] == 2
    _, counts = np.unique(plan.seg_doc[plan.seg_domain == i], return_counts=True)
    assert counts.max() == 2
