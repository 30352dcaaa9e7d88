"""Batched proxies (mixer.trainers.batched / mixer.trainers.compact): the stacked GPT-2 is GPT-2 (its weights
load into GPT2LMHeadModel and give the same logits), the fused loss equals the plain one, and K
proxies trained together give bit for bit the losses each gives alone, on the real mixture
sampler (MixtureSampler)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixer.shards.plan import PlanConfig
from mixer.core.errors import MixerError
from mixer.formats.synthetic import random_skewed_corpus
from mixer.trainers import TrainConfig
from mixer.trainers.batched import Proxy, train_batched
from mixer.trainers.compact import StackedGPT2, fused_lm_loss
from mixer.trainers.data import source_from_corpus
from mixer.trainers.models import build_model, vocab_for
from mixer.trainers.presets import get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DOMAINS = ("code", "news", "web")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return random_skewed_corpus(tmp_path_factory.mktemp("corpus") / "c", DOMAINS, 120, 12)


def _hf_models(corpus, seeds):
    from mixer.formats.corpus import load_manifest

    vocab = vocab_for("gpt2", load_manifest(corpus))
    return [build_model(get_preset("gpt2", "tiny"), vocab, s).eval() for s in seeds]


def test_stacked_logits_equal_hugging_face_and_weights_load_back(corpus):
    models = _hf_models(corpus, [0, 1, 2])
    stack = StackedGPT2.from_hf(models).eval()
    ids = torch.randint(0, 256, (3, 4, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = stack.logits(ids)
        for k, m in enumerate(models):
            ref = m(input_ids=ids[k]).logits
            assert torch.allclose(logits[k], ref, atol=2e-5, rtol=1e-5), (k, (logits[k] - ref).abs().max())
    fresh = _hf_models(corpus, [9])[0]
    assert not torch.equal(fresh.transformer.wte.weight, models[1].transformer.wte.weight)
    fresh.load_state_dict(stack.hf_state_dict(1))  # strict: every key of the HF class, and only those
    for name, t in models[1].state_dict().items():
        assert torch.equal(fresh.state_dict()[name], t), name


def test_fused_loss_equals_cross_entropy_without_full_logits():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(2, 50, 16, generator=g, requires_grad=True)
    w = torch.randn(2, 300, 16, generator=g, requires_grad=True)
    labels = torch.randint(0, 300, (2, 50), generator=g)
    labels[:, -1] = -100
    weight = (labels >= 0).float() / 49
    total, tok = fused_lm_loss(h, w, labels, weight, chunk=7)  # 8 chunks, the last one short
    total.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    ref_tok = F.cross_entropy(torch.bmm(h, w.transpose(1, 2)).reshape(-1, 300), labels.reshape(-1),
                              ignore_index=-100, reduction="none").view(2, 50)
    (ref_tok * weight).sum().backward()
    assert torch.allclose(tok, ref_tok.detach(), atol=1e-5)
    assert torch.allclose(gh, h.grad, atol=1e-6) and torch.allclose(gw, w.grad, atol=1e-6)


def _proxies(corpus, tmp, mixtures, seeds, budget=8 * 64 * 24):
    return [Proxy(source_from_corpus(corpus, w, PlanConfig(tokens=budget, seq_len=64, seed=s), model="gpt2", batch_size=8),
                  out_dir=tmp / f"p{i}", seed=s) for i, (w, s) in enumerate(zip(mixtures, seeds))]


MIXES = [{"code": 0.6, "news": 0.2, "web": 0.2}, {"code": 0.2, "news": 0.6, "web": 0.2},
         {"code": 0.2, "news": 0.2, "web": 0.6}]


def test_batched_proxies_equal_each_alone_bit_for_bit(corpus, tmp_path):
    cfg = TrainConfig(model="gpt2", preset="tiny", log_every=4, eval_every=12, eval_seqs=6, progress=False,
                      device="cpu")
    together = train_batched(cfg, _proxies(corpus, tmp_path / "together", MIXES, [0, 1, 2]))
    for k in range(3):
        alone = train_batched(cfg, _proxies(corpus, tmp_path / f"alone{k}", [MIXES[k]], [k]))[0]
        assert together[k].curve == alone.curve, k  # every train and held-out loss, exactly
        assert together[k].final_loss == alone.final_loss
        assert together[k].tokens_per_domain == alone.tokens_per_domain
        assert together[k].provenance["proxies_together"] == 3 and alone.provenance["proxies_together"] == 1
    # The proxies differ (mixture and seed) and learn: held-out loss well below ln 256 = 5.55.
    assert together[0].final_loss != together[1].final_loss
    for rec in together:
        assert rec.curve["train"]["mean"][-1] < rec.curve["train"]["mean"][0] - 0.3
        assert max(rec.final_loss.values()) < 5.4
    assert (tmp_path / "together" / "p2" / "run.json").is_file()
    assert (tmp_path / "together" / "p2" / "loss_curves.png").is_file()


def test_batched_refuses_what_it_cannot_do(corpus, tmp_path):
    proxies = _proxies(corpus, tmp_path, MIXES[:2], [0, 1])
    with pytest.raises(MixerError, match="attention_mask"):  # BERT proxies on causal streams
        train_batched(TrainConfig(model="bert", preset="tiny", progress=False), proxies)
    uneven = [proxies[0], _proxies(corpus, tmp_path / "b", MIXES[:1], [0], budget=8 * 64 * 30)[0]]
    with pytest.raises(MixerError, match="one token budget"):
        train_batched(TrainConfig(model="gpt2", preset="tiny", progress=False), uneven)


def test_bf16_autocast_path_matches_fp32(corpus):
    """The GPU's dtype path (bf16 autocast: matmuls in bf16, softmax and grads accumulated in
    fp32), exercised on the CPU: loss and gradients within bf16 rounding of fp32."""
    stack = StackedGPT2.from_hf(_hf_models(corpus, [0, 1]), dropout=0.0)
    ids = torch.randint(0, 256, (2, 4, 64), generator=torch.Generator().manual_seed(2))
    labels = torch.nn.functional.pad(ids[..., 1:], (0, 1), value=-100)
    weight = (labels >= 0).float() / (labels >= 0).sum((1, 2), keepdim=True)
    out = {}
    for name, ctx in (("fp32", torch.autocast("cpu", enabled=False)),
                      ("bf16", torch.autocast("cpu", dtype=torch.bfloat16))):
        stack.zero_grad()
        with ctx:
            total, _ = stack.loss(ids, labels, weight)
        total.backward()
        out[name] = (total.item(), stack.wte__weight.grad.clone(), stack.h__0__attn__c_attn__weight.grad.clone())
    assert abs(out["bf16"][0] - out["fp32"][0]) < 0.02 * out["fp32"][0]
    for a, b in zip(out["bf16"][1:], out["fp32"][1:]):
        assert torch.allclose(a, b, atol=0.05 * b.abs().max().item())
