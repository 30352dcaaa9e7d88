"""The stages of a plan that follows a mixture schedule (`mixer.formats.schedule`), and the
selection that walks each domain's one permutation across them.

A schedule's stage k ends at `until_tokens[k]`; the plan ends it at sequence
`until_tokens[k] // seq_len` (the budget rule of one mixture, applied to every boundary), so
every stage is a whole number of sequences and a stage boundary never falls inside a row. Each
stage is planned as one mixture is (largest-remainder targets over the stage's own tokens,
selection, interleave), and the stages are concatenated. Selection does not restart per stage:
domain `d` keeps one cursor into its permutation (epoch, position), and stage k takes the
documents after the ones stage k - 1 took. The last document a stage takes is cut as one
mixture's last is; the next stage starts at the next document, so no document appears in two
stages (with `max_epochs` 1). A one-stage schedule is exactly the one-mixture plan.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mixer.core.errors import MixerError
from mixer.formats.corpus import DomainSplit
from mixer.kernels.aot import kernel


@dataclass(frozen=True)
class PlanStage:
    """Stage of a plan: sequences [first_sequence, first_sequence + sequences), drawn at
    `weights` (domain order of the plan) with exact `targets` (tokens with EOS, or mlm sequences)."""

    first_sequence: int
    sequences: int
    until_tokens: int  # the schedule's boundary, before rounding down to whole sequences
    weights: tuple[float, ...]
    targets: tuple[int, ...]


def stage_bounds(until: Sequence[int], seq_len: int, tokens: int) -> np.ndarray:
    """int64[S + 1]: the sequence at which each stage starts, then the end; stages after `tokens`
    (rounded down to sequences) are dropped and the last kept one ends there."""
    if tokens > until[-1]:
        raise MixerError(f"--tokens {tokens} is beyond the schedule's last stage (until_tokens {until[-1]}); "
                         "lower --tokens or extend the schedule")
    end = tokens // seq_len
    bounds = [0]
    for k, u in enumerate(until):
        b = min(u // seq_len, end)
        if b <= bounds[-1]:
            raise MixerError(f"schedule stage {k} (until_tokens {u}) spans less than one sequence of "
                             f"--seq-len {seq_len} after rounding to whole sequences; merge it with a neighbour "
                             "or use fewer, longer stages")
        bounds.append(b)
        if b == end:
            break
    return np.array(bounds, np.int64)


def stage_label(k: int, bounds: np.ndarray, seq_len: int) -> str:
    return f"schedule stage {k} (tokens {int(bounds[k]) * seq_len:,} to {int(bounds[k + 1]) * seq_len:,})"


def check_stage_sizes(name: str, targets: np.ndarray, units: int, max_epochs: float, bounds: np.ndarray,
                      seq_len: int, what: str) -> None:
    """The first stage by whose end domain `name` has needed more than `max_epochs` passes over
    its `units` (tokens with one EOS per document, or documents), named in one line."""
    cum = np.cumsum(targets)
    over = np.flatnonzero(cum > (max_epochs * units if units else 0))
    if over.size:
        k = int(over[0])
        raise MixerError(f"{stage_label(k, bounds, seq_len)}: domain {name!r} needs {int(cum[k])} {what} by the end "
                         f"of this stage but holds {units} ({max_epochs:g} pass{'es' if max_epochs != 1 else ''} "
                         "allowed); lower its weights or the budget, or allow further epochs (--max-epochs F)")


def select_stages(lengths: np.ndarray, targets: np.ndarray, *, key_of: Callable[[int], np.uint64],
                  causal: bool, max_content: int, max_epochs: float,
                  where: Callable[[int], str]) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """(docs, counts) of one domain for each stage, and the permutation passes started.

    `targets[k]`: what stage k takes; `key_of(epoch)`: the permutation key of each pass;
    `where(k)`: stage k and the domain, for the error when a pass past `max_epochs` is needed
    (only possible across stages, where each stage's cut document wastes its tail)."""
    n = len(lengths)
    allowed = math.inf if math.isinf(max_epochs) else math.ceil(max_epochs)
    epoch, pos, used = 0, 0, 0
    perm = None
    out = []
    for k, target in enumerate(targets.tolist()):
        docs, counts = [], []
        need = int(target)
        while need > 0:
            if pos == n or perm is None:
                if perm is not None:
                    epoch, pos = epoch + 1, 0
                if epoch >= allowed:
                    raise MixerError(f"{where(k)} runs out of documents (all {allowed} allowed passes taken); "
                                     "lower its weights or the budget, or allow further epochs (--max-epochs F)")
                perm = kernel("permutation")(n, key_of(epoch))
            rest = perm[pos:]
            if causal:
                d, c, taken = kernel("select_causal")(lengths, rest, need)
            else:
                d, c = kernel("select_mlm")(lengths, rest, need, max_content)
                taken = len(d)
            docs.append(d)
            counts.append(c)
            pos += len(d)
            need -= int(taken)
            used = epoch + 1
        if not docs:
            out.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
        elif len(docs) == 1:  # one pass served the stage (the usual case): no copy
            out.append((docs[0], counts[0]))
        else:
            out.append((np.concatenate(docs), np.concatenate(counts)))
    return out, used


def document_table(splits: Sequence[DomainSplit | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every document of `splits`, domain after domain (None: a domain with no documents here):
    its token count (int64), where each domain's documents start (`dom_start`, one more than
    `splits`), and where the document's tokens are: its part, numbered over all the parts in
    order (int32), and the offset of its first token in that part's values (int64). The same
    lengths as each split's `lengths()` and the same offsets as its parts', from one
    concatenation of all parts' offsets instead of array operations per domain (10,000 domains)."""
    parts = [p for s in splits if s is not None for p in s.parts]
    dom_start = np.zeros(len(splits) + 1, np.int64)
    np.cumsum([0 if s is None else sum(len(p.doc_ids) for p in s.parts) for s in splits], out=dom_start[1:])
    if not parts:
        return np.zeros(0, np.int64), dom_start, np.zeros(0, np.int32), np.zeros(0, np.int64)
    offsets = np.concatenate([p.offsets for p in parts]).astype(np.int64, copy=False)
    per_part = np.array([len(p.offsets) for p in parts], np.int64)
    keep = np.ones(len(offsets), bool)
    keep[np.cumsum(per_part) - 1] = False  # (each part's last offset ends its last document)
    starts = offsets[keep]
    ends = offsets[1:][keep[:-1]]
    part = np.repeat(np.arange(len(parts), dtype=np.int32), per_part - 1)
    return ends - starts, dom_start, part, starts


def first_passes(lengths: np.ndarray, dom_start: np.ndarray, names: Sequence[str], targets: np.ndarray, seed: int,
                 domain_hash: Callable[[str], int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{domain index: (docs, counts)} of every domain of `names` (causal, one stage) whose target
    its first permutation pass meets, selected in one kernel call: exactly what `select_stages`
    gives such a domain. `lengths`, `dom_start`: every domain's documents (`document_table`).
    Domains left out (a target of 0, or one pass short) go through `select_stages`."""
    hashes = np.array([domain_hash(name) for name in names], np.uint64)
    docs, counts, picked, taken = kernel("select_causal_first_passes")(lengths, dom_start,
                                                                       np.asarray(targets, np.int64), np.uint64(seed),
                                                                       hashes)
    done = np.flatnonzero((taken == targets) & (targets > 0)).tolist()
    starts, ends = dom_start[done].tolist(), (dom_start[done] + picked[done]).tolist()
    return {i: (docs[a:b], counts[a:b]) for i, a, b in zip(done, starts, ends)}
