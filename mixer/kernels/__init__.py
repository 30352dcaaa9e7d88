"""The numba kernels under the sampler and the shards: pure functions, arrays in and arrays out
(`@njit(cache=True, nogil=True)` via `_jit.py`), importing nothing else of the project.

This file imports no numba, so that a command can call `without_numba_extras` before numba
loads: `import numba` and numba's first kernel call, even from its cache, import packages that
no mixer kernel uses."""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

KERNELS_DIR = Path(__file__).resolve().parent


def sources_digest(folder: Path = KERNELS_DIR) -> str:
    """sha256 of the path and bytes of every `.py` file under `folder` (`mixer/kernels/`): what
    numba's cache of every kernel is stamped with (`_jit.py`) and part of the key of the kernels
    compiled ahead of time (`aot/store.py`)."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


NUMBA_EXTRAS = ("scipy", "cffi", "yaml")
"""What numba imports that no mixer kernel needs: scipy (checked for at `import numba`, and
searched for a BLAS, for `np.dot` and `np.linalg`, at the first kernel call: scipy.linalg pulls
in numpy.f2py, numpy.testing and unittest, about 0.15 s), cffi (to type cffi functions: a C
parser, about 0.02 s) and yaml (to read a `.numba_config.yaml`, about 0.01 s; imported as ever
when that file is there)."""


class _Refuse:
    """A `sys.meta_path` finder that answers "no such module" for the top-level packages named."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not imported while mixer loads its kernels)",
                                      name=fullname)
        return None  # noqa: RET501, PLR1711 (the finder protocol: None = "not mine", ask the next finder)


@contextlib.contextmanager
def without_numba_extras() -> Iterator[None]:
    """While inside, `NUMBA_EXTRAS` cannot be imported (any already imported stay), so numba
    loads none of them: it then finds no BLAS and no cffi, which only `np.dot`-like and cffi
    calls in jitted code would use, and no mixer kernel makes either (tests/test_startup.py
    builds shards inside it with numba's cache cold and warm). For a process that runs mixer's
    kernels and nothing else of numba's, such as `mixer build-shards`: whatever numba decides
    while inside holds for the rest of the process, so a library caller's process is left as is."""
    names = tuple(n for n in NUMBA_EXTRAS if n != "yaml" or not os.path.isfile(".numba_config.yaml"))
    finder = _Refuse(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
