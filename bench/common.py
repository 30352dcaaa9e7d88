"""What every benchmark shares: timing, the machine record, realistic token ids.

A figure is only worth comparing when both sides were timed the same way on a known machine,
so every result JSON carries `machine()` (load average before and after, CPU count, thread
settings, package versions) and every ratio comes from `timed` on both sides (median and best
of the same number of runs).
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from typing import Any, Callable

import numpy as np

PACKAGES = ("numpy", "numba", "zstandard", "xxhash", "pyarrow", "torch", "datasets", "megatron-core",
            "mosaicml-streaming", "tokenizers", "langid", "ray")
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_model() -> str | None:
    """The CPU's model name and its widest vector extension, saved with every result: the same code
    and versions measured 1.11x of Megatron's interleave one day and 0.73x another, on machines
    that record nothing else to tell them apart."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read(1 << 16).splitlines()
    except OSError:
        return platform.processor() or None
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), None)
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    widest = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), None)
    return f"{name} ({widest})" if widest else name


def machine(threads: dict[str, int] | None = None) -> dict[str, Any]:
    """The facts a reader needs to judge a figure: load, cores, thread counts, versions."""
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            versions[p] = None
    return {"cpus": os.cpu_count(), "loadavg": list(os.getloadavg()), "python": platform.python_version(),
            "machine": platform.machine(), "cpu_model": cpu_model(), "versions": versions,
            "thread_env": {v: os.environ.get(v) for v in THREAD_VARS}, "threads": threads or {}}


def bytecode_as_installed() -> dict[str, Any]:
    """Compile mixer's modules to bytecode before whole commands are timed, as `pip install`
    does (and an editable install's first import does). Where the environment says not to write
    bytecode (PYTHONDONTWRITEBYTECODE, set on some shared machines), every fresh `mixer` process
    would otherwise compile ~40 modules from source (~30 ms at one thread): a cost no user with
    an installed package pays. What was done is saved with the result."""
    import compileall

    import mixer

    root = os.path.dirname(mixer.__file__)
    ok = compileall.compile_dir(root, quiet=1)
    return {"package": root, "compiled": bool(ok),
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE")}


def timed(fn: Callable[[], Any], repeats: int) -> tuple[dict[str, Any], Any]:
    """Run `fn` `repeats` times; ({median_s, best_s, runs_s}, last result). Ratios quote medians:
    the machine is shared, and the median is what a user sees; the best is kept beside it."""
    runs, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(runs), "best_s": min(runs), "runs_s": runs}, out


def goal(ratio: float, target: float) -> str:
    """'met' or 'MISSED', printed beside every ratio that has a goal."""
    return f"goal >= {target:g}x {'met' if ratio >= target else 'MISSED'}"


def zipf_map(vocab: int, s: float = 1.1, seed: int = 7) -> Callable[[int, np.ndarray, int], np.ndarray]:
    """A `write_synthetic_corpus` token_map giving Zipf-distributed ids (rank r has frequency
    ~ r^-s, as BPE token frequencies roughly do). As in a BPE vocabulary, frequent tokens have
    low ids (merges are learned in frequency order): rank r maps to an id near r, shuffled
    within windows of ~256 ids, differently per domain. Uniform random ids do not compress at
    all, which flatters every compression figure."""
    ranks = np.arange(1, vocab, dtype=np.float64)
    cdf = np.cumsum(ranks ** -s)
    cdf /= cdf[-1]

    def token_map(domain: int, ids: np.ndarray, eos: int) -> np.ndarray:
        perm = np.argsort(np.arange(eos) + np.random.default_rng(seed + domain).uniform(0, 256, eos), kind="stable")
        u = ids.astype(np.float64) / eos
        rank = np.minimum(np.searchsorted(cdf, u, side="right"), eos - 1)
        return perm[rank]

    return token_map
