"""`mixer inspect`: the index table, checksum verification naming a bad shard, decoded samples."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from support import corrupt_copy
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from mixer.cli import main
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
from mixer.shards.plan import PlanConfig, build_plan
from mixer.shards.write import ShardConfig, write_shards

VOCAB = 500


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inspect")
    corpus = root / "corpus"
    # a word-level tokenizer over the synthetic ids, so samples decode to "w17 w3 ..."
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(VOCAB)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    tok.save(str(root / "tokenizer.json"))
    write_synthetic_corpus(corpus, {"alpha": lognormal_lengths(80, 30, 0.8, 1), "beta": lognormal_lengths(80, 30, 0.8, 2)},
                           vocab_size=VOCAB, seed=1, tokenizer=root / "tokenizer.json")
    plan = build_plan(corpus, {"alpha": 0.75, "beta": 0.25}, PlanConfig(tokens=2000, seq_len=40, seed=2))
    write_shards(plan, corpus, root / "shards", ShardConfig(shard_tokens=400, workers=1))
    return corpus, root / "shards"


def invoke(*args: str):
    return CliRunner().invoke(main, ["inspect", *args])


def test_inspect_prints_index_and_verifies(built):
    _, shards = built
    r = invoke(str(shards))
    assert r.exit_code == 0, r.output
    for text in ("alpha", "beta", "0.75", "0.25", "1,500", "500", "5 shards", "seq_len 40", "verified 5 shards"):
        assert text in r.output, text


def test_inspect_samples_decode_with_the_corpus_tokenizer(built):
    corpus, shards = built
    r = invoke(str(shards), "--sample", "2", "--corpus", str(corpus), "--no-verify")
    assert r.exit_code == 0, r.output
    assert "sequence 0 of 50" in r.output and "sequence 25 of 50" in r.output
    assert "[alpha]" in r.output and "<EOS>" in r.output and " w" in r.output
    without = invoke(str(shards), "--sample", "2", "--no-verify")  # the corpus index.json records
    assert without.exit_code == 0, without.output
    assert without.output == r.output


def test_shards_record_their_corpus_and_a_moved_corpus_names_both_paths(built, tmp_path):
    import json
    import shutil

    from mixer.formats.shards import corpus_of, read_index

    corpus, shards = built
    index = read_index(shards)
    assert index.corpus_path == "../corpus"  # relative: the two folders move together
    assert corpus_of(shards, index).folder == corpus
    tree = tmp_path / "moved-tree"  # both folders moved together: still found
    shutil.copytree(corpus, tree / "corpus")
    shutil.copytree(shards, tree / "shards")
    assert invoke(str(tree / "shards"), "--sample", "1", "--no-verify").exit_code == 0
    shutil.move(tree / "corpus", tmp_path / "elsewhere")  # the corpus alone moved
    r = invoke(str(tree / "shards"), "--sample", "1", "--no-verify")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert str(tree / "shards") in r.output and str(tree / "corpus") in r.output and "pass --corpus" in r.output
    assert invoke(str(tree / "shards"), "--sample", "1", "--no-verify", "--corpus",
                  str(tmp_path / "elsewhere")).exit_code == 0
    # another corpus at the recorded place: its sha256 differs
    shutil.copytree(tmp_path / "elsewhere", tree / "corpus")
    manifest = json.loads((tree / "corpus" / "corpus.json").read_text())
    manifest["seed"] = manifest.get("seed", 0) + 1
    (tree / "corpus" / "corpus.json").write_text(json.dumps(manifest))
    r = invoke(str(tree / "shards"), "--sample", "1", "--no-verify")
    assert r.exit_code == 2 and "another corpus" in r.output and str(tree / "corpus") in r.output, r.output


def test_inspect_names_a_corrupt_shard(built, tmp_path):
    _, shards = built
    bad = corrupt_copy(shards, tmp_path / "bad", "shard-00003.zst", offset=-3, xor=1)
    r = invoke(str(bad))
    assert r.exit_code == 2
    assert "shard-00003.zst: checksum mismatch" in r.output
