"""A cap on repetition (OLMo's max repetition factor): within the cap a small domain repeats,
beyond it build-shards refuses by name; the epochs show in the summary."""
from __future__ import annotations

from click.testing import CliRunner

from mixer.cli import main
from mixer.formats.shards import read_index
from mixer.formats.synthetic import write_synthetic_corpus


def build(tmp_path, *extra):
    corpus = tmp_path / "corpus"
    if not corpus.exists():
        write_synthetic_corpus(corpus, {"big": [200] * 100, "small": [200] * 5}, vocab_size=256)
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, ["build-shards", "--corpus", str(corpus), "--weight", "big=0.5",
                                     "--weight", "small=0.5", "--tokens", "4000", "--seq-len", "50",
                                     "--out", str(tmp_path / f"shards{len(extra)}"), *extra])


def test_cap_allows_up_to_and_refuses_beyond(tmp_path):
    ok = build(tmp_path, "--max-epochs", "2.5")           # small: 2000 tokens from 1005 -> ~2 passes
    assert ok.exit_code == 0, ok.output
    index = read_index(tmp_path / "shards2")
    assert index.domains["small"].epochs == 2 and index.domains["small"].realised_tokens == 2000
    row = next(line for line in ok.output.splitlines() if "small" in line)
    assert "epochs" in ok.output and row.rstrip("│ ").endswith("2"), ok.output  # the epochs column
    bad = build(tmp_path, "--max-epochs", "1.5", "--overwrite")
    assert bad.exit_code == 2 and "domain 'small'" in bad.output and "--max-epochs 1.5" in bad.output
    assert "passes over its data" in bad.output and "\n" not in bad.output.strip()
    for nonsense in ("0.5", "nan"):
        r = build(tmp_path, "--max-epochs", nonsense, "--overwrite")
        assert r.exit_code == 2 and f"error: --max-epochs {nonsense}: must be at least 1" in r.output, r.output


def test_default_is_one_pass_and_inf_or_an_unreached_cap_lift_it(tmp_path):
    once = build(tmp_path)  # --max-epochs 1: sampling without replacement
    assert once.exit_code == 2 and "domain 'small'" in once.output and "(--max-epochs F; max_epochs=F" in once.output
    free = build(tmp_path, "--max-epochs", "inf")
    roomy = build(tmp_path, "--max-epochs", "1000", "--threads", "1", "--overwrite")  # a cap never reached
    assert free.exit_code == 0 and roomy.exit_code == 0, free.output + roomy.output
    a = {p.name: p.read_bytes() for p in (tmp_path / "shards2").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "shards5").iterdir()}
    assert a == b


def test_the_old_flag_is_refused(tmp_path):
    r = build(tmp_path, "--allow-repeat")
    assert r.exit_code == 2 and "No such option" in r.output and "--allow-repeat" in r.output
