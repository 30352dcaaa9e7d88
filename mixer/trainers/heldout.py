"""Held-out evaluation: per-domain loss and perplexity on a fixed, deterministic subset.

Causal: a domain's held-out documents joined with EOS between them, cut into `seq_len`
windows; the first `max_seqs` windows. Masked: one document per sequence, [CLS] doc [SEP],
truncated or padded, masked with a fixed seed (the same positions for every run and step, so
runs are comparable). The sets are built once, before training, from the memory-mapped corpus.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixer.core.errors import MixerError
from mixer.core.kinds import ModelKind
from mixer.formats.corpus import DomainSplit
from mixer.formats.corpus_handle import Corpus, as_corpus
from mixer.trainers.checkpoint import CHECKPOINT_NAME, read_checkpoint
from mixer.trainers.models import Vocab, build_model, vocab_for
from mixer.trainers.objectives import mask_tokens, shift_labels
from mixer.trainers.presets import ModelPreset

EVAL_MASK_SEED = 1234  # fixed for every run: held-out MLM losses of different runs are comparable


@dataclass(frozen=True)
class EvalSet:
    name: str  # the domain (prefixed "ood/" for a domain that never enters training)
    input_ids: torch.Tensor  # [K, L] int64, already masked for MLM
    labels: torch.Tensor  # [K, L] int64, -100 where not scored (causal: unshifted ids)
    attention_mask: torch.Tensor  # [K, L] int64


def _empty(split: DomainSplit, corpus_dir: Path) -> MixerError:
    return MixerError(f"domain {split.domain!r} has no held-out tokens in {corpus_dir}; re-prepare the corpus with a "
                      "non-empty held-out split, or leave the domain out of evaluation")


def causal_eval_set(name: str, split: DomainSplit, corpus_dir: Path, eos: int, seq_len: int, max_seqs: int) -> EvalSet:
    need = seq_len * max_seqs
    pieces, have = [], 0
    for k in range(split.num_documents):  # only the first documents are read, whatever the split size
        doc = split.document(k)
        pieces += [doc.astype(np.int64), np.array([eos], dtype=np.int64)]
        have += len(doc) + 1
        if have >= need:
            break
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    if len(stream) - len(pieces) // 2 < 1:  # nothing but EOS separators
        raise _empty(split, corpus_dir)
    n = min(max_seqs, len(stream) // seq_len)
    # A held-out split shorter than one window is scored as one shorter window.
    ids = torch.from_numpy(stream[: n * seq_len].reshape(n, seq_len)) if n else torch.from_numpy(stream)[None]
    return EvalSet(name, ids, ids.clone(), torch.ones_like(ids))


def mlm_eval_set(name: str, split: DomainSplit, corpus_dir: Path, vocab: Vocab, seq_len: int, max_seqs: int) -> EvalSet:
    sp = vocab.special
    rows = []
    for k in range(min(max_seqs, split.num_documents)):
        doc = split.document(k)[: seq_len - 2].astype(np.int64)
        if len(doc):
            rows.append(np.concatenate([[sp.cls], doc, [sp.sep], np.full(seq_len - 2 - len(doc), sp.pad)]))
    if not rows:
        raise _empty(split, corpus_dir)
    ids = torch.from_numpy(np.stack(rows))
    attn = (ids != sp.pad).long()
    gen = torch.Generator().manual_seed(EVAL_MASK_SEED)
    masked, labels = mask_tokens(ids, attn, sp, vocab.corpus_size, gen)
    return EvalSet(name, masked, labels, attn)


def build_eval_sets(corpus: Corpus | str | Path, model: str, vocab: Vocab, seq_len: int, max_seqs: int,
                    domains: list[str] | None = None, prefix: str = "") -> list[EvalSet]:
    """One `EvalSet` per domain (all of the corpus's by default). Token ids are checked against
    the model's vocab, so a held-out domain from another tokenizer fails here, by name."""
    corpus = as_corpus(corpus)
    corpus_dir = corpus.folder
    sets = []
    for d in domains or corpus.domain_names:
        split = corpus.split(d, "heldout")
        if split.num_documents == 0:
            raise _empty(split, corpus_dir)
        if ModelKind(model) is ModelKind.GPT2:
            es = causal_eval_set(prefix + d, split, corpus_dir, vocab.eos, seq_len, max_seqs)
            top = int(es.input_ids.max())
        else:
            es = mlm_eval_set(prefix + d, split, corpus_dir, vocab, seq_len, max_seqs)
            top = int(torch.where(es.labels >= 0, es.labels, 0).max())
        if top >= vocab.corpus_size:
            raise MixerError(f"held-out domain {d!r} of {corpus_dir} has token id {top} but the model's corpus vocab is "
                             f"{vocab.corpus_size}; evaluate only corpora prepared with the training tokenizer")
        sets.append(es)
    return sets


@torch.no_grad()
def evaluate(model: torch.nn.Module, sets: list[EvalSet], objective: str, device: torch.device, batch_size: int,
             autocast, rank: int = 0, world_size: int = 1) -> dict[str, float]:
    """Mean token loss of every set. Sequences are split over ranks and the sums all-reduced."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(len(sets), 2, dtype=torch.float64, device=device)
    for i, es in enumerate(sets):
        for a in range(rank * batch_size, len(es.input_ids), world_size * batch_size):
            ids, labels, attn = (t[a:a + batch_size].to(device) for t in (es.input_ids, es.labels, es.attention_mask))
            with autocast:
                logits = model(input_ids=ids, attention_mask=attn).logits
            if ModelKind(objective) is ModelKind.GPT2:
                labels = shift_labels(labels)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            sums[i, 0] += loss.double()
            sums[i, 1] += (labels != -100).sum()
    if world_size > 1:
        torch.distributed.all_reduce(sums)
    model.train(was_training)
    out = {}
    for es, (total, count) in zip(sets, sums.tolist()):
        out[es.name] = total / count if count else math.nan
    return out


def evaluate_checkpoint(run_dir: str | Path, corpus_dir: str | Path, domains: list[str] | None = None,
                        device: str = "cpu") -> dict[str, float]:
    """Held-out loss of a finished run's checkpoint on `corpus_dir` (its own corpus, or another
    corpus prepared with the same tokenizer: an out-of-domain check after the fact)."""


    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise MixerError(f"{path}: no checkpoint; evaluate a run folder written by `mixer train`")
    ckpt = read_checkpoint(path)
    cfg = ckpt.config
    preset = ModelPreset(**{k: cfg[k] for k in ModelPreset.__dataclass_fields__})
    corpus = as_corpus(corpus_dir)
    vocab = vocab_for(preset.model, corpus.manifest)
    if vocab.size != cfg["vocab_size"]:
        raise MixerError(f"{corpus_dir}: its vocab gives a {vocab.size}-row embedding but {run_dir} was trained with "
                         f"{cfg['vocab_size']}; evaluate on a corpus prepared with the training tokenizer")
    model = build_model(preset, vocab, seed=0)
    model.load_state_dict(ckpt.model)
    sets = build_eval_sets(corpus, preset.model, vocab, preset.seq_len, cfg["eval_seqs"], domains)
    return evaluate(model.to(device), sets, preset.model, torch.device(device), cfg["eval_batch_size"],
                    contextlib.nullcontext())
