"""`mixer build-shards` end to end through the CLI: bytes, checksums, errors."""
import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.core.errors import MixerError
from mixer.shards.gather import gather_sequences, open_sources
from mixer.shards.plan import PlanConfig, build_plan
from mixer.formats.shard_index import SpecialTokens
from mixer.formats.shards import read_index, read_shard, read_shard_domains, verify_shards
from mixer.formats.schema import seal
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

WEIGHT_ARGS = ["--weight", "code=0.25", "--weight", "news=0.45", "--weight", "wiki=0.3"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("shards") / "corpus"
    write_synthetic_corpus(path, {"code": lognormal_lengths(500, 60, 1.0, 1), "news": lognormal_lengths(700, 40, 0.8, 2),
                                  "wiki": lognormal_lengths(300, 90, 1.2, 3)}, vocab_size=5000, seed=5)
    return path


def build(corpus, out, *extra, weights=WEIGHT_ARGS, tokens="30k"):
    args = ["build-shards", "--corpus", str(corpus), *weights, "--tokens", tokens, "--seq-len", "128",
            "--data-seed", "7", "--out", str(out), "--shard-tokens", "4096", *extra]
    return CliRunner().invoke(main, args)


def folder_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_byte_identical_across_runs_and_threads(corpus, tmp_path):
    r1 = build(corpus, tmp_path / "a", "--threads", "1")
    assert r1.exit_code == 0, r1.output
    r2 = build(corpus, tmp_path / "b", "--threads", "2")
    r3 = build(corpus, tmp_path / "c", "--threads", "3")
    assert r2.exit_code == 0 and r3.exit_code == 0
    a = folder_bytes(tmp_path / "a")
    assert a == folder_bytes(tmp_path / "b") == folder_bytes(tmp_path / "c")
    assert len([n for n in a if n.endswith(".zst")]) == 2 * 8  # 234 rows of 128 in shards of 32 rows
    assert "realised" in r1.output and "wiki" in r1.output


def test_rounded_weights_are_normalised_with_a_note(corpus, tmp_path):
    """Three typed thirds sum to 0.999: accepted as the shares they stand for, and said so."""
    thirds = ["--weight", "code=0.333", "--weight", "news=0.333", "--weight", "wiki=0.333"]
    r = build(corpus, tmp_path / "t", weights=thirds, tokens="20k")
    assert r.exit_code == 0, r.output
    assert ("note: --weight: the weights sum to 0.999; normalised to sum to 1 (code=0.333333, news=0.333333, "
            "wiki=0.333333)") in r.stderr
    assert read_index(tmp_path / "t").weights == pytest.approx({"code": 1 / 3, "news": 1 / 3, "wiki": 1 / 3})
    far = ["--weight", "code=1", "--weight", "news=1", "--weight", "wiki=2"]
    r = build(corpus, tmp_path / "f", weights=far, tokens="20k")
    assert r.exit_code == 2 and r.stderr.strip().endswith("normalise them or pass --normalize"), r.stderr
    r = build(corpus, tmp_path / "n", "--normalize", weights=far, tokens="20k")
    assert r.exit_code == 0, r.output
    assert read_index(tmp_path / "n").weights == {"code": 0.25, "news": 0.25, "wiki": 0.5}


def test_a_subset_of_domains_gives_the_rest_weight_zero_with_a_note(corpus, tmp_path):
    """As Megatron's blend and HF interleaving: a map naming some domains samples only those."""
    r = build(corpus, tmp_path / "sub", weights=["--weight", "code=1"], tokens="20k")
    assert r.exit_code == 0, r.output
    assert "note: --weight: no weight for domains 'news', 'wiki': weight 0 (not sampled)" in r.output
    index = read_index(tmp_path / "sub")
    assert index.weights == {"code": 1.0, "news": 0.0, "wiki": 0.0}
    assert index.domains["code"].realised_tokens == index.budget_tokens
    sides = np.concatenate([read_shard_domains(tmp_path / "sub" / e.file) for e in index.shards])
    assert set(np.unique(sides)) == {index.domains["code"].index}
    full = build(corpus, tmp_path / "full", weights=["--weight", "code=1", "--weight", "news=0", "--weight", "wiki=0"],
                 tokens="20k")
    assert full.exit_code == 0 and "no weight" not in full.output
    assert folder_bytes(tmp_path / "sub") == folder_bytes(tmp_path / "full")  # the same mixture, the same bytes


def test_shards_hold_the_plan_stream_and_verify(corpus, tmp_path):
    assert build(corpus, tmp_path / "s").exit_code == 0
    index = read_index(tmp_path / "s")
    assert verify_shards(tmp_path / "s") == index.num_sequences == 234
    tokens = np.concatenate([read_shard(tmp_path / "s" / e.file) for e in index.shards])
    domains = np.concatenate([read_shard_domains(tmp_path / "s" / e.file) for e in index.shards])
    plan = build_plan(corpus, {"code": 0.25, "news": 0.45, "wiki": 0.3}, PlanConfig(tokens=30_000, seq_len=128, seed=7))
    want, want_dom = gather_sequences(plan, open_sources(corpus, plan), 0, plan.num_sequences)
    np.testing.assert_array_equal(tokens, want)
    np.testing.assert_array_equal(domains, want_dom)
    for name, d in index.domains.items():
        assert d.realised_tokens == d.target_tokens == int(np.sum(domains == d.index))
    assert index.budget_tokens == 29_952 and index.tokens_requested == 30_000
    for key in ("format_version", "seq_len", "dtype", "eos_id", "objective", "weights", "seed",
                "corpus_manifest_sha256"):
        assert key in index.to_dict()
    assert all(e.file and e.sequences and len(e.xxh64) == 16 and len(e.sha256) == 64 for e in index.shards)


def test_seed_changes_bytes_not_counts(corpus, tmp_path):
    assert build(corpus, tmp_path / "a").exit_code == 0
    r = CliRunner().invoke(main, ["build-shards", "--corpus", str(corpus), *WEIGHT_ARGS, "--tokens", "30k",
                                  "--seq-len", "128", "--data-seed", "8", "--out", str(tmp_path / "b"),
                                  "--shard-tokens", "4096"])
    assert r.exit_code == 0
    a, b = read_index(tmp_path / "a"), read_index(tmp_path / "b")
    assert {n: d.realised_tokens for n, d in a.domains.items()} == \
           {n: d.realised_tokens for n, d in b.domains.items()}
    assert a.shards[0].xxh64 != b.shards[0].xxh64


def test_corrupt_shard_is_named(corpus, tmp_path):
    assert build(corpus, tmp_path / "s").exit_code == 0
    shard = tmp_path / "s" / "shard-00003.zst"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(MixerError, match="shard-00003.zst: checksum mismatch"):
        read_shard(shard)
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    index["format_version"] = 99
    (tmp_path / "s" / "index.json").write_text(json.dumps(seal(index)))  # as a newer writer would seal it
    with pytest.raises(MixerError, match="format_version 99"):
        read_shard(tmp_path / "s" / "shard-00000.zst")


def test_mlm_and_weights_file(corpus, tmp_path):
    wfile = tmp_path / "w.json"
    wfile.write_text(json.dumps({"weights": {"code": 0.5, "news": 0.5, "wiki": 0.0}}))
    r = build(corpus, tmp_path / "m", "--objective", "mlm", weights=["--weights", str(wfile)], tokens="12800")
    assert r.exit_code == 0, r.output
    index = read_index(tmp_path / "m")
    assert index.special_tokens == SpecialTokens(cls=5001, sep=5002, pad=5000)
    assert [index.domains[d].target_sequences for d in ("code", "news", "wiki")] == [50, 50, 0]
    rows = np.concatenate([read_shard(tmp_path / "m" / e.file) for e in index.shards])
    assert rows.shape == (100, 128) and np.all(rows[:, 0] == 5001)


def test_overwrite_replaces(corpus, tmp_path):
    assert build(corpus, tmp_path / "s").exit_code == 0
    r = build(corpus, tmp_path / "s", "--overwrite", tokens="20k")
    assert r.exit_code == 0 and read_index(tmp_path / "s").tokens_requested == 20_000


def _break_arrow(corpus, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(corpus, bad)
    f = bad / "news/train/part-00000.arrow"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return bad


def _edit_manifest(corpus, tmp_path, reseal: bool):
    bad = tmp_path / "bad"
    shutil.copytree(corpus, bad)
    m = json.loads((bad / "corpus.json").read_text())
    m["domains"]["wiki"]["splits"]["train"]["tokens"] += 1
    (bad / "corpus.json").write_text(json.dumps(seal(m) if reseal else m))
    return bad


def _break_manifest(corpus, tmp_path):
    return _edit_manifest(corpus, tmp_path, reseal=True)  # sealed: a consistent file that lies about counts


def _damage_manifest(corpus, tmp_path):
    return _edit_manifest(corpus, tmp_path, reseal=False)  # not resealed: the damage is the manifest's own


ERRORS = {
    "off the simplex": (["--weight", "code=0.5", "--weight", "news=0.45", "--weight", "wiki=0.3"], None, "sum to"),
    "unknown domain": (WEIGHT_ARGS + ["--weight", "poetry=0"], None, "unknown domain 'poetry'"),
    "negative weight": (["--weight", "code=-0.1", "--weight", "news=0.8", "--weight", "wiki=0.3"], None, ">= 0"),
    "too small": (["--weight", "code=0.1", "--weight", "news=0.1", "--weight", "wiki=0.8"], "200k",
                  "domain 'wiki' has .* tokens .* needs 159949; .*--max-epochs"),
    "corrupt arrow": (WEIGHT_ARGS, _break_arrow, r"part-00000.arrow: \d+ bytes but corpus.json records \d+ \(truncated"),
    "manifest mismatch": (WEIGHT_ARGS, _break_manifest, "manifest mismatch"),
    "damaged manifest": (WEIGHT_ARGS, _damage_manifest, "corpus.json: damaged corpus manifest"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_is_one_line_exit_2_nothing_written(corpus, tmp_path, case):
    weights, fixture, pattern = ERRORS[case]
    src, tokens = corpus, "30k"
    if callable(fixture):
        src = fixture(corpus, tmp_path)
    elif fixture:
        tokens = fixture
    out_parent = tmp_path / "outs"
    out_parent.mkdir()
    r = build(src, out_parent / "s", weights=weights, tokens=tokens)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    
    assert re.search(pattern, lines[0]), lines[0]
    assert list(out_parent.iterdir()) == []


def test_existing_output_is_refused_and_untouched(corpus, tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = build(corpus, out)
    assert r.exit_code == 2 and "--overwrite" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["s"] and (out / "keep.txt").read_text() == "mine"


def test_both_or_neither_mixture_source(corpus, tmp_path):
    r = build(corpus, tmp_path / "s", weights=[])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_interrupted_build_leaves_nothing_that_looks_complete(corpus, tmp_path):
    from mixer.shards.write import ShardConfig, write_shards

    plan = build_plan(corpus, {"code": 0.25, "news": 0.45, "wiki": 0.3}, PlanConfig(tokens=30_000, seq_len=128))

    def stop(done, total):
        if done > 32:
            raise KeyboardInterrupt  # what a Ctrl-C between shards does

    with pytest.raises(KeyboardInterrupt):
        write_shards(plan, corpus, tmp_path / "s", ShardConfig(shard_tokens=4096, workers=2),
                     on_shard=stop)
    assert list(tmp_path.iterdir()) == []


def test_quiet_prints_one_summary_line_and_no_table(corpus, tmp_path):
    """--quiet: one line (shards, tokens, domains, rate, where), not a row per domain (at 10,000
    domains the table alone was 10,000 lines); without it, the per-domain table."""
    quiet = build(corpus, tmp_path / "q", "--quiet")
    assert quiet.exit_code == 0, quiet.output
    lines = [line for line in quiet.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "3 domains" in lines[0] and str(tmp_path / "q") in lines[0]
    loud = build(corpus, tmp_path / "l")
    assert loud.exit_code == 0 and all(d in loud.stdout for d in ("code", "news", "wiki"))


def test_garbage_collection_is_back_on_after_a_build_and_after_a_failed_one(corpus, tmp_path, monkeypatch):
    """build-shards pauses the cyclic collector while it builds (10,000 domains: 0.3 s of full
    collections that free nothing), and hands the process back as it found it: the collector
    on, nothing left frozen (the build's objects go to the oldest generation, not out of the
    collector's reach: a longer process frees their cycles as ever), and of its objects only the
    last build's corpus and stats kept for the exit."""
    import gc

    seen = []
    real_build = __import__("mixer.shards", fromlist=["build"]).build

    def spy(*args, **kw):
        seen.append(gc.isenabled())
        return real_build(*args, **kw)

    monkeypatch.setattr("mixer.shards.build", spy)
    assert build(corpus, tmp_path / "a").exit_code == 0
    assert build(corpus, tmp_path / "a").exit_code == 2  # exists: refused before any work
    assert build(corpus, tmp_path / "b", weights=["--weight", "code=1.5"]).exit_code == 2  # fails in the build
    assert seen[0] is False and gc.isenabled() and gc.get_freeze_count() == 0
    from mixer.cli.commands import build_shards

    assert [type(x).__name__ for x in build_shards._LEFT] == ["Corpus", "BuildStats"]
    gc.disable()
    try:  # a process that had it off keeps it off
        assert build(corpus, tmp_path / "c").exit_code == 0 and not gc.isenabled()
    finally:
        gc.enable()
