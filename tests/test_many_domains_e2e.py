"""1,000 domains through every step: text folders -> `prepare` -> `build-shards` -> MixtureStream ->
the DDO solve, with exact per-domain token counts and the known optimum recovered."""
from __future__ import annotations

import numpy as np
import pytest

from mixer import MixtureStream
from mixer.formats.corpus import load_manifest
from mixer.formats.shards import read_index
from mixer.prepare.config import DomainSource, PrepareConfig
from mixer.prepare.pipeline import prepare_corpus
from mixer.prepare.rules import PrepareRules
from mixer.shards.plan import PlanConfig, build_plan
from mixer.shards.write import ShardConfig, write_shards
from support import ddo_sweep, write_runs
from mixer.solver.ddo import solve_ddo
from mixer.solver.ddo_model import DDO, Starts
from mixer.solver.runs import group_ddo, read_runs

K = 1000
WORDS = ("time year people way day man thing woman life child world school state family student group country "
         "problem hand part place case week company system program question work government number night point "
         "home water room mother area money story fact month lot right study book eye job word business issue "
         "side kind head house service friend father power hour game line end member law car city community name "
         "president team minute idea kid body information back parent face others level office door health").split()


def write_text_domains(root, k: int, docs: int = 4) -> list[DomainSource]:
    """k folders of English-like text, each domain with its own Zipf skew over the words."""
    rng = np.random.default_rng(0)
    sources = []
    for i in range(k):
        folder = root / f"d{i:04d}"
        folder.mkdir(parents=True)
        p = 1.0 / np.arange(1, len(WORDS) + 1) ** (0.8 + (i % 7) * 0.1)
        p = np.roll(p / p.sum(), i % len(WORDS))
        for j in range(docs):
            words = rng.choice(WORDS, size=260, p=p)
            (folder / f"{j}.txt").write_text(" ".join(words).capitalize() + ".\n")
        sources.append(DomainSource(name=f"d{i:04d}", path=folder, kind="web"))
    return sources


@pytest.mark.slow
def test_thousand_domains_prepare_build_stream_solve(tmp_path):
    sources = write_text_domains(tmp_path / "raw", K)
    prepare_corpus(PrepareConfig(sources=tuple(sources), out=tmp_path / "corpus", heldout_docs=1, workers=2,
                                 rules=PrepareRules(min_chars=500, cut_chars=1000), progress=False))
    manifest = load_manifest(tmp_path / "corpus")
    assert len(manifest.domain_names) == K
    weights = dict(zip(manifest.domain_names, np.random.default_rng(1).dirichlet(np.full(K, 8.0)).tolist()))
    plan = build_plan(tmp_path / "corpus", weights, PlanConfig(tokens=150_000, seq_len=64, seed=0))
    write_shards(plan, tmp_path / "corpus", tmp_path / "shards", ShardConfig(shard_tokens=1 << 14))
    index = read_index(tmp_path / "shards")
    counts = np.zeros(K, np.int64)
    for item in MixtureStream(tmp_path / "shards", rank=0, world_size=1):
        counts += np.bincount(item["domain_ids"].numpy(), minlength=K)
    assert np.array_equal(counts, [index.domains[d].target_tokens for d in index.domain_order])
    assert counts.sum() == index.budget_tokens and int((counts > 0).sum()) > 255

    # The solve over the same 1,000 domains: a plain-form sweep (x3, grown totals) with known optimum.
    rng = np.random.default_rng(2)
    b = rng.uniform(0.2, 1.0, K)
    runs = ddo_sweep(manifest.domain_names, np.zeros(K), b, budget=10_000_000, factors=(3.0,))
    data = group_ddo(read_runs(write_runs(tmp_path / "runs", runs)))
    est = DDO(form="plain", n_bootstrap=0, starts=Starts(fit=2)).fit(data)
    truth = solve_ddo(np.zeros(K), b, float(K)).weights
    got = np.array([est.weights_[d] for d in manifest.domain_names])
    assert abs(got.sum() - 1) < 1e-9 and np.max(np.abs(got - truth)) < 1e-4
