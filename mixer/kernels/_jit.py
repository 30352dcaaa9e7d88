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
"""Decorator for pure kernels: arrays and scalars in, arrays out. No `parallel=True`: work is
split over Python threads calling nogil kernels, since numba's threading layer fails when
several threads enter parallel kernels at once."""
