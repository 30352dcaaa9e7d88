"""The one place that decides how numba compiles mixer's kernels.

`cache=True` so a kernel compiles once per machine rather than once per process (tests,
DataLoader workers and CLI runs all reuse the cache); `nogil=True` so the gather and packers
can run in Python threads beside zstd compression; the default error model checks nothing
per element, so wrappers validate inputs before calling in.
"""
from __future__ import annotations

import numba

JIT_OPTIONS = {"cache": True, "nogil": True}

njit = numba.njit(**JIT_OPTIONS)
"""Decorator for pure kernels: arrays and scalars in, arrays out."""


def njit_parallel(fn):
    """Decorator for kernels with a `numba.prange` loop (the gather over both cores)."""
    return numba.njit(parallel=True, **JIT_OPTIONS)(fn)
