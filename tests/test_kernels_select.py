"""Selection without replacement against a plain-Python reference."""
import numpy as np
from hypothesis import given, settings, strategies as st

from mixer.kernels.select import select_causal, select_mlm


def ref_select_causal(lengths, perm, target):
    docs, counts, need = [], [], target
    for d in perm:
        if need <= 0:
            break
        docs.append(d)
        if lengths[d] + 1 <= need:
            counts.append(lengths[d])
            need -= lengths[d] + 1
        else:
            counts.append(need - 1)
            need = 0
    return docs, counts, target - need


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=60), st.integers(0, 4000), st.randoms(use_true_random=False))
def test_select_causal_matches_reference(lengths, target, rnd):
    lengths = np.array(lengths, dtype=np.int64)
    perm = np.arange(len(lengths), dtype=np.int64)
    rnd.shuffle(perm)
    docs, counts, taken = select_causal(lengths, perm, target)
    rd, rc, rt = ref_select_causal(lengths, perm, target)
    assert docs.tolist() == rd and counts.tolist() == rc and taken == rt
    assert len(set(docs.tolist())) == len(docs)  # no document twice
    assert int((counts + 1).sum()) == taken == min(target, int((lengths + 1).sum()))
    assert np.all(counts <= lengths[docs])


def test_select_causal_cuts_the_last_document():
    docs, counts, taken = select_causal(np.array([10, 10, 10]), np.array([2, 0, 1]), 15)
    assert docs.tolist() == [2, 0] and counts.tolist() == [10, 3] and taken == 15


def test_select_mlm_truncates():
    docs, counts = select_mlm(np.array([5, 100, 0]), np.array([1, 2, 0]), 2, 8)
    assert docs.tolist() == [1, 2] and counts.tolist() == [8, 0]


def test_first_passes_of_many_domains_in_one_call_equal_one_call_each():
    from mixer.kernels.permute import permutation, stream_key
    from mixer.kernels.select import select_causal_first_passes

    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 30, 200)
    lengths = rng.integers(0, 300, sizes.sum()).astype(np.int64)
    dom_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    totals = np.add.reduceat(lengths + 1, dom_start[:-1])
    targets = (totals * rng.uniform(0, 1.3, 200)).astype(np.int64)  # some need a second pass
    targets[::9] = 0
    hashes = rng.integers(0, 2**62, 200).astype(np.uint64)
    docs, counts, picked, taken = select_causal_first_passes(lengths, dom_start, targets, np.uint64(5), hashes)
    short = 0
    for i in range(200):
        a, b = dom_start[i], dom_start[i + 1]
        if targets[i] == 0:
            assert picked[i] == taken[i] == 0
            continue
        key = np.uint64(stream_key(np.uint64(5), hashes[i], np.uint64(0)))  # as the plan keys a pass
        d, c, t = select_causal(lengths[a:b], permutation(b - a, key), targets[i])
        assert taken[i] == t and picked[i] == len(d)
        assert docs[a:a + picked[i]].tolist() == d.tolist() and counts[a:a + picked[i]].tolist() == c.tolist()
        short += t < targets[i]
    assert 0 < short < 200
