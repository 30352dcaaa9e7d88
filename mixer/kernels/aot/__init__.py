"""The build's kernels, compiled ahead of time, for a command that would otherwise spend a third
of its run importing numba and loading its cache (`mixer build-shards`).

    with compiled_kernels(cache_dir) as status:   # compiles once per machine and source, then loads
        build(...)                                 # kernel("gather_frame") etc. run the compiled code

`kernel(name)` is how the build's code calls these kernels: numba's dispatcher, except inside
`compiled_kernels` where a call whose arguments match a compiled variant exactly (`keys.py`)
runs that variant, and any other call still runs numba's dispatcher. The compiled code is the
same functions compiled by the same compiler, so the output is the same bytes either way
(tests/test_kernels_aot.py builds shards both ways). This file imports neither numba nor the
kernels' modules until a call needs them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mixer.kernels.aot.keys import call_key, from_json

HOMES = {"permutation": "permute", "stream_key": "permute", "select_causal": "select",
         "select_causal_first_passes": "select", "select_mlm": "select", "largest_remainder": "targets",
         "midpoint_keys": "interleave", "lane_bounds": "interleave", "merge_lanes": "interleave",
         "gather_frame": "gather", "address_order": "gather", "sort_pieces": "gather", "gather_pieces": "gather",
         "clip_pieces": "pack", "mlm_frame": "pack", "causal_frame": "pack", "smallest_feasible_items": "edf",
         "blend_items": "blend"}
"""The kernels `kernel()` serves, by module."""

COMPILED = tuple(name for name in HOMES if name != "causal_frame")
"""The kernels `compile.py` compiles: all but `causal_frame` (a causal build over parts of another
dtype than its tokens: numba's, always)."""


def jit_kernel(name: str) -> Callable:
    """numba's dispatcher of kernel `name` (imports its module, and numba)."""
    home = HOMES.get(name)
    if home == "permute":
        from mixer.kernels import permute as module
    elif home == "select":
        from mixer.kernels import select as module
    elif home == "targets":
        from mixer.kernels import targets as module
    elif home == "interleave":
        from mixer.kernels import interleave as module
    elif home == "gather":
        from mixer.kernels import gather as module
    elif home == "pack":
        from mixer.kernels import pack as module
    elif home == "edf":
        from mixer.kernels import edf as module
    elif home == "blend":
        from mixer.kernels import blend as module
    else:
        raise KeyError(f"{name!r} is not one of the kernels served here: {sorted(HOMES)}")
    return getattr(module, name)


class _Dispatch:
    """One kernel's compiled variants, by argument key; any other call goes to numba's dispatcher."""

    __slots__ = ("name", "variants")

    def __init__(self, name: str, variants: dict[tuple, Callable]) -> None:
        self.name, self.variants = name, variants

    def __call__(self, *args):
        fn = self.variants.get(call_key(args))
        return fn(*args) if fn is not None else jit_kernel(self.name)(*args)


@dataclass(frozen=True)
class Status:
    """What `compiled_kernels` found: `active` (the compiled kernels run), `reason` (why they do
    not, when they do not)."""
    active: bool
    reason: str | None = None


_active: dict[str, _Dispatch] = {}  # set only inside `compiled_kernels`


def kernel(name: str) -> Callable:
    """The kernel to call: the compiled one inside `compiled_kernels`, else numba's."""
    return _active.get(name) or jit_kernel(name)


@contextlib.contextmanager
def compiled_kernels(cache: Path, *, on_compile: Callable[[], None] | None = None,
                     on_failure: Callable[[str], None] | None = None) -> Iterator[Status]:
    """While inside, `kernel()` serves the compiled kernels from `cache`, compiled there first
    when missing (once: `on_compile` is called before that compile, to say so, and
    `on_failure(reason)` after it if it failed). If they cannot be had, the status says why and
    numba's dispatchers run, with the same output."""
    from mixer.kernels.aot import store

    cache, k = Path(cache), store.key()
    loaded, reason = store.load(cache / k, k), None
    if loaded is None:
        reason = _compile_once(cache, k, on_compile, on_failure)
        loaded = store.load(cache / k, k) if reason is None else None
        if loaded is None and reason is None:
            reason = "compiled, but not loadable"
    before = dict(_active)
    if loaded is not None:
        module, table = loaded
        _active.update({name: _Dispatch(name, {from_json(key): getattr(module, symbol) for symbol, key in variants})
                        for name, variants in table.items() if name in HOMES})
    try:
        yield Status(active=loaded is not None, reason=reason)
    finally:
        _active.clear()
        _active.update(before)


def _compile_once(cache: Path, k: str, on_compile: Callable[[], None] | None,
                  on_failure: Callable[[str], None] | None) -> str | None:
    """Compile the module for key `k` unless a failed compile is remembered; None when it is
    there now, else the reason it is not (a remembered failure is not said again)."""
    from mixer.kernels.aot import store

    marker = store.failed(cache, k)
    if marker.is_file():
        return marker.read_text().strip() or "the compile failed"
    if on_compile is not None:
        on_compile()
    reason = store.compile_into(cache, k)
    if reason is not None and on_failure is not None:
        on_failure(reason)
    return reason
