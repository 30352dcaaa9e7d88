"""Tokens for any range of a plan's sequences, straight from the memory-mapped corpus.

    sources = open_sources(corpus_dir, plan)
    tokens, domains = gather_sequences(plan, sources, first=0, count=8)   # [8, seq_len] each

`build-shards` writes exactly these rows, shard after shard; a sampler that needs no files
calls the same function for the rows it wants. Causal rows come from one pass in stream order
(`mixer.kernels.gather.gather_frame`: content, EOS and domain ids written front to back, each
segment's source lines requested a few segments ahead), the window cut into `threads` ranges
of equal tokens that run side by side (the kernels release the GIL). Masked-LM rows copy their
pieces in source-address order (`gather_pieces`).
"""
from __future__ import annotations

import mmap
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from mixer.core.errors import MixerError
from mixer.core.paths import normpath
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.formats.shards import sidecar_dtype
from mixer.shards.plan import MixturePlan

_LARGE_WINDOW = 16  # windows of at least 1/16 of the plan's segments use its address order
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool_after_fork() -> None:
    """A forked child (a DataLoader worker) inherits the pool object but not its threads, so
    work submitted there would never run: start a fresh pool in the child on first use."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mixer-gather")
        return _POOL


@dataclass(frozen=True)
class CorpusSources:
    """The values buffer (zero-copy memory map) of every part a plan reads, by global part id."""

    corpus_dir: Path
    values: tuple[np.ndarray, ...]
    # where each part's values start, for the stream-order gather (recomputed in a copy made in
    # another process, whose buffers live elsewhere)
    addresses: np.ndarray = field(init=False, repr=False, compare=False)
    # the parts' one dtype when every part is contiguous (the stream-order gather reads them by
    # address); None otherwise, and the gather copies pieces instead
    dtype: np.dtype | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", np.array([v.__array_interface__["data"][0] for v in self.values],
                                                       dtype=np.int64))
        dtypes = {v.dtype for v in self.values}
        uniform = len(dtypes) == 1 and all(v.flags.c_contiguous for v in self.values)
        object.__setattr__(self, "dtype", dtypes.pop() if uniform else None)

    def __reduce__(self):
        return (CorpusSources, (self.corpus_dir, self.values))


def open_sources(corpus: Corpus | str | Path, plan: MixturePlan) -> CorpusSources:
    """Memory-map the parts a plan reads; the corpus must be the one the plan was built from."""
    corpus = as_corpus(corpus)
    corpus_dir = corpus.folder
    if corpus.sha256 != plan.corpus_sha256:
        raise MixerError(f"{corpus_dir}/corpus.json differs from the corpus this plan was built from "
                         f"(sha256 {plan.corpus_sha256[:12]}…); rebuild the plan for this corpus")
    domains = corpus.manifest.domains
    read = [plan.domains[i] for i in sorted(set(plan.part_domain.tolist()))]  # in order (np.unique: numpy.ma)
    splits = corpus.splits(read, "train")
    # the plan names parts as the manifest does, normalised (`build_plan`): compared as strings,
    # all at once (a relative Path per part, or a comparison each, costs more at 10,000 parts)
    names = [normpath(f) for d in read for f in domains[d].splits["train"].files]
    parts = [part for d in read for part in splits[d].parts]
    if names != list(plan.parts):
        k = next((k for k, (a, b) in enumerate(zip(names, plan.parts)) if a != b), len(plan.parts))
        if k < len(names):  # (the first part not the plan's, or the first beyond its parts)
            raise MixerError(f"{parts[k].path}: not the part the plan expects; rebuild the plan for this corpus")
        raise MixerError(f"{corpus_dir}: the plan reads {len(plan.parts)} Arrow parts but the corpus has "
                         f"{len(names)}; rebuild the plan for this corpus")
    values = [part.values for part in parts]
    return CorpusSources(corpus_dir=corpus_dir, values=tuple(values))


def _segments_for(plan: MixturePlan, first: int, count: int) -> tuple[int, int, int, int]:
    """Window [r0, r1) of stream positions and segments j0..j1 that touch it."""
    r0, r1 = first * plan.seq_len, (first + count) * plan.seq_len
    if plan.objective.packs_documents:
        j0 = max(int(np.searchsorted(plan.seg_dst, r0, side="right")) - 1, 0)
        j1 = int(np.searchsorted(plan.seg_dst, r1, side="left"))
    else:
        j0, j1 = first, first + count
    return r0, r1, j0, j1


def fresh_buffer(shape: tuple[int, int], dtype) -> np.ndarray:
    """A `[rows, seq_len]` array in fresh anonymous memory, in 4 KiB pages: what the gather
    writes when no buffer is given, and build-shards' shard buffers. numpy asks the kernel for
    transparent huge pages for arrays this large (madvise), and on the VMs measured here the
    first touch of a huge page was slow: a 64M-token build spent 0.48 s of system time with
    numpy's buffers against 0.18 s with these (medians of 6 alternated runs, 1 CPU; no compaction
    stall counted in /proc/vmstat, 21 GB free; an earlier day with less free memory: 0.62 against
    0.18). The bytes written are the same."""
    n = shape[0] * shape[1]
    flags = getattr(mmap, "MAP_PRIVATE", None), getattr(mmap, "MAP_ANONYMOUS", None)
    if None in flags or n == 0:
        return np.empty(shape, dtype)
    memory = mmap.mmap(-1, n * np.dtype(dtype).itemsize, flags=flags[0] | flags[1])
    return np.frombuffer(memory, dtype, count=n).reshape(shape)  # (the array keeps the mapping alive)


def gather_sequences(plan: MixturePlan, sources: CorpusSources, first: int, count: int, *,
                     out: np.ndarray | None = None, domains_out: np.ndarray | None = None,
                     threads: int = 2, domains: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows first..first+count of the plan's stream.

    Returns (tokens, domains): `[count, seq_len]` arrays of the plan's dtype and the sidecar's
    dtype (uint8 up to 255 domains, else uint16: `sidecar_dtype`; the domain index, into
    `plan.domains`, of every position; EOS, [CLS]/[SEP]/[PAD] take their
    row's or document's domain). `out` / `domains_out` may be given to reuse buffers; with
    `domains=False` no domain array is written and the second value is None. A given buffer
    that is not C-contiguous (a column range of a larger batch) is filled through a contiguous
    one and a copy: the kernels write by address.
    """
    if not (0 <= first and count >= 0 and first + count <= plan.num_sequences):
        raise MixerError(f"sequences {first}..{first + count} are outside the plan's 0..{plan.num_sequences}")
    shape = (count, plan.seq_len)
    out = fresh_buffer(shape, plan.dtype) if out is None else out
    side = sidecar_dtype(len(plan.domains))
    if domains:
        domains_out = fresh_buffer(shape, side) if domains_out is None else domains_out
        if domains_out.shape != shape or domains_out.dtype != side:
            raise ValueError(f"domains_out must be {shape} of {side}")
        dflat = domains_out.reshape(-1)
    else:
        domains_out, dflat = None, np.empty(0, side)  # the frame kernels skip an empty sidecar
    if out.shape != shape or out.dtype != np.dtype(plan.dtype):
        raise ValueError(f"out must be {shape} of {plan.dtype}")
    for name, given in (("out", out), ("domains_out", domains_out)):
        if given is not None and not given.flags.writeable:
            raise ValueError(f"{name} is read-only; pass a writable array (or none: a fresh one is made)")
    if not (out.flags.c_contiguous and (domains_out is None or domains_out.flags.c_contiguous)):
        # (reshape(-1) of such an array is a copy: the rows would be written there, not into `out`)
        tokens, ids = gather_sequences(plan, sources, first, count, threads=threads, domains=domains)
        out[...] = tokens
        if domains_out is not None:
            domains_out[...] = ids
        return out, domains_out
    flat = out.reshape(-1)
    r0, r1, j0, j1 = _segments_for(plan, first, count)

    if plan.objective.packs_documents and sources.dtype == out.dtype:
        _causal_rows(plan, sources, (r0, r1), (j0, j1), threads, flat, dflat)
        return out, domains_out
    from mixer.kernels.aot import kernel  # (compiled inside `mixer build-shards`)

    clip_pieces, gather_pieces = kernel("clip_pieces"), kernel("gather_pieces")

    if plan.objective.packs_documents:  # parts of another dtype, or strided: frame, then copy pieces
        kernel("causal_frame")(plan.seg_dst, plan.seg_count, plan.seg_domain, (j0, j1), r0, plan.eos_id, flat, dflat)
    else:
        kernel("mlm_frame")(plan.seg_count, plan.seg_domain, first, plan.seq_len, tuple(plan.special), flat, dflat)

    if (j1 - j0) * _LARGE_WINDOW >= plan.num_segments:
        # A large window (a shard, the whole stream): scan the plan's address-ordered segments.
        a_dst, a_cnt, a_src, a_part = plan.address_ordered
        part, src, dst, cnt = clip_pieces(a_dst, a_cnt, a_src, a_part, 0, len(a_dst), r0, r1)
    else:  # a few rows: sorting their own pieces is cheaper than scanning every segment
        part, src, dst, cnt = kernel("sort_pieces")(*clip_pieces(plan.seg_dst, plan.seg_count, plan.seg_src,
                                                                 plan.seg_part, j0, j1, r0, r1))
    # Split the address-ordered pieces into `threads` runs of about equal tokens, then each run
    # into stretches of one part (one kernel call per stretch).
    cum = np.cumsum(cnt)
    total = int(cum[-1]) if len(cum) else 0
    cuts = [0] + [int(np.searchsorted(cum, total * t // threads, side="left")) for t in range(1, threads)] + [len(cnt)]
    cuts = sorted(set(cuts))

    def run(lo: int, hi: int) -> None:
        while lo < hi:
            p = part[lo]
            end = lo + int(np.searchsorted(part[lo:hi], p, side="right"))
            gather_pieces(sources.values[p], src, dst, cnt, lo, end, flat)
            lo = end

    if len(cuts) <= 2 or threads <= 1:
        run(0, len(cnt))
    else:
        futures = [_pool().submit(run, a, b) for a, b in pairwise(cuts)]
        for f in futures:
            f.result()
    return out, domains_out


def _causal_rows(plan: MixturePlan, sources: CorpusSources, rows: tuple[int, int], segments: tuple[int, int],
                 threads: int, flat: np.ndarray, dflat: np.ndarray) -> None:
    """Stream positions `rows` = (r0, r1), segments `segments` = (j0, j1), into flat / dflat:
    `threads` ranges of segments of about equal tokens, each one `gather_frame` pass (they write
    disjoint positions)."""
    from mixer.kernels.aot import kernel

    (r0, r1), (j0, j1) = rows, segments
    arrays = (plan.seg_part, plan.seg_src, plan.seg_dst, plan.seg_count, plan.seg_domain)
    gather_frame = kernel("gather_frame")  # compiled ahead of time inside `mixer build-shards`

    def run(a: int, b: int) -> None:
        gather_frame(sources.addresses, arrays, (a, b, r0), plan.eos_id, flat, dflat)

    if threads <= 1 or j1 - j0 < 1 << 10:
        run(j0, j1)
        return
    cuts = [j0] + [max(j0, min(j1, int(np.searchsorted(plan.seg_dst, r0 + (r1 - r0) * t // threads))))
                   for t in range(1, threads)] + [j1]
    futures = [_pool().submit(run, a, b) for a, b in pairwise(cuts) if b > a]
    for f in futures:
        f.result()
