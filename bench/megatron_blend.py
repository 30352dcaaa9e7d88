"""Megatron-Core's `build_blending_indices`: the real one when importable, else an exact port.

The real function is C++ in `megatron/core/datasets/helpers_cpp` (`pip install --no-deps
megatron-core==0.16.1`; it needs torch importable). Where it is missing the benchmark runs
`blend_port`, a line-by-line numba port of the same greedy (compiled, like the original), and
says so in the result; where both are present the benchmark checks they agree.

The greedy: for sample n (n = 0, 1, ...), with x = max(n, 1), take the dataset with the
largest error w_i x - c_i (first on ties) and count it. O(N K).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def blend_port(dataset_index, dataset_sample_index, weights, num_datasets, size):
    """Megatron's loop, same names, same float arithmetic."""
    current = np.zeros(num_datasets, np.int64)
    for sample_idx in range(size):
        x = max(float(sample_idx), 1.0)
        best = 0
        best_err = weights[0] * x - float(current[0])
        for i in range(1, num_datasets):
            err = weights[i] * x - float(current[i])
            if err > best_err:
                best_err = err
                best = i
        dataset_index[sample_idx] = best
        dataset_sample_index[sample_idx] = current[best]
        current[best] += 1


def load() -> tuple[object, str]:
    """(build_blending_indices, which): the real C++ function, or the port with the reason."""
    try:
        from megatron.core.datasets import helpers_cpp

        return helpers_cpp.build_blending_indices, "megatron-core helpers_cpp (C++)"
    except Exception as exc:  # noqa: BLE001 - any import failure means: use the port, and say why
        return (lambda di, si, w, k, n, verbose=False: blend_port(di, si, w, k, n),
                f"numba port of build_blending_indices (megatron-core not importable: {type(exc).__name__})")


def blend(fn, weights: np.ndarray, size: int) -> np.ndarray:
    """int16[size]: the dataset of every sample, from `fn` (see `load`)."""
    di = np.zeros(size, np.int16)
    si = np.zeros(size, np.int64)
    fn(di, si, np.ascontiguousarray(weights, np.float64), len(weights), size, False)
    return di
