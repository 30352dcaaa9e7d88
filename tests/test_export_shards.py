"""`mixer export-shards --format megatron`: megatron-core's own `IndexedDataset` reads our `.bin` +
`.idx` back equal to the shards, sequence for sequence; the same shards give the same bytes; the
dtype follows Megatron's rule for the vocabulary; bad input is one line, exit 2, nothing written."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from mixer.cli.main import main
from mixer.export.indexed import index_bytes, token_dtype
from mixer.formats.shards import read_shard
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus
from mixer.shards.plan import PlanConfig, build_plan
from mixer.shards.write import ShardConfig, write_shards

SEQ_LEN = 32


def make_shards(tmp_path, objective="causal", vocab_size=2000):
    corpus = tmp_path / "corpus"
    write_synthetic_corpus(corpus, {"code": lognormal_lengths(120, 40, 1.0, 1), "news": lognormal_lengths(200, 50, 1.0, 2)},
                           vocab_size=vocab_size, seed=5)
    plan = build_plan(corpus, {"code": 0.3, "news": 0.7},
                      PlanConfig(tokens=90 * SEQ_LEN + 5, seq_len=SEQ_LEN, seed=3, objective=objective))
    out = tmp_path / "shards"
    write_shards(plan, corpus, out, ShardConfig(shard_tokens=25 * SEQ_LEN, workers=1))
    return out


def megatron_dataset(prefix):
    with warnings.catch_warnings():  # megatron-core warns on import that Apex / Transformer Engine are absent
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDataset
    return IndexedDataset(str(prefix))


def test_megatron_core_reads_the_stream_back_sequence_for_sequence(tmp_path):
    shards = make_shards(tmp_path)
    (tmp_path / "out").mkdir()
    r = CliRunner().invoke(main, ["export-shards", str(shards), "--format", "megatron", "--out", str(tmp_path / "out/mix")])
    assert r.exit_code == 0, r.output
    expected = np.concatenate([read_shard(f) for f in sorted(shards.glob("shard-?????.zst"))])
    assert expected.shape[0] > 75 and len(list(shards.glob("shard-?????.zst"))) >= 3  # several shards, in order
    ds = megatron_dataset(tmp_path / "out/mix")
    assert len(ds) == expected.shape[0]
    assert ds.index.dtype == np.uint16  # vocabulary 2000 < 65,500: Megatron's uint16
    for i in range(len(ds)):
        assert np.array_equal(ds[i], expected[i]), i
    assert list(ds.document_indices) == list(range(len(ds) + 1))  # one document per sequence
    assert ds.get(5, offset=3, length=4).tolist() == expected[5, 3:7].tolist()
    assert f"{len(ds):,} sequences, {expected.size:,} uint16 tokens (vocabulary 2,000)" in r.stdout


def test_same_shards_same_bytes(tmp_path):
    shards = make_shards(tmp_path)
    for name in ("a", "b"):
        r = CliRunner().invoke(main, ["export-shards", str(shards), "--format", "megatron", "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"a{ext}").read_bytes() == (tmp_path / f"b{ext}").read_bytes()


def test_dtype_follows_megatrons_rule():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import DType
    for vocab in (2, 50257, 65499, 65500, 100278, 2**20):
        assert token_dtype(vocab) == np.dtype(DType.optimal_dtype(vocab))


def test_a_large_vocabulary_is_written_as_int32(tmp_path):
    """The writer's int32 path, read back by megatron-core (ids past uint16)."""
    from mixer.export.indexed import IndexedWriter

    rows = np.array([[70000, 1, 2], [3, 99999, 5]], dtype=np.uint32)
    with IndexedWriter(tmp_path / "big", token_dtype(100278)) as writer:
        writer.add(rows)
    ds = megatron_dataset(tmp_path / "big")
    assert ds.index.dtype == np.int32 and [ds[i].tolist() for i in range(2)] == rows.tolist()
    assert index_bytes(np.array([3, 3]), np.dtype(np.int32), np.array([1, 2])) == (tmp_path / "big.idx").read_bytes()


@pytest.mark.parametrize("case, message", [
    ("mlm", "mlm shards"),
    ("missing", "index.json"),
    ("inside", "inside the shards folder"),
    ("no-folder", "does not exist"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, case, message):
    shards = make_shards(tmp_path, objective="mlm" if case == "mlm" else "causal")
    out = {"inside": shards / "mix", "no-folder": tmp_path / "nowhere/mix"}.get(case, tmp_path / "mix")
    src = tmp_path / "no-shards" if case == "missing" else shards
    r = CliRunner().invoke(main, ["export-shards", str(src), "--format", "megatron", "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.idx")) and not list(tmp_path.rglob(".*.tmp-*"))


def test_unknown_format_exits_2(tmp_path):
    from mixer.core.errors import MixerError
    from mixer.export.shards import ShardExportSpec, export_shards

    r = CliRunner().invoke(main, ["export-shards", str(tmp_path), "--format", "mds", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "mds" in r.stderr
    with pytest.raises(MixerError, match="unknown format"):
        export_shards(ShardExportSpec(shards=tmp_path, format="mds", out=tmp_path / "x"))
