"""Train a tiny model on the mixture sampled on the fly with `MixtureSampler` (no shards).

    python examples/sampler_loop.py           # ~5 s on a laptop CPU (most of it importing torch)

Builds a synthetic 3-domain corpus in a temp folder (use yours: `mixer prepare`), samples a
64k-token mixture straight from its memory-mapped Arrow files, and trains a bigram model
with torchdata's `StatefulDataLoader` (2 workers): at step 15 it saves the loader's state,
and a fresh loader restored from it continues with exactly the batches the first one gave.
Should print a falling loss per domain and "restored loader: identical batches".
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from mixer import MixtureSampler
from mixer.formats.synthetic import write_example_corpus

warnings.filterwarnings("ignore", message="'set_vital' is deprecated")  # torchdata 0.11 on torch 2.13

# -- defaults ---------------------------------------------------------------------------------
batch_size, seq_len, steps, vocab = 8, 64, 30, 512  # batch_size: pass the same number to MixtureSampler
weights = {"code": 0.2, "news": 0.5, "web": 0.3}

# -- data: sampled from the corpus as build-shards would write it --------------------------------
work = Path(tempfile.mkdtemp(prefix="mixer-example-"))
write_example_corpus(work / "corpus", list(weights), vocab_size=vocab)  # 600 documents per domain


def make_loader() -> StatefulDataLoader:
    sampler = MixtureSampler(work / "corpus", weights, tokens=64_000, seq_len=seq_len, seed=0, batch_size=batch_size)
    return StatefulDataLoader(sampler, batch_size=batch_size, num_workers=2)


loader = make_loader()
domains = sorted(weights)  # domain_ids index this list

# -- model and optimizer ------------------------------------------------------------------------
model = torch.nn.Sequential(torch.nn.Embedding(vocab, 64), torch.nn.Linear(64, vocab))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

# -- loop --------------------------------------------------------------------------------------
checkpoint, later = None, []
for step, batch in enumerate(loader):
    if step == steps:
        break
    if checkpoint is not None and len(later) < 3:
        later.append(batch["input_ids"])  # what a restored loader must give next
    ids, doms = batch["input_ids"], batch["domain_ids"]  # [B, L] int64 each
    loss_tok = torch.nn.functional.cross_entropy(model(ids[:, :-1]).transpose(1, 2), ids[:, 1:], reduction="none")
    loss = loss_tok.mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step == 15:
        checkpoint = {"model": model.state_dict(), "data": loader.state_dict()}  # torch.save(checkpoint, ...)
    if step % 10 == 0 or step == steps - 1:
        per_domain = {d: loss_tok[doms[:, 1:] == i].mean().item() for i, d in enumerate(domains)
                      if (doms[:, 1:] == i).any()}
        print(f"step {step:3d}  loss {loss.item():.3f}  " + "  ".join(f"{d} {v:.3f}" for d, v in per_domain.items()))

# -- resume: a new loader restored from the checkpoint continues at step 16 -----------------------
restored = make_loader()
restored.load_state_dict(checkpoint["data"])
again = [b["input_ids"] for _, b in zip(range(3), restored)]
same = all(torch.equal(a, b) for a, b in zip(later, again))
print(f"restored loader: {'identical batches' if same else 'MISMATCH'}")
