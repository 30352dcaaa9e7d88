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
"""The kernels `kernel()` serves, by module. `compile.py` compiles all but `causal_frame` (a causal
build over parts of another dtype than its tokens: numba's, always)."""


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
    """What `compiled_kernels` did: `active` (the compiled kernels run), `compiled` (this call
    compiled them), `reason` (why they do not run, when they do not)."""
    active: bool
    compiled: bool = False
    reason: str | None = None


_active: dict[str, _Dispatch] = {}  # set only inside `compiled_kernels`


def kernel(name: str) -> Callable:
    """The kernel to call: the compiled one inside `compiled_kernels`, else numba's."""
    return _active.get(name) or jit_kernel(name)


@contextlib.contextmanager
def compiled_kernels(cache: Path, *, compile_missing: bool = True, on_compile: Callable[[], None] | None = None,
                     on_failure: Callable[[str], None] | None = None) -> Iterator[Status]:
    """While inside, `kernel()` serves the compiled kernels from `cache` (compiled there first,
    once, when `compile_missing`; `on_compile` is called before that compile, to say so, and
    `on_failure(reason)` after it if it failed). If they cannot be had, the status says why and
    numba's dispatchers run, with the same output."""
    from mixer.kernels.aot import store

    k = store.key()
    folder = Path(cache) / k
    status, loaded = Status(active=False, reason="not compiled yet"), store.load(folder, k)
    if loaded is None and compile_missing:
        marker = store.failed(Path(cache), k)
        if marker.is_file():
            status = Status(active=False, reason=marker.read_text().strip() or "the compile failed")
        else:
            if on_compile is not None:
                on_compile()
            reason = store.compile_into(Path(cache), k)
            if reason is not None and on_failure is not None:
                on_failure(reason)
            loaded = store.load(folder, k) if reason is None else None
            status = Status(active=False, compiled=reason is None, reason=reason or "compiled, but not loadable")
    if loaded is not None:
        module, table = loaded
        dispatch = {name: _Dispatch(name, {from_json(key): getattr(module, symbol) for symbol, key in variants})
                    for name, variants in table.items() if name in HOMES}
        status = Status(active=True, compiled=status.compiled)
    before = dict(_active)
    if loaded is not None:
        _active.update(dispatch)
    try:
        yield status
    finally:
        _active.clear()
        _active.update(before)
