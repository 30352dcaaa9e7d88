"""Who reads which sequence: the split of a stream over ranks and DataLoader workers.

Pure arithmetic on sequence numbers, shared by `MixtureStream` (shards) and `MixtureSampler`
(corpus), so both split the same stream the same way.

Ranks: rank r of W takes the contiguous range ``[N*r//W, N*(r+1)//W)`` of the N sequences.
`drop_remainder` (the default) trims N to a multiple of W so all ranks get the same count
and DDP never waits on a rank with one step fewer; without it sizes differ by at most one.
Contiguous ranges keep each rank's reads to 1/W of the shards; every contiguous window of the
plan's stream holds each domain within a document of its share, so each rank's batches are
as well mixed as the whole stream.

Elastic resumption: a pass reads a *pool*, sorted global (first, count) runs (the whole
stream, ``[(0, N)]``, unless resumed on another world size), and the ranks split the pool's
positions as above. Resumed with W' ranks after each of W ranks consumed c sequences, the
new pool is the old one less those W*c sequences (`remaining_pool`), in stream order, split
over the W' ranks: no sequence is read twice and none is lost but a new remainder.

Workers: from the rank's resume point `start`, the rank's remaining sequences are cut into
blocks of `batch_size` and block i goes to worker ``i % num_workers``. A DataLoader over an
IterableDataset asks its workers for batches round-robin (worker 0, 1, .., 0, ..) and builds
each batch from `batch_size` consecutive items of one worker, so batch i is block i: the
order the training loop sees does not depend on the number of workers.
"""
from __future__ import annotations

import numpy as np

from mixer.core.errors import MixerError


def check_split(rank: int, world_size: int, batch_size: int) -> None:
    if not isinstance(world_size, int) or world_size < 1:
        raise MixerError(f"world_size {world_size!r}: must be an integer >= 1")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise MixerError(f"rank {rank!r}: must be an integer in [0, world_size={world_size})")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise MixerError(f"batch_size {batch_size!r}: must be an integer >= 1 (the DataLoader's batch_size)")


def rank_range(num_sequences: int, rank: int, world_size: int, drop_remainder: bool = False) -> tuple[int, int]:
    """Global sequence numbers [lo, hi) of one rank."""
    n = num_sequences // world_size * world_size if drop_remainder else num_sequences
    return n * rank // world_size, n * (rank + 1) // world_size


def pool_positions(pool: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Global (first, count) runs of the pool's positions [lo, hi)."""
    ends = np.cumsum(pool[:, 1])
    starts = ends - pool[:, 1]
    out = []
    i = int(np.searchsorted(ends, lo, side="right"))
    while lo < hi and i < len(pool):
        take = min(hi, int(ends[i])) - lo
        out.append((int(pool[i, 0]) + lo - int(starts[i]), take))
        lo += take
        i += 1
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def rank_runs(pool: np.ndarray, rank: int, world_size: int, drop_remainder: bool) -> np.ndarray:
    """Global (first, count) runs of one rank's share of the pool."""
    return pool_positions(pool, *rank_range(int(pool[:, 1].sum()), rank, world_size, drop_remainder))


def remaining_pool(pool: np.ndarray, world_size: int, drop_remainder: bool, consumed: int) -> np.ndarray:
    """The pool less what `world_size` ranks took after each consumed `consumed` of its share
    (all alike: DDP steps every rank together), in stream order."""
    m = int(pool[:, 1].sum())
    keep, at = [], 0
    for r in range(world_size):
        lo, hi = rank_range(m, r, world_size, drop_remainder)
        keep.append((at, lo))
        at = lo + min(consumed, hi - lo)
    keep.append((at, m))
    runs = [pool_positions(pool, a, b) for a, b in keep if b > a]
    return merge_runs(np.concatenate(runs) if runs else np.zeros((0, 2), np.int64))


def merge_runs(runs: np.ndarray) -> np.ndarray:
    out: list[list[int]] = []
    for first, count in runs.tolist():
        if out and out[-1][0] + out[-1][1] == first:
            out[-1][1] += count
        elif count:
            out.append([first, count])
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def to_global(local: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Rank-local (position, count) runs as global (first, count) runs through the rank's
    global `runs` (a run may split where the rank's runs do)."""
    if len(runs) == 1:
        out = local.copy()
        out[:, 0] += runs[0, 0]
        return out
    return merge_runs(np.concatenate([pool_positions(runs, a, a + c) for a, c in local.tolist()] or
                                     [np.zeros((0, 2), np.int64)]))


def worker_runs(length: int, start: int, batch_size: int, worker: int, num_workers: int,
                skip: int = 0) -> np.ndarray:
    """int64[k, 2] (first, count) runs of rank-local positions that one worker yields, in
    order: the blocks ``start + i*batch_size ..`` with ``i % num_workers == worker``, less the
    first `skip` positions (those already yielded)."""
    if not 0 <= start <= length:
        raise MixerError(f"resume position {start} is outside this rank's 0..{length} sequences")
    first = np.arange(start + worker * batch_size, length, num_workers * batch_size, dtype=np.int64)
    count = np.minimum(first + batch_size, length) - first
    if skip:
        if skip > int(count.sum()):
            raise MixerError(f"resume state says worker {worker} yielded {skip} sequences, more than its "
                             f"{int(count.sum())}; the state belongs to another stream or split")
        done = np.cumsum(count)
        k = int(np.searchsorted(done, skip, side="right"))  # runs fully skipped
        first, count = first[k:].copy(), count[k:].copy()
        if len(first):
            cut = skip - (int(done[k - 1]) if k else 0)
            first[0] += cut
            count[0] -= cut
    return np.stack([first, count], axis=1) if len(first) else np.zeros((0, 2), np.int64)


def unit_tasks(runs: np.ndarray, bounds: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Group global (first, count) runs, in increasing order, by read unit (a shard): returns
    [(unit, int64[m, 2] runs clipped to that unit)], the units in the order they are needed,
    touching runs merged. `bounds` is int64[U + 1], unit u holding sequences bounds[u]..bounds[u+1].
    Vectorised: a pass plans one run per batch (thousands), so a Python loop over them costs
    as much as widening a shard."""
    runs = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
    runs = runs[runs[:, 1] > 0]
    if not len(runs):
        return []
    first, end = runs[:, 0], runs[:, 0] + runs[:, 1]
    head = np.ones(len(runs), dtype=bool)  # a run that does not continue the one before it
    head[1:] = first[1:] != end[:-1]
    first, end = first[head], end[np.r_[np.flatnonzero(head)[1:] - 1, len(runs) - 1]]
    lo = np.searchsorted(bounds, first, side="right") - 1  # the unit of each run's first and last sequence
    hi = np.searchsorted(bounds, end - 1, side="right") - 1
    k = hi - lo + 1  # pieces of each run, one per unit it spans
    which = np.repeat(np.arange(len(first)), k)
    unit = lo[which] + np.arange(len(which)) - np.repeat(np.cumsum(k) - k, k)
    a = np.maximum(first[which], bounds[unit])
    b = np.minimum(end[which], bounds[unit + 1])
    pieces = np.stack([a, b - a], axis=1)
    cut = np.flatnonzero(unit[1:] != unit[:-1]) + 1
    return [(int(unit[i]), p) for i, p in zip(np.r_[0, cut], np.split(pieces, cut))]


def split_runs(runs: np.ndarray, rows: int) -> list[np.ndarray]:
    """Cut (first, count) runs, in order, into groups of `rows` rows (the last may hold fewer)."""
    groups: list[np.ndarray] = []
    cur: list[list[int]] = []
    have = 0
    for first, count in runs.tolist():
        while count:
            take = min(count, rows - have)
            cur.append([first, take])
            first, count, have = first + take, count - take, have + take
            if have == rows:
                groups.append(np.array(cur, dtype=np.int64))
                cur, have = [], 0
    if cur:
        groups.append(np.array(cur, dtype=np.int64))
    return groups


def deal_chunks(runs: np.ndarray, bounds: np.ndarray, workers: int, part_rows: int,
                chunk_rows: int, lead: int = 0) -> list[tuple[int, int, np.ndarray]]:
    """How `MixtureFeed.loader()` shares a rank's global (first, count) `runs` among DataLoader
    workers: [(worker, unit, runs)] of every chunk, in stream order. Each read unit (a shard) is
    cut into parts of at most `part_rows` sequences; the first `lead` parts go to the main
    process (worker -1: it reads them while the workers start), then part i to worker
    ``(i - lead) % workers``; each part is cut into chunks of at most `chunk_rows`. A worker
    decodes only the units it is dealt (all of a unit when it holds one part), and each chunk
    crosses to the main process whole."""
    out: list[tuple[int, int, np.ndarray]] = []
    part = 0
    for unit, unit_runs in unit_tasks(runs, bounds):
        for piece in split_runs(unit_runs, part_rows):
            worker = -1 if part < lead else (part - lead) % workers
            out.extend((worker, unit, chunk) for chunk in split_runs(piece, chunk_rows))
            part += 1
    return out
