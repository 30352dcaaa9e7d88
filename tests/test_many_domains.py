"""1,000 domains end to end: corpus -> build-shards -> MixtureStream, per-domain counts exact;
the sidecar widens to uint16 past 255 domains, and older shard folders are refused in one line."""
import json

import numpy as np
import pytest

from mixer import MixtureStream
from mixer.core.errors import MixerError
from mixer.formats.shards import FORMAT_VERSION, read_index, read_shard_domains, sidecar_dtype
from mixer.shards.plan import PlanConfig, build_plan
from mixer.shards.write import ShardConfig, write_shards
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

K = 1000


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    names = [f"d{i:04d}" for i in range(K)]
    lengths = {n: lognormal_lengths(40, 40, 0.8, seed=i) for i, n in enumerate(names)}
    write_synthetic_corpus(root / "corpus", lengths, vocab_size=512, seed=0)
    w = np.random.default_rng(0).dirichlet(np.full(K, 5.0))  # every domain holds ~1600 tokens, needs ~200
    weights = dict(zip(names, (w / w.sum()).tolist()))
    plan = build_plan(root / "corpus", weights, PlanConfig(tokens=200_000, seq_len=64, seed=3, max_epochs=1))
    write_shards(plan, root / "corpus", root / "shards", ShardConfig(shard_tokens=1 << 14))
    return root, plan


def test_sidecar_dtype():
    assert sidecar_dtype(255) == np.uint8 and sidecar_dtype(256) == np.uint16 and sidecar_dtype(65535) == np.uint16
    with pytest.raises(MixerError, match="65535"):
        sidecar_dtype(65536)


def test_thousand_domains_counts_exact(built):
    root, plan = built
    index = read_index(root / "shards")
    assert index.domain_dtype == "uint16" and len(index.domain_order) == K
    first = index.shards[0].file
    assert read_shard_domains(root / "shards" / first, index).dtype == np.uint16
    counts = np.zeros(K, np.int64)
    for item in MixtureStream(root / "shards", rank=0, world_size=1):
        counts += np.bincount(item["domain_ids"].numpy(), minlength=K)
    want = np.array([index.domains[d].realised_tokens for d in index.domain_order])
    assert np.array_equal(counts, want)
    assert np.array_equal(want, [index.domains[d].target_tokens for d in index.domain_order])
    assert np.array_equal(counts, plan.realised())
    assert int((counts > 0).sum()) > 255  # ids past the uint8 range really occur
    assert counts.sum() == index.budget_tokens


def test_older_folder_is_refused_in_one_line(built):
    root, _ = built
    ix = json.loads((root / "shards" / "index.json").read_text())
    ix["format_version"] = FORMAT_VERSION - 1
    old = root / "old"
    old.mkdir()
    (old / "index.json").write_text(json.dumps(ix))
    with pytest.raises(MixerError, match=f"format_version {FORMAT_VERSION - 1} is not supported") as e:
        read_index(old)
    assert "\n" not in str(e.value) and "rebuild" in str(e.value)


def test_unknown_domain_named_in_one_short_line(built):
    """A typo among 1,000 domains: the error names it and a few known ones, not all 1,000."""
    root, _ = built
    from mixer.formats.corpus import open_split
    from mixer.formats.weights import validate_weights

    names = [f"d{i:04d}" for i in range(K)]
    with pytest.raises(MixerError) as caught:
        validate_weights({"d0000": 0.5, "typo": 0.5}, names, source="w.json")
    message = str(caught.value)
    assert message.startswith("w.json: unknown domain 'typo'; the corpus has: d0000, d0001,")
    assert message.endswith("... (1,000 in all)") and "d0999" not in message and len(message) < 200
    with pytest.raises(MixerError, match=r"known domains: d0000, .*\(1,000 in all\)$") as caught:
        open_split(root / "corpus", "typo")
    assert "d0999" not in str(caught.value)
