"""The one place that decides how numba compiles mixer's kernels.

`cache=True` so a kernel compiles once per machine rather than once per process (tests,
DataLoader workers and CLI runs all reuse the cache); `nogil=True` so the gather and packers
can run in Python threads beside zstd compression; the default error model checks nothing
per element, so wrappers validate inputs before calling in.

numba stamps a cached function with the hash of its own source file only, while the machine
code it keeps holds every kernel the function calls, compiled in. A kernel whose callee changed
in another file (`blend.blend_items` calls `blend_lanes.wide_pass`) would then run its old
callee from the cache: after an upgrade of mixer (pip leaves `__pycache__/*.nbi` behind) or a
`git pull` in an editable install, silently. So the stamp of every kernel's cache also covers
the source of every file under `mixer/kernels/` (`_EveryKernelSource`): a change anywhere
compiles all kernels again, once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numba
import numba.core.caching as _caching

from mixer.kernels import KERNELS_DIR, sources_digest

JIT_OPTIONS = {"cache": True, "nogil": True}


class _Stamped:
    """numba's own locator for a kernel (where its cache lives, and so on), with a source stamp
    that also names every kernel source (`sources_digest`)."""

    def __init__(self, inner: Any, digest: str) -> None:
        self._inner, self._digest = inner, digest

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_source_stamp(self) -> Any:
        return (self._inner.get_source_stamp(), self._digest)


class _EveryKernelSource:
    """A cache locator for functions defined under `mixer/kernels/` (None for any other, which
    numba's own locators then take): the first of numba's locators that accepts the function,
    stamped with `sources_digest()` besides its own file's hash."""

    digest: str | None = None

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        try:
            inside = Path(py_file).resolve().is_relative_to(KERNELS_DIR)
        except (OSError, ValueError):
            inside = False
        if not inside:
            return None
        if cls.digest is None:
            cls.digest = sources_digest()
        for other in _IMPL._locator_classes:
            if other is not cls:
                found = other.from_function(py_func, py_file)
                if found is not None:
                    return _Stamped(found, cls.digest)
        return None


_IMPL = getattr(_caching, "CacheImpl", None) or getattr(_caching, "_CacheImpl", None)  # (numba >= 0.65 / before)


def _install() -> bool:
    """Put `_EveryKernelSource` first among numba's cache locators (once); False where this numba
    keeps no such list (tests/test_kernel_cache.py fails then, rather than the stamps going stale)."""
    classes = getattr(_IMPL, "_locator_classes", None)
    if not isinstance(classes, list):
        return False
    if _EveryKernelSource not in classes:
        classes.insert(0, _EveryKernelSource)
    return True


INSTALLED = _install()

njit = numba.njit(**JIT_OPTIONS)
"""Decorator for pure kernels: arrays and scalars in, arrays out. No `parallel=True`: work is
split over Python threads calling nogil kernels, since numba's threading layer fails when
several threads enter parallel kernels at once."""
