"""Largest-remainder targets and the radix argsort against NumPy references."""
import numpy as np
import numba
from hypothesis import given, settings, strategies as st

from mixer.kernels.radix import argsort_u64
from mixer.kernels.targets import largest_remainder


def ref_largest_remainder(w, n):
    q = w / w.sum() * n
    t = np.floor(q).astype(np.int64)
    left = n - t.sum()
    order = np.argsort(-(q - t), kind="stable")
    order = order[w[order] > 0]
    t[order[:left]] += 1
    return t


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12).filter(lambda x: sum(x) > 1e-3),
       st.integers(1, 10**12))
def test_largest_remainder_matches_reference(ws, n):
    w = np.array(ws)
    t = largest_remainder(w, n)
    assert t.sum() == n
    assert np.all(t[w == 0] == 0)
    assert np.all(np.abs(t - w / w.sum() * n) < 1 + 1e-6 * n / 1e9)
    ref = ref_largest_remainder(w, n)
    if ref.sum() == n:  # the float reference is exact except in rounding corner cases
        np.testing.assert_array_equal(t, ref)


def test_largest_remainder_ties_go_to_lower_index():
    np.testing.assert_array_equal(largest_remainder(np.array([1 / 3, 1 / 3, 1 / 3]), 10), [4, 3, 3])
    np.testing.assert_array_equal(largest_remainder(np.array([0.5, 0.0, 0.5]), 3), [2, 0, 1])


@numba.njit
def _targets_inside_njit(w, n):
    return largest_remainder(w, n).sum()


def test_callable_from_njit():
    assert _targets_inside_njit(np.array([0.2, 0.8]), 7) == 7


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=300), st.sampled_from([1, 3, 2**16, 2**40, 2**64 - 1]))
def test_argsort_u64_is_stable_argsort(values, modulus):
    keys = (np.array(values, dtype=np.uint64) % np.uint64(modulus)) if values else np.zeros(0, np.uint64)
    np.testing.assert_array_equal(argsort_u64(keys), np.argsort(keys, kind="stable"))
