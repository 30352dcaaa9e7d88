"""Corpus and shard integrity: per-file checksums, Arrow validation, sealed manifests, `mixer verify`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xxhash
from click.testing import CliRunner
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from mixer.cli import main
from mixer.core.errors import MixerError
from mixer.formats import checksums
from mixer.formats.corpus import load_manifest, open_split, save_manifest, write_part
from mixer.formats.schema import seal
from mixer.shards.gather import open_sources
from mixer.shards.plan import PlanConfig, build_plan
from mixer.shards.write import ShardConfig, write_shards
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

VOCAB = 300
WEIGHTS = {"alpha": 0.6, "beta": 0.4}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("integrity")
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(VOCAB)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    tok.save(str(root / "tok.json"))
    corpus = root / "corpus"
    write_synthetic_corpus(corpus, {"alpha": lognormal_lengths(60, 30, 0.8, 1), "beta": lognormal_lengths(60, 30, 0.8, 2)},
                           {"alpha": [20, 30], "beta": [25]}, vocab_size=VOCAB, seed=1, tokenizer=root / "tok.json")
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=1600, seq_len=40, seed=2))
    write_shards(plan, corpus, root / "shards", ShardConfig(shard_tokens=400, workers=1))
    return corpus, root / "shards"


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def flip(path: Path, offset: int, xor: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= xor
    path.write_bytes(bytes(data))


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_corpus_json_records_size_xxh3_and_sha256_of_every_file(built):
    corpus, _ = built
    m = load_manifest(corpus)
    parts = {f for d in m.domains.values() for s in d.splits.values() for f in s.files}
    assert set(m.files) == parts | {"tokenizer.json"}
    for rel, c in m.files.items():
        data = (corpus / rel).read_bytes()
        assert c.bytes == len(data) and c.xxh3_64 == xxhash.xxh3_64_hexdigest(data)
        assert c.sha256 == checksums.file_checksum(corpus / rel).sha256


def test_a_flipped_byte_in_an_arrow_part_is_named_not_sampled(built, tmp_path):
    corpus = copy(built[0], tmp_path / "c")
    part = corpus / "alpha/train/part-00000.arrow"
    flip(part, part.stat().st_size - 200, 0x5B)  # inside the token values: parses fine, wrong tokens
    with pytest.raises(MixerError, match=r"alpha/train/part-00000.arrow: checksum mismatch .*re-run `mixer prepare`"):
        build_plan(corpus, WEIGHTS, PlanConfig(tokens=1600, seq_len=40, seed=2))


def _write_part_with_offsets(path: Path, offsets: list[int]) -> None:
    """A valid 3-document part, then its offsets buffer overwritten in the file's bytes (what a
    damaged disk could do), so only the reader's own checks stand in the way."""
    good = np.array([0, 5, 9, 10], dtype=np.int64)
    write_part(path, np.arange(3, dtype=np.uint64), good, np.arange(10, dtype=np.uint16))
    data = path.read_bytes()
    assert data.count(good.tobytes()) == 1
    path.write_bytes(data.replace(good.tobytes(), np.array(offsets, dtype=np.int64).tobytes()))


@pytest.mark.parametrize("offsets", [[0, 5, 3, 10], [0, 5, 9, 4000], [-8, 2, 5, 10]],
                         ids=["not monotone", "past the values", "negative"])
def test_bad_offsets_are_refused_before_any_kernel_even_with_a_matching_checksum(built, tmp_path, offsets):
    corpus = copy(built[0], tmp_path / "c")
    part = corpus / "alpha/train/part-00000.arrow"
    _write_part_with_offsets(part, offsets)
    m = load_manifest(corpus)
    save_manifest(corpus, m)  # re-record checksums: only the structure check stands between the file and numba
    with pytest.raises(MixerError, match=r"alpha/train/part-00000.arrow: (corrupt or truncated Arrow file|token offsets)"):
        open_split(corpus, "alpha")


def test_a_format_1_corpus_is_refused_in_one_line(built, tmp_path):
    corpus = copy(built[0], tmp_path / "c")
    obj = json.loads((corpus / "corpus.json").read_text())
    obj = {k: v for k, v in obj.items() if k not in ("files", "checksum")} | {"format_version": 1}
    (corpus / "corpus.json").write_text(json.dumps(obj))
    r = invoke("verify", str(corpus))
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [f"error: {corpus / 'corpus.json'}: corpus format_version 1 (no per-file "
                                             "checksums) is no longer read; re-run `mixer prepare` with this version of mixer"]


@pytest.mark.parametrize("edit", ["delete key", "change count", "change checksum hex"])
def test_a_damaged_corpus_json_is_named_as_such(built, tmp_path, edit):
    corpus = copy(built[0], tmp_path / "c")
    obj = json.loads((corpus / "corpus.json").read_text())
    if edit == "delete key":
        del obj["domains"]["beta"]["splits"]["train"]["tokens"]
    elif edit == "change count":
        obj["domains"]["beta"]["splits"]["train"]["documents"] += 1
    else:
        rel = "alpha/train/part-00000.arrow"
        obj["files"][rel]["xxh3_64"] = obj["files"][rel]["xxh3_64"][::-1]
    (corpus / "corpus.json").write_text(json.dumps(obj))
    with pytest.raises(MixerError, match=r"corpus.json: damaged corpus manifest"):
        build_plan(corpus, WEIGHTS, PlanConfig(tokens=1600, seq_len=40, seed=2))


def test_a_sealed_but_malformed_manifest_is_named_by_field(built, tmp_path):
    corpus = copy(built[0], tmp_path / "c")
    obj = json.loads((corpus / "corpus.json").read_text())
    del obj["domains"]["beta"]["splits"]["train"]["tokens"]
    (corpus / "corpus.json").write_text(json.dumps(seal(obj)))
    with pytest.raises(MixerError, match=r"corpus.json: malformed corpus manifest \(domains.beta.splits.train.tokens: missing\)"):
        load_manifest(corpus)


@pytest.mark.parametrize("edit, problem", [
    ("no train split", r"domains.beta.splits.train: missing"),
    ("a malformed extra split", r"domains.beta.splits.other: expected an object"),
])
def test_a_sealed_manifest_with_odd_splits_is_named_not_a_crash(built, tmp_path, edit, problem):
    corpus = copy(built[0], tmp_path / "c")
    obj = json.loads((corpus / "corpus.json").read_text())
    splits = obj["domains"]["beta"]["splits"]
    if edit == "no train split":
        del splits["train"]
    else:
        splits["other"] = 5
    (corpus / "corpus.json").write_text(json.dumps(seal(obj)))
    with pytest.raises(MixerError, match=rf"corpus.json: malformed corpus manifest \({problem}"):
        load_manifest(corpus)


def test_fields_a_later_writer_adds_are_read_past(built, tmp_path):
    """Extra fields in a split, a domain, a file checksum or the tokenizer record (the spec allows
    them) leave the manifest as it was; they used to crash its reader with a TypeError."""
    corpus = copy(built[0], tmp_path / "c")
    obj = json.loads((corpus / "corpus.json").read_text())
    obj["domains"]["beta"]["splits"]["train"]["new_field"] = 1
    obj["domains"]["beta"]["new_field"] = [1]
    obj["files"]["alpha/train/part-00000.arrow"]["new_field"] = "x"
    obj["tokenizer"]["new_field"] = None
    (corpus / "corpus.json").write_text(json.dumps(seal(obj)))
    assert load_manifest(corpus) == load_manifest(built[0])
    build_plan(corpus, WEIGHTS, PlanConfig(tokens=1600, seq_len=40, seed=2))


@pytest.mark.parametrize("field", ["realised_tokens", "file", "sequences", "xxh64"])
def test_a_damaged_index_json_is_named_not_a_shard(built, tmp_path, field):
    shards = copy(built[1], tmp_path / "s")
    obj = json.loads((shards / "index.json").read_text())
    if field == "realised_tokens":
        del obj["domains"]["alpha"]["realised_tokens"]
    elif field == "file":
        del obj["shards"][1]["domains"]["file"]
    elif field == "sequences":
        obj["shards"][1]["sequences"] += 1
    else:
        obj["shards"][2]["xxh64"] = "0" * 16
    (shards / "index.json").write_text(json.dumps(obj, indent=2))
    for args in (["inspect", str(shards)], ["verify", str(shards)]):
        r = invoke(*args)
        assert r.exit_code == 2, r.output
        assert r.output.strip().splitlines()[-1] == (f"error: {shards / 'index.json'}: damaged shard index (its checksum "
                                                     "does not match its content); rebuild with `mixer build-shards`")


def test_a_flipped_tokenizer_is_named_by_inspect_sample(built, tmp_path):
    corpus, shards = copy(built[0], tmp_path / "c"), built[1]
    ok = invoke("inspect", str(shards), "--sample", "1", "--corpus", str(corpus), "--no-verify")
    assert ok.exit_code == 0 and "[alpha]" in ok.output or "[beta]" in ok.output
    flip(corpus / "tokenizer.json", 40, 0x20)
    r = invoke("inspect", str(shards), "--sample", "1", "--corpus", str(corpus), "--no-verify")
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1].startswith(f"error: {corpus / 'tokenizer.json'}: checksum mismatch")


def test_verify_checks_corpus_and_shards_and_names_the_first_bad_file(built, tmp_path):
    corpus, shards = built
    r = invoke("verify", str(corpus))
    assert r.exit_code == 0 and f"verified corpus {corpus}: 2 domains" in r.output and "sha256" in r.output
    r = invoke("verify", str(shards))
    assert r.exit_code == 0 and f"verified shards {shards}: 4 shards + sidecars, 40 sequences" in r.output
    bad = copy(corpus, tmp_path / "c")
    flip(bad / "beta/heldout/part-00000.arrow", 300, 1)
    r = invoke("verify", str(bad))
    assert r.exit_code == 2 and "beta/heldout/part-00000.arrow: checksum mismatch" in r.output
    bad = copy(shards, tmp_path / "s")
    flip(bad / "shard-00001.domains.zst", 10, 4)
    r = invoke("verify", str(bad))
    assert r.exit_code == 2 and "shard-00001.domains.zst: checksum mismatch" in r.output
    (tmp_path / "empty").mkdir()
    r = invoke("verify", str(tmp_path / "empty"))
    assert r.exit_code == 2 and "neither corpus.json nor index.json" in r.output


def test_a_file_is_hashed_once_per_process(built, tmp_path, monkeypatch):
    corpus = copy(built[0], tmp_path / "c")
    sizes: list[int] = []
    real = checksums._xxh3
    monkeypatch.setattr(checksums, "_xxh3", lambda data: sizes.append(len(data)) or real(data))
    plan = build_plan(corpus, WEIGHTS, PlanConfig(tokens=1600, seq_len=40, seed=2))
    open_sources(corpus, plan)  # opens the same parts again: no second hash
    train_parts = [corpus / f"{d}/train/part-00000.arrow" for d in ("alpha", "beta")]
    assert sorted(sizes) == sorted(p.stat().st_size for p in train_parts)
    flip(corpus / "alpha/train/part-00000.arrow", 500, 3)  # a changed file (new mtime) is checked again
    with pytest.raises(MixerError, match="checksum mismatch"):
        open_sources(corpus, plan)


def test_a_damaged_shard_read_by_dataloader_workers_is_still_one_line(built, tmp_path):
    from torch.utils.data import DataLoader

    from mixer.stream.stream import MixtureStream

    shards = copy(built[1], tmp_path / "s")
    flip(shards / "shard-00002.zst", 20, 1)
    with pytest.raises(MixerError) as info:
        for _ in DataLoader(MixtureStream(shards, 0, 1, batch_size=4), batch_size=4, num_workers=2):
            pass
    assert str(info.value).startswith(f"{shards / 'shard-00002.zst'}: checksum mismatch, the shard is corrupt; "
                                      "rebuild with `mixer build-shards` (in DataLoader worker process ")
    assert "Traceback" not in str(info.value)


def test_the_trainers_held_out_reader_verifies_before_reading(built, tmp_path):
    from mixer.trainers.heldout import build_eval_sets
    from mixer.trainers.models import vocab_for

    corpus = copy(built[0], tmp_path / "c")
    vocab = vocab_for("gpt2", load_manifest(corpus))
    assert len(build_eval_sets(corpus, "gpt2", vocab, seq_len=16, max_seqs=4)) == 2
    flip(corpus / "alpha/heldout/part-00000.arrow", -120, 0x5B)
    with pytest.raises(MixerError, match=r"alpha/heldout/part-00000.arrow: checksum mismatch"):
        build_eval_sets(corpus, "gpt2", vocab, seq_len=16, max_seqs=4)
