"""What numba would type a value as, told without importing numba: the key a call's arguments
must match, exactly, before a kernel compiled ahead of time may run them.

Such a kernel checks nothing itself: given an int32 array where it was compiled for int64, or a
2-D array for a 1-D one, it reads the memory as if it were what it expects (wrong results, or a
crash). So every argument's key is compared with the variant's (tests/test_kernels_aot.py holds
`value_key` to `numba_key(numba.typeof(v))` over many values), and a call that matches no
variant goes to numba's own dispatcher.
"""
from __future__ import annotations

import numpy as np

_INT64 = (-(1 << 63), 1 << 63)


def value_key(v: object) -> tuple | None:
    """The key of one argument, or None where it is not a type this keying knows (then the call
    matches no compiled variant). Arrays: ("a", dtype, ndim, layout, writeable, aligned);
    scalars: ("s", numba's name); tuples: ("t", keys)."""
    t = type(v)
    if t is np.ndarray:
        f = v.flags
        layout = "C" if f.c_contiguous else "F" if f.f_contiguous else "A"
        if not (v.dtype.isnative and f.aligned) or v.dtype.kind not in "biuf":
            return None  # (numba types an unaligned array as an aligned one: left to numba)
        return ("a", v.dtype.str, v.ndim, layout, bool(f.writeable), True)
    if t is int:
        return ("s", "int64") if _INT64[0] <= v < _INT64[1] else None  # numba: uint64 above, then an error
    if t is float:
        return ("s", "float64")
    if t is bool:
        return ("s", "bool")
    if t is tuple:
        keys = tuple(value_key(x) for x in v)
        return None if None in keys else ("t", keys)
    if isinstance(v, np.generic) and t.__module__ == "numpy" and v.dtype.kind in "biuf":
        return ("s", "bool" if v.dtype.kind == "b" else v.dtype.name)
    return None


def call_key(args: tuple) -> tuple | None:
    """The key of a whole call; None if any argument has none."""
    keys = tuple(value_key(a) for a in args)
    return None if None in keys else keys


def numba_key(t) -> tuple:
    """The key of a numba type (at compile time only: this needs numba), to record beside each
    compiled variant. Raises ValueError for a type `value_key` never gives."""
    from numba.core import types
    from numba.np.numpy_support import as_dtype

    if isinstance(t, types.Array):
        dtype = np.dtype(as_dtype(t.dtype))
        if dtype.kind not in "biuf":
            raise ValueError(f"no key for arrays of {t.dtype}")
        return ("a", dtype.str, t.ndim, t.layout, bool(t.mutable), bool(t.aligned))
    if isinstance(t, types.BaseTuple):
        return ("t", tuple(numba_key(x) for x in t))
    if isinstance(t, types.Boolean):
        return ("s", "bool")
    if isinstance(t, (types.Integer, types.Float)):
        return ("s", str(t))
    raise ValueError(f"no key for {t}")


def from_json(obj) -> tuple:
    """A key read back from the variants file (JSON lists) as the tuples `value_key` gives."""
    if isinstance(obj, list):
        return tuple(from_json(x) for x in obj)
    return obj
