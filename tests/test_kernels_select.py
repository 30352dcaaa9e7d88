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
