"""Hugging Face `Trainer` on the mixture: `MixtureCollator` gives the labels a model needs to
return a loss and keeps `domain_ids`; `examples/hf_trainer.py` runs and logs per-domain loss."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from mixer import MixtureCollator, MixtureSampler
from mixer.formats.synthetic import write_example_corpus

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hf_trainer.py"


def _item(ids, dom, mask=None):
    out = {"input_ids": torch.tensor(ids), "domain_ids": torch.tensor(dom)}
    if mask is not None:
        out["attention_mask"] = torch.tensor(mask)
    return out


def test_causal_labels_are_the_inputs_and_domain_ids_are_kept():
    batch = MixtureCollator()([_item([5, 6, 7], [0, 0, 1], [1, 1, 1]), _item([8, 9, 0], [1, 1, 1], [1, 1, 0])])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["domain_ids"].tolist() == [[0, 0, 1], [1, 1, 1]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, 9, -100]]  # padding is never a target
    assert "domain_ids" not in MixtureCollator(domain_ids=False)([_item([1, 2], [0, 0])])


def test_masked_lm_follows_the_bert_recipe_and_is_seeded():
    n, special = 20_000, (1, 2, 3)
    ids = torch.randint(10, 100, (n,))
    ids[::50] = 1
    items = [_item(ids.tolist(), [0] * n)]
    c = MixtureCollator(mask_token_id=4, vocab_size=100, special_ids=special, seed=7)
    b = {k: v[0] for k, v in c(items).items()}
    chosen = b["labels"] != -100
    assert abs(chosen.float().mean().item() - 0.15) < 0.01
    assert not chosen[ids == 1].any()  # special tokens are never targets
    assert torch.equal(b["labels"][chosen], ids[chosen])
    masked = (b["input_ids"] == 4) & chosen
    assert abs(masked.sum().item() / chosen.sum().item() - 0.8) < 0.02
    assert torch.equal(b["input_ids"][~chosen], ids[~chosen])
    again = MixtureCollator(mask_token_id=4, vocab_size=100, special_ids=special, seed=7)(items)
    assert torch.equal(again["input_ids"][0], b["input_ids"]) and torch.equal(again["labels"][0], b["labels"])


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("hf_trainer_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stock_trainer_trains_on_the_stream_with_the_collator(example, tmp_path):
    """The failure users saw: `Trainer(train_dataset=stream)` said the model returned no loss."""
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    write_example_corpus(tmp_path / "corpus", ["code", "news"], vocab_size=256)
    stream = MixtureSampler(tmp_path / "corpus", {"code": 0.5, "news": 0.5}, tokens=4 * 4 * 32, seq_len=32)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=32, n_embd=32, n_layer=1, n_head=2))
    args = TrainingArguments(str(tmp_path / "t"), per_device_train_batch_size=4, max_steps=4, report_to=[],
                             use_cpu=True, save_strategy="no", logging_steps=2, disable_tqdm=True)
    result = Trainer(model=model, args=args, train_dataset=stream, data_collator=MixtureCollator()).train()
    assert math.isfinite(result.training_loss) and result.global_step == 4


def test_the_example_logs_a_falling_loss_per_domain(example, tmp_path):
    trainer = example.main(tmp_path, steps=8, logging_steps=4)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logs] == [4, 8]
    for h in logs:
        per_domain = {k: v for k, v in h.items() if k.startswith("loss/")}
        assert set(per_domain) == {"loss/code", "loss/news", "loss/web"}
        assert all(math.isfinite(v) for v in per_domain.values())
        # the overall loss is a token-weighted mean of the domains' losses: within their range
        assert min(per_domain.values()) - 1e-6 <= h["loss"] <= max(per_domain.values()) + 1e-6
    assert logs[-1]["loss"] < logs[0]["loss"]


@pytest.mark.parametrize("own_shards", [False, True])
def test_the_example_takes_your_shards_without_transformers_warnings(example, tmp_path, own_shards):
    """`--shards DIR` trains on the user's data; GPT2Config's default BOS/EOS (50256) outside a
    small vocabulary and the unnamed loss type once made transformers warn on every run."""
    import logging

    from transformers.utils import logging as hf_logging

    from mixer.shards.plan import PlanConfig, build_plan
    from mixer.shards.write import ShardConfig, write_shards

    shards = None
    if own_shards:
        corpus = write_example_corpus(tmp_path / "mine", ["alpha", "beta"], vocab_size=300)
        plan = build_plan(corpus, {"alpha": 0.25, "beta": 0.75}, PlanConfig(tokens=4 * 8 * 48, seq_len=48, seed=1))
        shards = tmp_path / "shards"
        write_shards(plan, corpus, shards, ShardConfig(shard_tokens=8 * 48, workers=1))
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    root = hf_logging.get_logger("transformers")
    hf_logging.warning_once.cache_clear()  # a warning given once in this process would not show again
    root.addHandler(handler)
    try:
        trainer = example.main(tmp_path / "work", steps=4, logging_steps=2, shards=shards)
    finally:
        root.removeHandler(handler)
    assert [r.getMessage() for r in records] == []
    domains = {"loss/alpha", "loss/beta"} if own_shards else {"loss/code", "loss/news", "loss/web"}
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logs] == [2, 4] and domains <= set(logs[-1])
    if own_shards:
        assert trainer.model.config.vocab_size == 300 and trainer.model.config.n_positions == 48
