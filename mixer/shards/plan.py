"""The mixture plan: which document, which token range, where in the output stream.

`build_plan(corpus, weights, config)` turns a prepared corpus, a mixture and a token budget into a
`MixturePlan` without touching a token: it reads only document lengths (the Arrow offsets). The plan
is a few arrays of one entry per segment (a document, or the first tokens of the last one a domain
takes), in stream order; `mixer.shards.gather.gather_sequences` turns any range of its sequences
into tokens, so `build-shards` and an in-process sampler produce the same stream from the same plan.

Steps (see docs/sampler.md): largest-remainder targets (`mixer.kernels.targets`); per domain a
seeded counter-based permutation (`mixer.kernels.permute`) walked until the target is met exactly
(`mixer.kernels.select`), with further epochs only up to `max_epochs`; the interleave (causal
documents: the token-level midpoint merge, `mixer.kernels.interleave`; masked-LM rows, equal units
like Megatron's samples: the smallest prefix deviation, `mixer.kernels.edf`, or `blend`); packing
offsets (causal: back to back, one EOS each; masked LM: one document per row).

Schedules (`build_schedule_plan`, `mixer.shards.stages`): a mixture that changes stage by stage is
planned stage after stage, each as one mixture is, with one permutation per domain consumed across
the stages; the stages are concatenated.

Budget rule: the budget is a whole number of sequences. A causal budget that is not a multiple of
`seq_len` is rounded *down* to one (`MixturePlan.budget_tokens`, the requested value kept in
`tokens_requested`); masked LM uses `tokens // seq_len` sequences and counts its targets in them.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import xxhash

from mixer.core.errors import MixerError
from mixer.core.kinds import Objective
from mixer.core.paths import normpath
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.formats.shards import (
    MAX_DOMAINS,  # domain indices fit the widest sidecar dtype, uint16
)
from mixer.formats.weights import validate_weights

INTERLEAVES = ("auto", "midpoint", "edf", "blend")


@dataclass(frozen=True)
class PlanConfig:
    """What to sample. The mixture itself is passed beside it."""

    tokens: int  # requested budget in tokens (rounded down to whole sequences)
    seq_len: int = 1024  # tokens per sequence (row of a shard)
    seed: int = 0  # permutation seed, 0 <= seed < 2**64
    objective: Objective = Objective.CAUSAL  # causal: documents joined by EOS; mlm: [CLS] doc [SEP] [PAD]..
    # The most passes over any domain's data (OLMo's max repetition factor): 1 samples without
    # replacement; above 1 a domain smaller than its target takes further epochs, each a fresh
    # permutation, and one that would need more than the cap is refused by name; math.inf: no cap.
    max_epochs: float = 1.0
    # "auto": causal -> "midpoint" (each domain within half a document of its token share), mlm -> "edf";
    # "edf" on causal: the smallest deviation in documents; "blend" (mlm): Megatron's error at most
    interleave: str = "auto"
    cls_id: int | None = None  # masked-LM specials; None takes `mlm_special_ids(manifest)`
    sep_id: int | None = None
    pad_id: int | None = None

    def __post_init__(self) -> None:
        # Validated where it is built, once: the objective typed (every floor below compares
        # members), the cap, the interleave, the lengths, the seed and the budget checked.
        object.__setattr__(self, "objective", Objective.parse(self.objective))
        object.__setattr__(self, "max_epochs", check_max_epochs(self.max_epochs))
        _check_config(self)


@dataclass(frozen=True)
class MixturePlan:
    """The whole stream, decided. Arrays are read-only; segment arrays are in stream order.

    Segment j copies content tokens ``doc[start : start + count]`` of document `doc` of domain
    `domain[j]` (its train split, documents numbered across parts) to stream position `dst[j]`
    (causal: followed by one EOS; mlm: the row `j`, after its [CLS]). `part[j]` / `src[j]` say
    where those tokens lie: offset `src` of the values buffer of `parts[part]`.
    """

    corpus_sha256: str  # sha256 of corpus.json: sources must match it
    domains: tuple[str, ...]  # domain index -> name (sorted; all corpus domains)
    weights: tuple[float, ...]
    objective: Objective
    seq_len: int
    seed: int
    tokens_requested: int
    budget_tokens: int  # num_sequences * seq_len
    num_sequences: int
    dtype: str  # token dtype of corpus and output
    eos_id: int
    special: tuple[int, int, int] | None  # (cls, sep, pad) for mlm, else None
    max_epochs: float  # the repetition cap the plan was built under (math.inf: none)
    targets: np.ndarray  # int64[K]: tokens (causal, EOS included) or sequences (mlm)
    available_tokens: np.ndarray  # int64[K]: train tokens of each domain (no EOS)
    available_documents: np.ndarray  # int64[K]
    epochs: np.ndarray  # int64[K]: permutation passes started (1 unless repeated; 0 if unused)
    parts: tuple[str, ...]  # global part id -> Arrow file, relative to the corpus folder
    part_domain: np.ndarray  # int32[P]
    seg_domain: np.ndarray  # int32[M]
    seg_doc: np.ndarray  # int64[M]
    seg_start: np.ndarray  # int64[M]
    seg_count: np.ndarray  # int64[M]
    seg_part: np.ndarray  # int32[M]
    seg_src: np.ndarray  # int64[M]
    seg_dst: np.ndarray  # int64[M]
    interleave: str = "midpoint"  # "midpoint" (causal documents) or "edf" (masked-LM rows)
    # A plan that follows a schedule of two or more stages: each stage's sequences, weights and
    # exact targets (`mixer.shards.stages.PlanStage`); `weights` is then the whole run's share.
    # Empty for one mixture (a one-stage schedule is one mixture).
    stages: tuple = ()

    @property
    def num_segments(self) -> int:
        return int(self.seg_domain.shape[0])

    @cached_property
    def address_ordered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(dst, count, src, part) of every segment in source-address order, sorted once per
        plan: a gather over a large window then reads the corpus front to back without a sort
        of its own (the sort is a third of a whole-stream gather's time)."""
        from mixer.kernels.aot import kernel

        order = kernel("address_order")(self.seg_part, self.seg_src)
        return self.seg_dst[order], self.seg_count[order], self.seg_src[order], self.seg_part[order]

    def stream_lengths(self) -> np.ndarray:
        """Stream positions each segment takes: content + EOS (causal) or one row (mlm)."""
        if self.objective.packs_documents:
            return self.seg_count + 1
        return np.full(self.num_segments, self.seq_len, dtype=np.int64)

    def realised(self) -> np.ndarray:
        """int64[K] in target units: tokens with EOS (causal) or sequences (mlm)."""
        units = self.seg_count + 1 if self.objective.packs_documents else np.ones(self.num_segments, np.int64)
        return np.bincount(self.seg_domain, weights=units, minlength=len(self.domains)).astype(np.int64)

    def content_tokens(self) -> np.ndarray:
        """int64[K]: corpus tokens each domain contributes (no EOS / specials / padding)."""
        return np.bincount(self.seg_domain, weights=self.seg_count, minlength=len(self.domains)).astype(np.int64)

    def documents_used(self) -> np.ndarray:
        return np.bincount(self.seg_domain, minlength=len(self.domains)).astype(np.int64)


def domain_hash(name: str) -> int:
    """Stable 64-bit key of a domain name: its permutations do not depend on which other
    domains exist or their order."""
    return xxhash.xxh64_intdigest(name.encode("utf-8"))


def check_max_epochs(value: float) -> float:
    """`value` as a repetition cap (a float, math.inf for none), or a MixerError naming
    `--max-epochs`: below one pass, or NaN, no domain could be sampled."""
    try:
        cap = float(value)
    except (TypeError, ValueError):
        raise MixerError(f"--max-epochs {value!r}: give a number of passes >= 1 (inf: no cap)") from None
    if not cap >= 1:  # NaN fails this too
        raise MixerError(f"--max-epochs {value!r}: must be at least 1 (one pass over each domain; inf: no cap)")
    return cap


def max_epochs_json(value: float) -> float | None:
    """The cap as JSON holds it portably: a float, or null for no cap (JSON has no infinity, and
    Python's `Infinity` is not JSON other readers accept). Cache keys and every JSON file that
    records the cap write it this way."""
    cap = check_max_epochs(value)
    return None if math.isinf(cap) else cap


def _check_config(config: PlanConfig) -> None:
    if config.interleave not in INTERLEAVES:
        raise MixerError(f"--interleave {config.interleave!r}: choose one of {', '.join(INTERLEAVES)}")
    if config.interleave == "blend" and config.objective is not Objective.MLM:  # documents are not equal units
        raise MixerError("--interleave blend: orders masked-LM rows; for causal documents use auto or midpoint")
    min_len = 3 if config.objective is Objective.MLM else 1
    if not isinstance(config.seq_len, int) or config.seq_len < min_len:
        raise MixerError(f"--seq-len {config.seq_len!r}: must be an integer >= {min_len} for {config.objective}")
    if not isinstance(config.seed, int) or not 0 <= config.seed < 2**64:
        raise MixerError(f"--seed {config.seed!r}: must be an integer in [0, 2**64)")
    if not isinstance(config.tokens, int) or config.tokens <= 0:
        raise MixerError(f"--tokens {config.tokens!r}: must be a positive number of tokens")
    if config.tokens < config.seq_len:
        raise MixerError(f"--tokens {config.tokens} is less than one sequence of --seq-len {config.seq_len}; "
                         f"ask for at least {config.seq_len} tokens")


def _too_small(name: str, weight: float, need: int, have_tokens: int, have_docs: int, budget: int,
               config: PlanConfig) -> MixerError:
    if config.objective.packs_documents:
        what = (f"has {have_tokens} tokens in {have_docs} documents ({have_tokens + have_docs} with one EOS each) "
                f"but weight {weight:g} of a {budget}-token budget needs {need}")
    else:
        what = f"has {have_docs} documents but weight {weight:g} needs {need} sequences (one document each)"
    return MixerError(f"domain {name!r} {what}; lower its weight or the budget, or allow further epochs "
                      "(--max-epochs F; max_epochs=F in Python)")


def _key_of(config: PlanConfig, name: str):
    """The permutation key of each pass over domain `name`."""
    from mixer.kernels.aot import kernel

    seed, dom = np.uint64(config.seed), np.uint64(domain_hash(name))
    return lambda epoch: np.uint64(kernel("stream_key")(seed, dom, np.uint64(epoch)))


def build_plan(corpus: Corpus | str | Path, weights: Mapping[str, float], config: PlanConfig,
               weights_source: str = "weights") -> MixturePlan:
    """Validate the corpus, mixture and budget, and decide the whole stream.

    Raises `MixerError` (one line naming the culprit and the fix) for a mixture off the simplex,
    an unknown or missing domain, a domain too small for its target (at `max_epochs` 1) or one
    that would need more passes than `max_epochs`,
    a corrupt Arrow file or a manifest that does not match its files.
    """
    corpus = as_corpus(corpus)  # opened once here when a folder is given; commands pass the handle
    w = validate_weights(weights, corpus.domain_names, source=weights_source)  # left out: 0
    num_seq = config.tokens // config.seq_len
    return _build(corpus, w, [w], np.array([0, num_seq], np.int64), [config.tokens], config)


def build_schedule_plan(corpus: Corpus | str | Path, schedule, config: PlanConfig) -> MixturePlan:
    """The plan that follows `schedule` (a `mixer.formats.schedule.MixtureSchedule`) up to
    `config.tokens` (at most the schedule's last `until_tokens`): stage after stage, each with
    exact per-domain counts and today's interleave, one permutation per domain consumed across
    stages (`mixer.shards.stages`). A one-stage schedule gives exactly `build_plan`'s plan.
    A domain a stage asks more of than it holds is one `MixerError` naming the stage and domain."""

    from mixer.shards.stages import stage_bounds

    corpus = as_corpus(corpus)
    manifest = corpus.manifest
    until = [s.until_tokens for s in schedule.stages]
    bounds = stage_bounds(until, config.seq_len, config.tokens)
    stage_w = []
    for k, stage in enumerate(schedule.stages[:len(bounds) - 1]):
        with warnings.catch_warnings():
            if k:  # the domains a schedule leaves out are named once, for its first stage
                warnings.simplefilter("ignore")
            stage_w.append(validate_weights(stage.weights, manifest.domain_names, source=f"schedule stage {k}"))
    return _build(corpus, stage_w[0], stage_w, bounds, until[:len(bounds) - 1], config)


def _build(corpus: Corpus, w0: dict[str, float], stage_w: list[dict[str, float]], bounds: np.ndarray,
           until: list[int], config: PlanConfig) -> MixturePlan:
    """Decide the stream of `len(stage_w)` stages; stage k fills sequences bounds[k]..bounds[k+1]."""
    from mixer.kernels.aot import kernel
    from mixer.shards import stages as st
    from mixer.shards.midpoint import interleave_midpoint_threaded

    manifest, sha = corpus.manifest, corpus.sha256
    names = tuple(sorted(w0))
    if len(names) > MAX_DOMAINS:
        raise MixerError(f"the corpus has {len(names)} domains; the shard format holds at most {MAX_DOMAINS}")
    W = np.array([[w[d] for d in names] for w in stage_w], dtype=np.float64)
    n_stages = len(stage_w)
    causal = config.objective.packs_documents

    dtype = np.dtype(manifest.token_dtype)
    special = None
    if config.objective is Objective.MLM:
        default = corpus.mlm_special_ids()
        special = (default.cls if config.cls_id is None else config.cls_id,
                   default.sep if config.sep_id is None else config.sep_id,
                   default.pad if config.pad_id is None else config.pad_id)
        top = np.iinfo(dtype).max
        for label, v in zip(("cls", "sep", "pad"), special):
            if not 0 <= v <= top:
                raise MixerError(f"--{label}-id {v} does not fit the corpus token dtype {dtype}; use an id <= {top}")

    num_seq = int(bounds[-1])
    budget = num_seq * config.seq_len
    stage_seqs = np.diff(bounds)
    T = np.array([kernel("largest_remainder")(W[k], int(stage_seqs[k]) * (config.seq_len if causal else 1))
                  for k in range(n_stages)], dtype=np.int64)  # (S, K)
    targets = T.sum(axis=0)
    wvec = W[0] if n_stages == 1 else targets / targets.sum()

    # Check every domain's size before selecting anything, so the error comes first and fast.
    opened = corpus.splits([n for n, t in zip(names, targets.tolist()) if t], "train")  # (together: 10,000 domains)
    flat, dom_start, doc_part, doc_src = st.document_table([opened.get(n) for n in names])  # (one array each)
    summed = np.concatenate([[0], np.cumsum(flat)])
    avail_doc = np.diff(dom_start)
    avail_tok = summed[dom_start[1:]] - summed[dom_start[:-1]]
    for i in np.flatnonzero(targets == 0).tolist():  # (not opened: the manifest's counts)
        info = manifest.domains[names[i]].splits["train"]
        avail_tok[i], avail_doc[i] = info.tokens, info.documents
    units = avail_tok + avail_doc if causal else avail_doc.copy()
    if n_stages > 1:
        check = np.flatnonzero(targets > 0).tolist()
    else:  # the domains one of the errors below names, in order (the first is raised)
        check = np.flatnonzero((targets > 0) & ((avail_doc == 0) | (targets > config.max_epochs * units)
                                                | ((targets > units) & (config.max_epochs == 1)))).tolist()
    for i in check:
        name, target, tok, doc, u = names[i], int(targets[i]), int(avail_tok[i]), int(avail_doc[i]), int(units[i])
        if n_stages > 1:
            st.check_stage_sizes(name, T[:, i], u, config.max_epochs, bounds, config.seq_len,
                                 "tokens (with one EOS per document)" if causal else "documents")
        elif doc == 0 or (target > u and config.max_epochs == 1):
            raise _too_small(name, w0[name], target, tok, doc, budget, config)
        elif target > config.max_epochs * u:  # never true for math.inf
            raise MixerError(f"domain {name!r}: weight {w0[name]:g} of a {budget}-token budget needs "
                             f"{target / u:.2f} passes over its data, above --max-epochs "
                             f"{config.max_epochs:g}; lower its weight or the budget, or raise the cap")

    # Per domain: its documents for every stage (one permutation, consumed across stages).
    empty = [(np.zeros(0, np.int64),) * 2] * n_stages
    epochs = np.zeros(len(names), np.int64)
    # Causal, one stage: every domain's first pass in one kernel call (10,000 domains); the rest below.
    one_pass = st.first_passes(flat, dom_start, names, targets, config.seed, domain_hash) if causal and n_stages == 1 else {}
    epochs[list(one_pass)] = 1
    picked = [[one_pass[i]] if i in one_pass else empty for i in range(len(names))]  # (replaced, never changed in place)
    parts, part_domain = [], []
    for i, (name, target, a, b) in enumerate(zip(names, targets.tolist(), dom_start[:-1].tolist(),
                                                 dom_start[1:].tolist())):  # (Python ints: 10,000 domains)
        if target == 0:
            continue
        if i not in one_pass:
            picked[i], epochs[i] = st.select_stages(
                flat[a:b], T[:, i], key_of=_key_of(config, name), causal=causal, max_content=config.seq_len - 2,
                max_epochs=config.max_epochs,
                where=lambda k, name=name: f"{st.stage_label(k, bounds, config.seq_len)}: domain {name!r}")
        # Parts relative to the corpus folder, normalised (`..` and absolute names: refused on reading)
        files = manifest.domains[name].splits["train"].files
        parts += map(normpath, files)
        part_domain += [i] * len(files)
    # Where each picked document's tokens are, domain after domain: its part (global id) and the
    # offset of its first token in that part's values (`document_table`), for all domains at once.
    per_dom_doc = np.array([sum(len(p[0]) for p in picked[i]) for i in range(len(names))], np.int64)
    local = np.concatenate([p[0] for i in range(len(names)) for p in picked[i]])
    at = local + np.repeat(dom_start[:-1], per_dom_doc)  # (index into `document_table`'s arrays)
    seg_part_all, seg_src_all = doc_part[at], doc_src[at]

    interleave = config.interleave if config.interleave != "auto" else ("edf" if not causal else "midpoint")
    # Each stage interleaved on its own, as one mixture is; `g` indexes the per-domain concatenation
    # (domain after domain, each domain's stages in order).
    per_dom = np.array([[len(picked[i][k][0]) for i in range(len(names))] for k in range(n_stages)], np.int64)
    dom_first = np.concatenate([[0], np.cumsum(per_dom.sum(axis=0))])[:-1]  # first segment of each domain
    stage_off = np.vstack([np.zeros(len(names), np.int64), np.cumsum(per_dom, axis=0)[:-1]])
    doms, gs = [], []
    for k in range(n_stages):
        counts = [picked[i][k][1] for i in range(len(names))]
        dom_start = np.cumsum([0] + [len(c) for c in counts]).astype(np.int64)
        n_seg = int(dom_start[-1])
        if interleave in ("edf", "blend"):  # segments as unit items (mlm: rows)
            stream_dom, stream_pos = np.empty(n_seg, np.int32), np.empty(n_seg, np.int64)
            c = np.diff(dom_start)  # edf: the smallest prefix deviation; blend: Megatron's at most, to W[k]
            # Through `kernel` (compiled in build-shards): a causal build imports neither kernel's module.
            kernel("smallest_feasible_items")(c, stream_dom, stream_pos) if interleave == "edf" else \
                kernel("blend_items")(np.asarray(W[k], np.float64), c, stream_dom, stream_pos)
        else:  # documents of unequal length: each domain within half a document of its token share
            units_k = np.concatenate([c + 1 if causal else np.ones(len(c), np.int64) for c in counts]).astype(np.int64)
            stream_dom, stream_pos = interleave_midpoint_threaded(units_k, dom_start, threads=2,
                                                                  out_dom=np.empty(n_seg, np.int32))
        doms.append(stream_dom)
        gs.append(dom_first[stream_dom] + stage_off[k][stream_dom] + stream_pos)
    stream_dom = doms[0] if n_stages == 1 else np.concatenate(doms)
    g = gs[0] if n_stages == 1 else np.concatenate(gs)

    all_counts = np.concatenate([p[1] for i in range(len(names)) for p in picked[i]])[g]
    if causal:
        dst = np.zeros(len(g), np.int64)
        np.cumsum(all_counts[:-1] + 1, out=dst[1:])
    else:
        dst = np.arange(len(g), dtype=np.int64) * config.seq_len + 1
    arrays = {
        "targets": targets, "available_tokens": avail_tok, "available_documents": avail_doc, "epochs": epochs,
        "part_domain": np.array(part_domain, np.int32), "seg_domain": stream_dom,
        "seg_doc": local[g],
        "seg_start": np.zeros(len(g), np.int64), "seg_count": all_counts,
        "seg_part": seg_part_all[g], "seg_src": seg_src_all[g], "seg_dst": dst,
    }
    for a in arrays.values():
        a.setflags(write=False)
    stages = () if n_stages == 1 else tuple(
        st.PlanStage(first_sequence=int(bounds[k]), sequences=int(stage_seqs[k]), until_tokens=int(until[k]),
                  weights=tuple(float(x) for x in W[k]), targets=tuple(int(x) for x in T[k]))
        for k in range(n_stages))
    plan = MixturePlan(
        corpus_sha256=sha, domains=names, weights=tuple(float(x) for x in wvec), objective=config.objective,
        seq_len=config.seq_len, seed=config.seed, tokens_requested=config.tokens, budget_tokens=budget,
        num_sequences=num_seq, dtype=dtype.name, eos_id=manifest.eos_id, special=special,
        max_epochs=float(config.max_epochs), parts=tuple(parts), interleave=interleave, stages=stages, **arrays)
    if causal and int(plan.stream_lengths().sum()) != budget:  # pragma: no cover
        raise RuntimeError("plan does not fill the budget exactly: a bug in mixer's sampler")
    return plan
