"""Train a tiny model on built shards with `MixtureStream` in a plain PyTorch loop.

    python examples/stream_loop.py            # ~5 s on a laptop CPU

Builds a synthetic 3-domain corpus and 64k-token shards in a temp folder (use yours:
`mixer prepare` then `mixer build-shards`), trains a bigram model for 40 steps with 2
DataLoader workers, checkpoints the stream position at step 20 and shows that a resumed
stream continues with exactly the next batch. Should print a falling loss per domain and
"resumed at step 20: identical batches".
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mixer import MixtureStream
from mixer.shards import build
from mixer.shards.plan import PlanConfig
from mixer.shards.write import ShardConfig
from mixer.formats.synthetic import write_example_corpus

# -- defaults ---------------------------------------------------------------------------------
batch_size = 8  # sequences per step; pass the same number to MixtureStream
seq_len = 64
steps = 40
vocab = 512
weights = {"code": 0.2, "news": 0.5, "web": 0.3}

# -- data: a corpus and its shards (64k tokens: 1,000 sequences) ----------------------------------
work = Path(tempfile.mkdtemp(prefix="mixer-example-"))
write_example_corpus(work / "corpus", list(weights), vocab_size=vocab)  # 600 documents per domain
build(work / "corpus", weights, work / "shards", plan=PlanConfig(tokens=64_000, seq_len=seq_len, seed=0),
      shards=ShardConfig(shard_tokens=16_384))

# Under torchrun, rank and world size come from the environment; each rank reads its own part.
stream = MixtureStream(work / "shards", batch_size=batch_size)
loader = DataLoader(stream, batch_size=batch_size, num_workers=2)

# -- model and optimizer: next token from the current one ---------------------------------------
model = torch.nn.Sequential(torch.nn.Embedding(vocab, 64), torch.nn.Linear(64, vocab))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
domains = stream.domains  # domain_ids index this (sorted) list

# -- loop --------------------------------------------------------------------------------------
saved = None
for step, batch in enumerate(loader):
    if step == steps:
        break
    ids, doms = batch["input_ids"], batch["domain_ids"]  # [B, L] int64 each
    logits = model(ids[:, :-1])  # [B, L-1, V]
    loss_tok = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # [B, L-1]
    loss = loss_tok.mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step == 20:
        # With DataLoader workers the main process cannot see the workers' positions: record the
        # sequences this rank consumed (steps x batch_size). With num_workers=0, or torchdata's
        # StatefulDataLoader, stream.state_dict() / loader.state_dict() record it for you.
        saved = {"consumed": (step + 1) * batch_size}
    if step % 10 == 0 or step == steps - 1:
        # per-domain loss: each token's loss goes to the domain of the token it predicts
        per_domain = {d: loss_tok[doms[:, 1:] == i].mean().item() for i, d in enumerate(domains)
                      if (doms[:, 1:] == i).any()}
        print(f"step {step:3d}  loss {loss.item():.3f}  " + "  ".join(f"{d} {v:.3f}" for d, v in per_domain.items()))

# -- resume: a fresh stream at the saved position yields the batches of steps 21, 22, .. -------
resumed = MixtureStream(work / "shards", batch_size=batch_size)
resumed.load_state_dict(saved)
after = [b["input_ids"] for _, b in zip(range(3), DataLoader(resumed, batch_size=batch_size, num_workers=2))]
again = MixtureStream(work / "shards", batch_size=batch_size)  # the uninterrupted stream, for comparison
full = [b["input_ids"] for _, b in zip(range(24), DataLoader(again, batch_size=batch_size))]
same = all(torch.equal(a, b) for a, b in zip(full[21:], after))
print(f"resumed at step 20: {'identical batches' if same else 'MISMATCH'}")
