"""The numba kernels under the sampler and the shards: pure functions, arrays in and arrays out
(`@njit(cache=True, nogil=True)` via `_jit.py`), importing nothing else of the project."""
