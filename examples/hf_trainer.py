"""Train a Hugging Face model with `transformers.Trainer` on the mixture, with per-domain loss.

    python examples/hf_trainer.py                    # ~15 s on a laptop CPU: a synthetic corpus
    python examples/hf_trainer.py --shards shards/   # your data: shards from `mixer build-shards`

Without `--shards` it builds a synthetic 3-domain corpus in a temp folder and samples the
mixture with `MixtureSampler`; with `--shards DIR` it streams your shards (`MixtureStream`; the
vocabulary, EOS id and sequence length come from them and their corpus). Either way it trains
a tiny GPT-2 (random init) for `--steps` steps with the stock `Trainer`. Two things make the
stream a Trainer dataset:
- `MixtureCollator` adds `labels` (a transformers model returns a loss only when given them)
  and keeps `domain_ids`;
- `remove_unused_columns=False` stops Trainer from dropping `domain_ids`, and
  `DomainLossTrainer.compute_loss` pops it before calling the model, adding the loss of every
  domain to the logs (`loss/<domain>`).
The model's BOS/EOS ids are the corpus's EOS (GPT2Config's default, 50256, lies outside a small
vocabulary and transformers warns). Should print a falling loss and the last per-domain losses.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from mixer import MixtureCollator, MixtureSampler, MixtureStream
from mixer.formats.corpus_handle import Corpus
from mixer.formats.shards import corpus_of, read_index
from mixer.formats.synthetic import write_example_corpus

weights = {"code": 0.2, "news": 0.5, "web": 0.3}
vocab, seq_len, batch_size, steps = 512, 64, 8, 20


class DomainLossTrainer(Trainer):
    """Trainer that keeps the batch's `domain_ids` out of the model and logs each domain's mean
    token loss over the steps since the last log."""

    def __init__(self, *args, domains: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.domains = domains
        self._sums = torch.zeros(len(domains), dtype=torch.float64)
        self._counts = torch.zeros(len(domains), dtype=torch.float64)

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        domain_ids = inputs.pop("domain_ids")
        outputs = model(**inputs)
        with torch.no_grad():  # per-token loss of the shifted targets, summed per domain
            logits, labels = outputs.logits[:, :-1].float(), inputs["labels"][:, 1:]
            tok = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                    ignore_index=-100, reduction="none")
            keep = labels.reshape(-1) != -100
            dom = domain_ids[:, 1:].reshape(-1)[keep].cpu()
            self._sums.index_add_(0, dom, tok[keep].double().cpu())
            self._counts.index_add_(0, dom, torch.ones_like(dom, dtype=torch.float64))
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:
            for i, name in enumerate(self.domains):
                if self._counts[i] > 0:
                    logs[f"loss/{name}"] = float(self._sums[i] / self._counts[i])
            self._sums.zero_()
            self._counts.zero_()
        super().log(logs, *args, **kwargs)


def dataset(work: Path, shards: Path | None, steps: int):
    """(stream, its corpus): the user's shards, or a synthetic corpus sampled on the fly. The
    whole mixture in every process (rank=0, world_size=1): under torchrun, Accelerate splits an
    IterableDataset over the processes itself (a stream of one rank's share is refused there)."""
    whole = {"rank": 0, "world_size": 1, "batch_size": batch_size}
    if shards is not None:
        return MixtureStream(shards, **whole), corpus_of(shards, read_index(shards))
    write_example_corpus(work / "corpus", list(weights), vocab_size=vocab)  # 600 documents per domain
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun each step takes a batch per process
    stream = MixtureSampler(work / "corpus", weights, tokens=steps * batch_size * seq_len * processes, seq_len=seq_len,
                            seed=0, **whole)
    return stream, Corpus.open(work / "corpus")


def main(work: Path, steps: int = steps, logging_steps: int = 5, shards: Path | None = None) -> DomainLossTrainer:
    stream, corpus = dataset(work, shards, steps)
    manifest = corpus.manifest
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=manifest.vocab_size, n_positions=stream.seq_len, n_embd=64, n_layer=2, n_head=2,
                        bos_token_id=manifest.eos_id, eos_token_id=manifest.eos_id)
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # GPT2LMHeadModel's name maps to no loss type: say it, no warning
    args = TrainingArguments(str(work / "trainer"), per_device_train_batch_size=batch_size, max_steps=steps,
                             learning_rate=3e-3, logging_steps=logging_steps, report_to=[], use_cpu=True, save_strategy="no",
                             remove_unused_columns=False, disable_tqdm=True, seed=0)
    trainer = DomainLossTrainer(model=model, args=args, train_dataset=stream, data_collator=MixtureCollator(),
                                domains=list(stream.domains))
    trainer.train()
    return trainer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=Path, help="Shards folder from `mixer build-shards` (default: a synthetic "
                                                    "corpus in a temp folder).")
    parser.add_argument("--steps", type=int, default=steps, help="Optimiser steps (default: %(default)s).")
    opts = parser.parse_args()
    trainer = main(Path(tempfile.mkdtemp(prefix="mixer-hf-")), steps=opts.steps, shards=opts.shards)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    print("loss by step:", [(h["step"], round(h["loss"], 3)) for h in logs])
    print("last per-domain loss:", {k: round(v, 3) for k, v in logs[-1].items() if k.startswith("loss/")})
    if torch.distributed.is_initialized():  # under torchrun: not left to the interpreter's exit, where
        torch.distributed.destroy_process_group()  # 2 runs of 10 aborted after training (SIGABRT); 1 of 28 since
