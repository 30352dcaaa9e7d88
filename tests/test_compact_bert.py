"""The stacked BERT (mixer.trainers.compact.bert) is BertForMaskedLM: its weights load into the HF class
and out again, and both give the same logits and the same masked-LM loss; K BERT proxies trained
together (mixer.trainers.batched) give, bit for bit on a CPU, the losses each gives alone; with dropout
0 a stacked proxy follows the HF trainer (mixer.trainers.hf_train.train) to fp32 rounding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixer.shards.plan import PlanConfig
from mixer.formats.corpus import load_manifest
from mixer.formats.synthetic import random_skewed_corpus
from mixer.trainers import TrainConfig, train
from mixer.trainers.batched import Proxy, train_batched
from mixer.trainers.compact import StackedBert, fused_lm_loss, mlm_targets
from mixer.trainers.data import source_from_corpus
from mixer.trainers.models import build_model, vocab_for
from mixer.trainers.objectives import mask_tokens
from mixer.trainers.presets import get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DOMAINS = ("code", "news", "web")
MIXES = [{"code": 0.6, "news": 0.2, "web": 0.2}, {"code": 0.2, "news": 0.6, "web": 0.2},
         {"code": 0.2, "news": 0.2, "web": 0.6}]
BUDGET = 8 * 64 * 12  # 12 steps of the tiny preset (8 x 64)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # Documents from 10 to 120 tokens in 64-token sequences: many are padded, some truncated.
    return random_skewed_corpus(tmp_path_factory.mktemp("bert") / "c", DOMAINS, 200, 12, lengths=(10, 120))


def _models(corpus, seeds):
    vocab = vocab_for("bert", load_manifest(corpus))
    return vocab, [build_model(get_preset("bert", "tiny"), vocab, s).eval() for s in seeds]


def _masked_batch(vocab, K, seed=0):
    """[K, 4, 64] padded [CLS] doc [SEP] rows, masked as the trainer masks them."""
    g = torch.Generator().manual_seed(seed)
    sp = vocab.special
    ids = torch.full((K, 4, 64), sp.pad)
    for k in range(K):
        for b, n in enumerate((62, 40, 17, 5)):
            doc = torch.randint(0, vocab.corpus_size, (n,), generator=g)
            ids[k, b, :n + 2] = torch.cat([torch.tensor([sp.cls]), doc, torch.tensor([sp.sep])])
    attn = (ids != sp.pad).long()
    masked, labels = zip(*(mask_tokens(ids[k], attn[k], sp, vocab.corpus_size, g) for k in range(K)))
    return torch.stack(masked), attn, torch.stack(labels)


def test_stacked_bert_equals_hugging_face_logits_loss_and_weights(corpus):
    vocab, models = _models(corpus, [0, 1, 2])
    stack = StackedBert.from_hf(models).eval()
    ids, attn, labels = _masked_batch(vocab, 3)
    idx, targets = mlm_targets(labels, chunk=32)
    assert idx.shape[1] % 32 == 0 and int((targets >= 0).sum()) == int((labels >= 0).sum()) > 0
    weight = (targets >= 0).float() / (targets >= 0).sum(1, keepdim=True)
    with torch.no_grad():
        logits = stack.logits(ids, attn)
        _, tok = stack.loss(ids, attn, idx, targets, weight, chunk=32)
    for k, m in enumerate(models):
        with torch.no_grad():
            out = m(input_ids=ids[k], attention_mask=attn[k], labels=labels[k])
        # Every position, padding included (fp32; the two differ only in the fused QKV and the op order).
        assert torch.allclose(logits[k], out.logits, atol=2e-5, rtol=1e-5), (k, (logits[k] - out.logits).abs().max())
        mean = (tok[k] * weight[k]).sum()
        assert abs(mean.item() - out.loss.item()) < 1e-5, (k, mean.item(), out.loss.item())
        ref_tok = F.cross_entropy(out.logits.reshape(-1, vocab.size), labels[k].reshape(-1), reduction="none")
        assert torch.allclose(tok[k][targets[k] >= 0], ref_tok[labels[k].reshape(-1) >= 0], atol=2e-5)
    fresh = _models(corpus, [9])[1][0]
    assert not torch.equal(fresh.bert.embeddings.word_embeddings.weight,
                           models[1].bert.embeddings.word_embeddings.weight)
    fresh.load_state_dict(stack.hf_state_dict(1))  # strict: every key of the HF class, and only those
    for name, t in models[1].state_dict().items():
        assert torch.equal(fresh.state_dict()[name], t), name


def test_stacked_bert_gradients_equal_hugging_face(corpus):
    vocab, models = _models(corpus, [3])
    stack = StackedBert.from_hf(models, dropout=0.0)
    ids, attn, labels = _masked_batch(vocab, 1, seed=1)
    idx, targets = mlm_targets(labels, chunk=16)
    weight = (targets >= 0).float() / (targets >= 0).sum()
    total, _ = stack.loss(ids, attn, idx, targets, weight, chunk=16)
    total.backward()
    ref = models[0].train()
    for mod in ref.modules():  # dropout off, as in the stack
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    ref.config.attention_probs_dropout_prob = 0.0
    ref(input_ids=ids[0], attention_mask=attn[0], labels=labels[0]).loss.backward()
    hf = stack.hf_state_dict(0)  # names only; compare gradients of the same tensors
    grads = {"bert.embeddings.word_embeddings.weight": stack.embeddings__word_embeddings__weight.grad[0],
             "cls.predictions.bias": stack.cls__predictions__bias.grad[0],
             "bert.encoder.layer.1.attention.self.key.weight":
                 stack.encoder__layer__1__attention__self__qkv__weight.grad[0].chunk(3)[1],
             "cls.predictions.transform.dense.weight": stack.cls__predictions__transform__dense__weight.grad[0]}
    params = dict(ref.named_parameters())
    for name, g in grads.items():
        assert name in hf
        r = params[name].grad
        assert torch.allclose(g, r, atol=1e-6 + 1e-4 * r.abs().max().item()), (name, (g - r).abs().max())


def test_fused_loss_bias_gradient():
    g = torch.Generator().manual_seed(4)
    h = torch.randn(2, 24, 8, generator=g, requires_grad=True)
    w = torch.randn(2, 40, 8, generator=g, requires_grad=True)
    b = torch.randn(2, 40, generator=g, requires_grad=True)
    labels = torch.randint(0, 40, (2, 24), generator=g)
    labels[:, 20:] = -100
    weight = (labels >= 0).float() / 20
    total, tok = fused_lm_loss(h, w, labels, weight, chunk=8, bias=b)
    total.backward()
    got = [t.grad.clone() for t in (h, w, b)]
    for t in (h, w, b):
        t.grad = None
    ref = F.cross_entropy((torch.bmm(h, w.transpose(1, 2)) + b[:, None]).reshape(-1, 40), labels.reshape(-1),
                          reduction="none").view(2, 24)
    (ref * weight).sum().backward()
    assert torch.allclose(tok, ref.detach(), atol=1e-5)
    for a, t in zip(got, (h, w, b)):
        assert torch.allclose(a, t.grad, atol=1e-6)


def _proxies(corpus, tmp, mixtures, seeds):
    return [Proxy(source_from_corpus(corpus, w, PlanConfig(tokens=BUDGET, seq_len=64, seed=s), model="bert", batch_size=8),
                  out_dir=tmp / f"p{i}", seed=s) for i, (w, s) in enumerate(zip(mixtures, seeds))]


def test_batched_bert_proxies_equal_each_alone_bit_for_bit(corpus, tmp_path):
    cfg = TrainConfig(model="bert", preset="tiny", log_every=3, eval_every=6, eval_seqs=6, progress=False,
                      device="cpu")
    together = train_batched(cfg, _proxies(corpus, tmp_path / "together", MIXES, [0, 1, 2]))
    for k in range(3):
        alone = train_batched(cfg, _proxies(corpus, tmp_path / f"alone{k}", [MIXES[k]], [k]))[0]
        assert together[k].curve == alone.curve, k  # every train and held-out loss, exactly
        assert together[k].final_loss == alone.final_loss
        assert together[k].tokens_per_domain == alone.tokens_per_domain
        assert together[k].tokens_seen == alone.tokens_seen
    assert together[0].final_loss != together[1].final_loss
    for rec in together:
        assert rec.model == "bert" and rec.provenance["trainer"] == "stacked"
        assert rec.tokens_seen < 12 * 8 * 64  # real tokens only: the padding is not counted
        assert rec.curve["train"]["mean"][-1] < rec.curve["train"]["mean"][0] - 0.2  # it learns


def test_stacked_bert_follows_the_hf_trainer(corpus, tmp_path):
    """Same init, data and masks; dropout 0 so that no random stream differs: the two trainers'
    training and held-out losses agree to fp32 rounding over 12 steps (tolerance 1e-5)."""
    cfg = TrainConfig(model="bert", preset="tiny", log_every=1, eval_seqs=6, progress=False, device="cpu",
                      dropout=0.0, seed=5, compile=False)
    stacked = train_batched(cfg, _proxies(corpus, tmp_path / "s", [MIXES[0]], [5]))[0]
    hf = train(cfg, _proxies(corpus, tmp_path / "h", [MIXES[0]], [5])[0].source, tmp_path / "hf")
    a, b = np.array(stacked.curve["train"]["mean"]), np.array(hf.curve["train"]["mean"])
    assert len(a) == len(b) == 12 and a[-3:].mean() < a[0] - 0.15  # it learns
    assert abs(a[0] - b[0]) < 1e-5  # the first step: the same model, batch and masks
    assert np.abs(a - b).max() < 1e-5, np.abs(a - b)  # measured: at most 1.5e-7 on a CPU
    for d in DOMAINS:
        assert abs(stacked.final_loss[d] - hf.final_loss[d]) < 1e-5
    assert stacked.tokens_per_domain == hf.tokens_per_domain and stacked.tokens_seen == hf.tokens_seen
