"""Shards are byte-identical to those of earlier releases for the same inputs.

`build-shards` is made faster over time (lazy Arrow parts, fewer imports, more threads); none of
that may change a byte of what it writes. `GOLDEN` (tests/data/build_golden.json) holds the
sha256 of every file that the code of commit cf52aa0 (before the whole-command speed work of
issue 28) wrote for these seeded synthetic corpora: a causal mixture in several shards, the same from domains cut into three Arrow
parts each, masked LM, a two-stage schedule, 300 domains (a uint16 sidecar) with further epochs,
and the Ray path's tasks run in this process.
index.json is hashed without the fields that name the corpus manifest's bytes (its sha256 and the
index's own seal), which depend on the Arrow writer's version rather than on mixer, and without
`corpus_path`, which depends on where the temporary folders are.
"""
import hashlib
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mixer.formats.corpus import load_manifest, open_split, save_manifest, write_part
from mixer.formats.schedule import make_schedule
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
from mixer.shards import build
from mixer.shards.distributed import write_shards_on_cluster
from mixer.shards.plan import PlanConfig, build_plan
from mixer.shards.write import ShardConfig

GOLDEN = Path(__file__).parent / "data" / "build_golden.json"


def file_digests(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.iterdir()):
        data = p.read_bytes()
        if p.name == "index.json":
            obj = json.loads(data)
            obj.pop("corpus_manifest_sha256")
            obj.pop("checksum")
            obj.pop("corpus_path")  # where the test's temporary folders are
            data = json.dumps(obj, sort_keys=True).encode()
        out[p.name] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    small = root / "small"
    write_synthetic_corpus(small, {"code": lognormal_lengths(400, 60, 1.0, 1), "news": lognormal_lengths(600, 40, 0.8, 2),
                                   "wiki": lognormal_lengths(250, 90, 1.2, 3)}, vocab_size=5000, seed=5)
    many = root / "many"
    write_synthetic_corpus(many, {f"d{i:03d}": lognormal_lengths(8, 40, 0.5, 100 + i) for i in range(300)},
                           vocab_size=70000, seed=9)  # uint32 tokens, uint16 sidecar
    return {"small": small, "many": many, "parts": split_into_parts(small, root / "parts", 3)}


def split_into_parts(src: Path, out: Path, n: int) -> Path:
    """`src` again with every train split cut into `n` Arrow parts (documents in the same order)."""
    manifest = load_manifest(src)
    domains = {}
    for name, info in manifest.domains.items():
        whole = open_split(src, name, "train").parts[0]
        cuts = np.linspace(0, len(whole.doc_ids), n + 1).astype(int)
        files = []
        for p, (a, b) in enumerate(itertools.pairwise(cuts)):
            rel = f"{name}/train/part-{p:05d}.arrow"
            (out / name / "train").mkdir(parents=True, exist_ok=True)
            offsets = whole.offsets[a:b + 1]
            write_part(out / rel, whole.doc_ids[a:b], offsets - offsets[0], whole.values[offsets[0]:offsets[-1]])
            files.append(rel)
        held = info.splits["heldout"]
        (out / name / "heldout").mkdir(parents=True, exist_ok=True)
        (out / held.files[0]).write_bytes((src / held.files[0]).read_bytes())
        domains[name] = replace(info, splits={"train": replace(info.splits["train"], files=files), "heldout": held})
    save_manifest(out, replace(manifest, domains=domains))
    return out


def cases(corpora, out: Path) -> dict[str, Path]:
    """Build every case under `out`; {case: its folder}."""
    small, many = corpora["small"], corpora["many"]
    w = {"code": 0.25, "news": 0.45, "wiki": 0.3}
    shards = ShardConfig(shard_tokens=4096, workers=2)
    built = {}

    def case(name, *args, **kw):
        built[name] = out / name
        build(*args[:2], built[name], **kw)

    case("causal", small, w, plan=PlanConfig(tokens=30_000, seq_len=128, seed=7), shards=shards)
    case("causal_one_thread", small, w, plan=PlanConfig(tokens=30_000, seq_len=128, seed=7),
         shards=ShardConfig(shard_tokens=4096, workers=1))
    case("mlm", small, w, plan=PlanConfig(tokens=40_000, seq_len=64, seed=3, objective="mlm"), shards=shards)
    schedule = make_schedule([(12_800, {"code": 0.6, "news": 0.2, "wiki": 0.2}),
                              (25_600, {"code": 0.1, "news": 0.5, "wiki": 0.4})])
    case("schedule", small, schedule, plan=PlanConfig(tokens=25_600, seq_len=128, seed=1), shards=shards)
    wm = {f"d{i:03d}": float(x) for i, x in enumerate(np.random.default_rng(4).dirichlet(np.ones(300)))}
    case("many_domains", many, wm, plan=PlanConfig(tokens=40_000, seq_len=100, seed=2, max_epochs=float("inf")),
         shards=ShardConfig(shard_tokens=20_000, workers=2))
    case("multi_part", corpora["parts"], w, plan=PlanConfig(tokens=30_000, seq_len=128, seed=7), shards=shards)
    built["cluster_in_process"] = out / "cluster_in_process"
    plan = build_plan(small, w, PlanConfig(tokens=30_000, seq_len=128, seed=7))
    write_shards_on_cluster(plan, small, built["cluster_in_process"], shards, cluster=None)
    return built


def test_shards_are_byte_identical_to_the_recorded_ones(corpora, tmp_path):
    got = {name: file_digests(folder) for name, folder in cases(corpora, tmp_path).items()}
    # threads, the Ray path and parts (the same documents cut into 3 Arrow files per domain): same shards
    assert got["causal"] == got["causal_one_thread"] == got["cluster_in_process"]
    assert {k: v for k, v in got["multi_part"].items() if k != "index.json"} == \
        {k: v for k, v in got["causal"].items() if k != "index.json"}
    assert len(got["causal"]) == 2 * 8 + 1 and len(got["many_domains"]) == 2 * 2 + 1
    assert got == json.loads(GOLDEN.read_text())
