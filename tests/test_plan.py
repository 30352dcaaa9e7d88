"""The plan and the gather on real (synthetic) corpora: exact counts, no reuse, ranges."""
import math

import numpy as np
import pytest

from mixer.kernels.targets import largest_remainder
from mixer.formats.corpus import open_split
from mixer.core.errors import MixerError
from mixer.shards.gather import gather_sequences, open_sources
from mixer.shards.plan import PlanConfig, build_plan
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

WEIGHTS = {"code": 0.2, "news": 0.5, "wiki": 0.3}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "corpus"
    write_synthetic_corpus(path, {"code": lognormal_lengths(400, 60, 1.0, 1), "news": lognormal_lengths(600, 40, 0.8, 2),
                                  "wiki": lognormal_lengths(300, 90, 1.2, 3)}, vocab_size=5000, seed=4)
    return path


def reference_stream(plan, corpus):
    """The causal stream built the slow way: each segment's tokens, then EOS."""
    docs = {name: open_split(corpus, name) for name in plan.domains}
    pieces = []
    for d, doc, start, count in zip(plan.seg_domain, plan.seg_doc, plan.seg_start, plan.seg_count):
        pieces += [docs[plan.domains[d]].document(int(doc))[start:start + count], [plan.eos_id]]
    return np.concatenate(pieces).astype(plan.dtype)


def test_exact_counts_no_reuse_and_stream(corpus):
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=20_000, seq_len=100, seed=3))
    assert plan.budget_tokens == 20_000 and plan.num_sequences == 200
    targets = largest_remainder(np.array([0.2, 0.5, 0.3]), 20_000)
    np.testing.assert_array_equal(plan.targets, targets)
    np.testing.assert_array_equal(plan.realised(), targets)
    for i, name in enumerate(plan.domains):
        ids = open_split(corpus, name).parts[0].doc_ids[plan.seg_doc[plan.seg_domain == i]]
        assert len(set(ids.tolist())) == len(ids)  # no (domain, doc_id) used twice
    tokens, domains = gather_sequences(plan, open_sources(corpus, plan), 0, plan.num_sequences)
    np.testing.assert_array_equal(tokens.ravel(), reference_stream(plan, corpus))
    np.testing.assert_array_equal(np.bincount(domains.ravel(), minlength=3), targets)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_range_equals_the_whole(corpus, threads):
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=8_000, seq_len=64, seed=1))
    src = open_sources(corpus, plan)
    whole, wdom = gather_sequences(plan, src, 0, plan.num_sequences)
    for first, count in [(0, 1), (5, 7), (plan.num_sequences - 3, 3), (17, 0)]:
        t, d = gather_sequences(plan, src, first, count, threads=threads)
        np.testing.assert_array_equal(t, whole[first:first + count])
        np.testing.assert_array_equal(d, wdom[first:first + count])


@pytest.mark.parametrize("objective", ["causal", "mlm"])
def test_buffers_that_are_views_into_larger_arrays_get_the_rows(corpus, objective):
    """`out` / `domains_out` given as column ranges of larger arrays (not C-contiguous, as a
    slice of a batch buffer is): the rows land in them, and nothing outside them is touched.
    (Before, the kernels wrote into the copy that flattening such an array makes, and the
    caller's buffer kept what it held, without a word.)"""
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=8_000, seq_len=64, seed=1, objective=objective))
    src = open_sources(corpus, plan)
    whole, wdom = gather_sequences(plan, src, 0, plan.num_sequences)
    big, big_dom = np.full((9, 3 * 64), 7, whole.dtype), np.full((9, 2 * 64), 7, wdom.dtype)
    out, dom = big[:, 64:128], big_dom[:, :64]
    assert not out.flags.c_contiguous and not dom.flags.c_contiguous
    t, d = gather_sequences(plan, src, 4, 9, out=out, domains_out=dom)
    assert t is out and d is dom
    np.testing.assert_array_equal(out, whole[4:13])
    np.testing.assert_array_equal(dom, wdom[4:13])
    assert (big[:, :64] == 7).all() and (big[:, 128:] == 7).all() and (big_dom[:, 64:] == 7).all()


def test_a_read_only_buffer_is_refused_in_one_line(corpus):
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=8_000, seq_len=64, seed=1))
    src = open_sources(corpus, plan)
    tokens, ids = gather_sequences(plan, src, 0, 3)
    for given in ({"out": tokens.copy()}, {"domains_out": ids.copy()}):
        name, array = next(iter(given.items()))
        array.setflags(write=False)
        with pytest.raises(ValueError, match=f"^{name} is read-only"):
            gather_sequences(plan, src, 0, 3, **given)


def test_seed_changes_order_not_counts(corpus):
    a = build_plan(corpus, WEIGHTS, PlanConfig(tokens=10_000, seq_len=100, seed=0))
    b = build_plan(corpus, WEIGHTS, PlanConfig(tokens=10_000, seq_len=100, seed=1))
    a2 = build_plan(corpus, WEIGHTS, PlanConfig(tokens=10_000, seq_len=100, seed=0))
    np.testing.assert_array_equal(a.realised(), b.realised())
    assert not np.array_equal(a.seg_doc, b.seg_doc)
    np.testing.assert_array_equal(a.seg_doc, a2.seg_doc)


def test_budget_rounds_down_to_whole_sequences(corpus):
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=10_050, seq_len=100))
    assert plan.tokens_requested == 10_050 and plan.budget_tokens == 10_000
    assert plan.realised().sum() == 10_000


def test_repeat_takes_fresh_epochs(corpus):
    with pytest.raises(MixerError, match="'code' has .* needs .*--max-epochs F; max_epochs=F in Python"):
        build_plan(corpus, {"code": 1.0, "news": 0.0, "wiki": 0.0}, PlanConfig(tokens=60_000, seq_len=100))
    plan = build_plan(corpus, {"code": 1.0, "news": 0.0, "wiki": 0.0},
                      PlanConfig(tokens=60_000, seq_len=100, max_epochs=math.inf))
    assert plan.realised()[0] == 60_000 and plan.epochs[0] == 3
    docs = plan.seg_doc  # each epoch (a run of whole documents) uses each document at most once
    assert np.bincount(docs).max() <= plan.epochs[0]


def test_mlm_one_document_per_row(corpus):
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=64 * 50, seq_len=64, objective="mlm", seed=2))
    np.testing.assert_array_equal(plan.realised(), largest_remainder(np.array([0.2, 0.5, 0.3]), 50))
    cls, sep, pad = plan.special
    tokens, _ = gather_sequences(plan, open_sources(corpus, plan), 0, 50)
    docs = {name: open_split(corpus, name) for name in plan.domains}
    for r in range(50):
        doc = docs[plan.domains[plan.seg_domain[r]]].document(int(plan.seg_doc[r]))[:62]
        row = np.concatenate([[cls], doc, [sep], np.full(62 - len(doc), pad)])
        np.testing.assert_array_equal(tokens[r], row)


def test_sources_must_match_the_plan(corpus, tmp_path):
    other = tmp_path / "other"
    write_synthetic_corpus(other, {"code": [5] * 10, "news": [5] * 10, "wiki": [5] * 10}, vocab_size=5000)
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=1000, seq_len=100))
    with pytest.raises(MixerError, match="differs from the corpus this plan was built from"):
        open_sources(other, plan)


def test_a_plan_whose_parts_are_not_the_corpus_parts_is_refused_naming_the_first(corpus):
    """The same corpus (its sha256 matches) but a plan naming other parts, fewer or more of them:
    the first part that differs is named, or the counts when the corpus has too few."""
    from dataclasses import replace

    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=1000, seq_len=100))
    assert plan.parts == ("code/train/part-00000.arrow", "news/train/part-00000.arrow", "wiki/train/part-00000.arrow")
    assert len(open_sources(corpus, plan).values) == 3
    cases = {("code/train/part-00000.arrow", "news/train/other.arrow", "wiki/train/part-00000.arrow"):
             f"{corpus}/news/train/part-00000.arrow: not the part the plan expects",
             plan.parts[:2]: f"{corpus}/wiki/train/part-00000.arrow: not the part the plan expects",
             plan.parts + ("more/train/part-00000.arrow",):
             f"{corpus}: the plan reads 4 Arrow parts but the corpus has 3"}
    for parts, message in cases.items():
        with pytest.raises(MixerError) as info:
            open_sources(corpus, replace(plan, parts=parts))
        assert str(info.value).startswith(message), str(info.value)
