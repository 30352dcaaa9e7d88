"""Compile the build's kernels ahead of time into one extension module (numba.pycc), so
that `mixer build-shards` runs them without importing numba: numba's import, its first call's
registries and its cache loads are about 0.35 s of every such command (bench/README.md).

    python -m mixer.kernels.aot.compile OUT_DIR MODULE_NAME

writes OUT_DIR/MODULE_NAME<ext suffix> and OUT_DIR/variants.json (per kernel, each compiled
variant's symbol and argument key). It is run in a process of its own by `store.compile_into`,
so the build's process never imports numba or the compiler. The variants are the argument
types the builds pass (tests/test_kernels_aot.py records them from real builds and fails when
one is missing); any other call runs numba's dispatcher, with the same result.

Compiled as numba compiles the same kernels (nopython, the same error model, no fastmath), for
this machine's CPU (the store's key names it), and releasing the GIL around each call, as
`nogil=True` does: the pycc wrapper holds it unless told otherwise.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _exports() -> list[tuple[str, object, tuple]]:
    """(kernel name, the function to compile, argument types) for every variant."""
    from numba.core import types as t

    from mixer.kernels import blend, edf, gather, interleave, pack, permute, select, targets

    def arr(dtype, ndim=1, readonly=False):
        return t.Array(dtype, ndim, "C", readonly=readonly)

    i8, u8, f8 = arr(t.int64), arr(t.uint64), arr(t.float64)
    plan_segments = t.Tuple((arr(t.int32, readonly=True), arr(t.int64, readonly=True), arr(t.int64, readonly=True),
                             arr(t.int64, readonly=True), arr(t.int32, readonly=True)))

    def gather_frame6(addresses, segments, window, eos, out, dom_out):  # the defaults of ahead and lines
        gather.gather_frame(addresses, segments, window, eos, out, dom_out)

    def blend_items4(w, counts, out_dom, out_pos):  # the default of lanes
        return blend.blend_items(w, counts, out_dom, out_pos)

    i4, ro = arr(t.int32), {"readonly": True}

    out = [("permutation", permute.permutation, (t.int64, t.uint64)),
           ("stream_key", permute.stream_key, (t.uint64, t.uint64, t.uint64)),
           ("select_causal", select.select_causal, (i8, i8, t.int64)),
           ("select_causal_first_passes", select.select_causal_first_passes, (i8, i8, i8, t.uint64, u8)),
           ("largest_remainder", targets.largest_remainder, (f8, t.int64)),
           ("midpoint_keys", interleave.midpoint_keys, (i8, i8, f8)),
           ("lane_bounds", interleave.lane_bounds, (f8, i8, t.int64))]
    for dom in (t.int16, t.int32):
        out.append(("merge_lanes", interleave.merge_lanes, (f8, i8, arr(t.int64, 2), arr(dom), i8)))
    for values in (t.uint16, t.uint32):
        for side in (t.uint8, t.uint16):
            out.append(("gather_frame", gather_frame6,
                        (i8, plan_segments, t.UniTuple(t.int64, 3), t.int64, arr(values), arr(side))))
    # A masked-LM build: its selection, orders, frames and the address-ordered copy.
    out += [("select_mlm", select.select_mlm, (i8, i8, t.int64, t.int64)),
            ("smallest_feasible_items", edf.smallest_feasible_items, (i8, i4, i8)),
            ("blend_items", blend_items4, (f8, i8, i4, i8)),
            ("address_order", gather.address_order, (arr(t.int32, **ro), arr(t.int64, **ro))),
            ("sort_pieces", gather.sort_pieces, (i4, i8, i8, i8))]
    for readonly in (False, True):
        out.append(("clip_pieces", pack.clip_pieces, (arr(t.int64, readonly=readonly), arr(t.int64, readonly=readonly),
                                                      arr(t.int64, readonly=readonly), arr(t.int32, readonly=readonly),
                                                      t.int64, t.int64, t.int64, t.int64)))
    for values in (t.uint16, t.uint32):
        out.append(("gather_pieces", gather.gather_pieces, (arr(values, **ro), i8, i8, i8, t.int64, t.int64,
                                                            arr(values))))
        for side in (t.uint8, t.uint16):
            out.append(("mlm_frame", pack.mlm_frame, (arr(t.int64, **ro), arr(t.int32, **ro), t.int64, t.int64,
                                                      t.UniTuple(t.int64, 3), arr(values), arr(side))))
    return out


def compile_module(out_dir: Path, name: str) -> dict:
    """Compile every variant into out_dir/name.so (the platform's suffix) and write variants.json;
    returns the variants table ({kernel: [[symbol, key], ...]})."""
    import llvmlite.binding as llvm
    import numba
    import numba.pycc.compiler as pycc_compiler
    from numba.pycc import CC

    from mixer.kernels.aot.keys import numba_key

    class _NogilFlags(pycc_compiler.Flags):  # pycc builds its flags itself; this is the one way to set one
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    cc = CC(name)
    cc.output_dir = str(out_dir)
    cc.target_cpu = llvm.get_host_cpu_name()
    table: dict[str, list] = {}
    for i, (kernel, fn, args) in enumerate(_exports()):
        dispatcher = fn if isinstance(fn, numba.core.dispatcher.Dispatcher) else numba.njit(fn)
        dispatcher.compile(args)  # its return type, as numba's JIT infers it
        sig = dispatcher.overloads[args].signature
        symbol = f"{kernel}__{i}"
        cc.export(symbol, sig)(dispatcher.py_func)
        table.setdefault(kernel, []).append([symbol, [numba_key(a) for a in args]])
    saved = pycc_compiler.Flags
    pycc_compiler.Flags = _NogilFlags
    try:
        cc.compile()
    finally:
        pycc_compiler.Flags = saved
    (out_dir / "variants.json").write_text(json.dumps({"module": name, "kernels": table}, sort_keys=True))
    return table


def main(argv: list[str]) -> int:
    out_dir, name = Path(argv[0]), argv[1]
    os.makedirs(out_dir, exist_ok=True)
    compile_module(out_dir, name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
