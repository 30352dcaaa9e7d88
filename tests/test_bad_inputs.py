"""Inputs that used to be accepted with exit 0: each is now exit 2, one line naming the culprit
and the fix, and nothing half-written left behind."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from mixer.cli import main
from mixer.formats.corpus import load_manifest
from mixer.formats.synthetic import write_ab_corpus

PROSE = ("The river rose through the night and by morning the lower streets of the town were under "
         "water, so the council opened the school as a shelter and asked for volunteers. ")


def run(*args: str):
    r = CliRunner().invoke(main, list(args))
    lines = r.output.strip().splitlines()
    return r.exit_code, lines[-1] if lines else ""


def text_folder(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"doc-{i}.txt").write_text(f"Story {i}. " + PROSE * 12, encoding="utf-8")
    return folder


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name == name or p.name.startswith(f".{name}."))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_ab_corpus(tmp_path_factory.mktemp("bad") / "corpus", 200, 40, vocab_size=900, seed=2)


def test_a_folder_of_random_bytes_is_no_text_at_all(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = random.Random(0)
    for i in range(3):
        (raw / f"blob-{i}.bin").write_bytes(bytes(rng.randrange(256) for _ in range(4000)))
    code, line = run("prepare", "--source", f"junk={raw}", "--heldout-docs", "0", "--out", str(tmp_path / "c"), "--quiet")
    assert code == 2
    assert line == (f"error: domain 'junk' ({raw}): no text at all: all 3 files are binary or not UTF-8; point "
                    "--source at a folder of UTF-8 text files")
    assert leftovers(tmp_path, "c") == []


def test_binary_files_among_text_are_skipped_and_counted(tmp_path):
    raw = text_folder(tmp_path / "raw", 4)
    (raw / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8)
    (raw / "latin1.txt").write_bytes(("caf\xe9 " * 400).encode("latin-1"))
    code, line = run("prepare", "--source", f"news={raw}", "--heldout-docs", "1", "--out", str(tmp_path / "c"), "--quiet")
    assert code == 0, line
    report = load_manifest(tmp_path / "c").domains["news"].report
    assert (report["skipped_binary"], report["seen"], report["kept"]) == (2, 4, 4)


def test_prepare_out_inside_its_own_source_folder(tmp_path):
    raw = text_folder(tmp_path / "raw")
    out = raw / "corpus"
    code, line = run("prepare", "--source", f"news={raw}", "--heldout-docs", "0", "--out", str(out), "--quiet")
    assert code == 2
    assert line == (f"error: --out {out}: inside the source of domain 'news' ({raw}); choose an output folder "
                    "outside it")
    assert leftovers(raw, "corpus") == []


def test_build_shards_out_inside_the_corpus(corpus):
    before = sorted(p.name for p in corpus.iterdir())
    out = corpus / "shards"
    code, line = run("build-shards", "--corpus", str(corpus), "--weight", "a=0.5", "--weight", "b=0.5",
                     "--tokens", "2000", "--seq-len", "50", "--out", str(out))
    assert code == 2
    assert line == f"error: --out {out}: inside the corpus ({corpus}); choose an output folder outside it"
    assert sorted(p.name for p in corpus.iterdir()) == before


@pytest.mark.parametrize("command", ["build-shards", "prepare"])
def test_zero_threads_or_workers(corpus, tmp_path, command):
    if command == "build-shards":
        args = ["build-shards", "--corpus", str(corpus), "--weight", "a=0.5", "--weight", "b=0.5", "--tokens", "2000",
                "--seq-len", "50", "--threads", "0", "--out", str(tmp_path / "o")]
        want = "error: --threads 0: need at least 1 compression thread"
    else:
        args = ["prepare", "--source", f"news={text_folder(tmp_path / 'raw')}", "--heldout-docs", "0", "--workers", "0",
                "--out", str(tmp_path / "o"), "--quiet"]
        want = "error: --workers 0: need at least 1 process"
    assert run(*args) == (2, want)
    assert leftovers(tmp_path, "o") == []


def test_a_domain_given_twice_by_weight_is_named(corpus, tmp_path):
    code, line = run("build-shards", "--corpus", str(corpus), "--weight", "a=0.5", "--weight", "a=0.3",
                     "--weight", "b=0.5", "--tokens", "2000", "--seq-len", "50", "--out", str(tmp_path / "o"))
    assert code == 2
    assert line == ("error: --weight 'a=0.3': domain 'a' is given twice (also --weight a=0.5); give each domain "
                    "one --weight")


def test_an_unknown_kind_in_a_domain_map_is_named(tmp_path):
    text_folder(tmp_path / "raw" / "news")
    dmap = tmp_path / "raw" / "domains.json"
    dmap.write_text(json.dumps({"domains": {"news": {"path": "news", "kind": "encylopedia"}}}))
    code, line = run("prepare", "--domain-map", str(dmap), "--heldout-docs", "0", "--out", str(tmp_path / "c"), "--quiet")
    assert code == 2
    assert line.startswith(f"error: {dmap}: domain 'news' has unknown kind 'encylopedia'; use one of books, code, ")
    assert "encyclopedia" in line
    code, line = run("prepare", "--source", f"news={tmp_path / 'raw' / 'news'}", "--kind", "news=sceintific",
                     "--heldout-docs", "0", "--out", str(tmp_path / "c"), "--quiet")
    assert code == 2 and line.startswith("error: domain 'news': unknown kind 'sceintific'; use one of ")
    assert leftovers(tmp_path, "c") == []


def test_a_key_given_twice_in_weights_json_is_named(corpus, tmp_path):
    wfile = tmp_path / "w.json"
    wfile.write_text('{"weights": {"a": 0.5, "b": 0.5, "a": 0.3}}')  # json.loads alone would keep a=0.3
    code, line = run("build-shards", "--corpus", str(corpus), "--weights", str(wfile), "--tokens", "2000",
                     "--seq-len", "50", "--out", str(tmp_path / "o"))
    assert code == 2
    assert line.startswith(f"error: {wfile}: key 'a' is given twice in one object of the ")
    assert leftovers(tmp_path, "o") == []
