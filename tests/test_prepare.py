"""`mixer prepare`: each rule on hand-made documents, round trips, determinism, errors."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from tokenizers import Tokenizer

from mixer.cli import main
from mixer.formats.corpus import load_manifest, open_split, token_dtype_for
from mixer.core.errors import MixerError, MixerNote
from mixer.prepare.config import DomainSource, PrepareConfig
from mixer.prepare.heldout import heldout_mask
from mixer.prepare.pipeline import prepare_corpus
from mixer.prepare.rules import PrepareRules, block_start, doc_hash

ENGLISH = ("The committee met on Tuesday to discuss the budget for the coming year, and after a long "
           "debate the members agreed that the library should receive more money for new books. ")
FRENCH = ("Le comité s'est réuni mardi pour discuter du budget de l'année prochaine, et après un long "
          "débat les membres ont convenu que la bibliothèque devrait recevoir plus d'argent pour les livres. ")


def english(n_chars: int, salt: int = 0) -> str:
    text = f"Report number {salt}. " + ENGLISH * (n_chars // len(ENGLISH) + 2)
    return text[:n_chars]


def write_docs(folder: Path, docs: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(docs):
        (folder / f"doc-{i:04d}.txt").write_text(text, encoding="utf-8")
    return folder


def prepare(tmp_path: Path, sources: list[DomainSource], **kw):
    kw.setdefault("heldout_docs", 0)
    kw.setdefault("progress", False)
    return prepare_corpus(PrepareConfig(sources=tuple(sources), out=tmp_path / "corpus", **kw))


def decoded_documents(corpus: Path, domain: str, split: str = "train") -> list[str]:
    tok = Tokenizer.from_file(str(corpus / "tokenizer.json"))
    s = open_split(corpus, domain, split)
    return [tok.decode(s.document(k).tolist()) for k in range(s.num_documents)]


def test_length_rule_keeps_only_more_than_1000_chars(tmp_path):
    src = write_docs(tmp_path / "raw", [english(999, 1), english(1000, 2), english(1001, 3), english(5000, 4)])
    result = prepare(tmp_path, [DomainSource("web", src)])
    rep = result.reports[0]
    assert (rep.seen, rep.dropped["short"], rep.kept) == (4, 2, 2)
    docs = decoded_documents(tmp_path / "corpus", "web")
    assert docs == [english(1001, 3)[:1000], english(5000, 4)[:1000]]  # head cut to 1000, text round trip


def test_code_domain_takes_a_seeded_random_block(tmp_path):
    text = "".join(f"def function_{i}(x):\n    return x * {i}\n\n" for i in range(400))
    src = write_docs(tmp_path / "raw", [text])
    prepare(tmp_path, [DomainSource("code", src, kind="code")], seed=7)
    (doc,) = decoded_documents(tmp_path / "corpus", "code")
    start = block_start(doc_hash(text), 7, len(text), 1000)
    assert len(doc) == 1000 and doc == text[start : start + 1000]
    assert 0 < start <= len(text) - 1000  # inside the document, not its head
    assert block_start(doc_hash(text), 8, len(text), 1000) != start  # the seed moves the block


def test_non_english_encyclopedia_document_is_dropped(tmp_path):
    docs = [english(2000, 1), (FRENCH * 20)[:2000], english(2000, 2)]
    enc = write_docs(tmp_path / "enc", docs)
    web = write_docs(tmp_path / "web", docs)
    result = prepare(tmp_path, [DomainSource("enc", enc, kind="encyclopedia"), DomainSource("web", web)])
    enc_rep, web_rep = result.reports
    assert (enc_rep.dropped["non_english"], enc_rep.kept) == (1, 2)
    assert (web_rep.dropped["non_english"], web_rep.kept) == (0, 3)  # only English-only kinds filter
    assert all(d.startswith("Report number") for d in decoded_documents(tmp_path / "corpus", "enc"))


def test_exact_duplicates_are_dropped(tmp_path):
    a, b = english(1500, 1), english(1500, 2)
    src = write_docs(tmp_path / "raw", [a, b, a, a, b + " "])
    result = prepare(tmp_path, [DomainSource("web", src)])
    assert (result.reports[0].dropped["duplicate"], result.reports[0].kept) == (2, 3)
    ids = open_split(tmp_path / "corpus", "web").parts[0].doc_ids
    assert list(ids) == [doc_hash(a), doc_hash(b), doc_hash(b + " ")]


def test_heldout_split_is_fixed_size_disjoint_and_seeded(tmp_path):
    src = write_docs(tmp_path / "raw", [english(1200 + i, i) for i in range(30)])
    prepare(tmp_path, [DomainSource("web", src)], heldout_docs=5, seed=1)
    m = load_manifest(tmp_path / "corpus")
    split = m.domains["web"].splits
    assert (split["train"].documents, split["heldout"].documents) == (25, 5)
    train = set(open_split(tmp_path / "corpus", "web", "train").parts[0].doc_ids.tolist())
    held = set(open_split(tmp_path / "corpus", "web", "heldout").parts[0].doc_ids.tolist())
    assert not train & held and len(train | held) == 30
    ids = [doc_hash(english(1200 + i, i)) for i in range(30)]
    assert not np.array_equal(heldout_mask(ids, 5, 1), heldout_mask(ids, 5, 2))


def test_heldout_size_is_a_fraction_with_a_floor_and_a_cap(tmp_path):
    """5 % of each domain, at least 50 but never over a quarter, at most 10,000: the rule the
    report states, not a fixed 100 that is a third of one domain and most of another."""
    from mixer.prepare.heldout import heldout_count

    rule = PrepareConfig(sources=(), out=tmp_path)
    assert [heldout_count(n, rule) for n in (300, 119, 5_383, 1_000_000, 3)] == [50, 29, 269, 10_000, 0]
    assert heldout_count(300, PrepareConfig(sources=(), out=tmp_path, heldout_docs=7)) == 7
    assert heldout_count(1000, PrepareConfig(sources=(), out=tmp_path, heldout_fraction=0.2, heldout_max=150)) == 150
    big = write_docs(tmp_path / "big", [english(1200 + i, i) for i in range(240)])
    small = write_docs(tmp_path / "small", [english(1300 + i, 1000 + i) for i in range(40)])
    res = prepare(tmp_path, [DomainSource("big", big), DomainSource("small", small)], heldout_docs=None)
    held = {r.name: (r.train_docs, r.heldout_docs) for r in res.reports}
    assert held == {"big": (190, 50), "small": (30, 10)}
    assert res.heldout_rule == "held out: 0.05 of each domain's kept documents, at least 50 (never over a quarter), " \
                              "at most 10,000"
    rules = load_manifest(tmp_path / "corpus").rules
    assert (rules["heldout_fraction"], rules["heldout_min"], rules["heldout_max"]) == (0.05, 50, 10_000)


def test_same_inputs_and_seed_give_byte_identical_corpus(tmp_path):
    src = write_docs(tmp_path / "raw", [english(1100 + 37 * i, i) for i in range(40)])
    code = write_docs(tmp_path / "code", ["x = 1\n" * (200 + i) for i in range(20)])
    sources = [DomainSource("web", src), DomainSource("code", code, kind="code")]
    outs = []
    for name, workers in (("a", 1), ("b", 1), ("c", 2)):
        prepare_corpus(PrepareConfig(sources=tuple(sources), out=tmp_path / name, heldout_docs=3, seed=3,
                                     workers=workers, batch_docs=8, progress=False))
        outs.append({p.relative_to(tmp_path / name): p.read_bytes() for p in sorted((tmp_path / name).rglob("*")) if p.is_file()})
    assert outs[0] == outs[1] == outs[2]


def test_small_part_size_splits_files_and_reads_back(tmp_path):
    src = write_docs(tmp_path / "raw", [english(1100 + i, i) for i in range(12)])
    prepare(tmp_path, [DomainSource("web", src)], part_tokens=500)
    s = open_split(tmp_path / "corpus", "web")
    assert len(s.parts) > 2 and s.num_documents == 12
    assert decoded_documents(tmp_path / "corpus", "web") == [english(1100 + i, i)[:1000] for i in range(12)]


def test_jsonl_parquet_and_saved_dataset_sources(tmp_path):
    import datasets
    import pyarrow.parquet as pq

    texts = [english(1500, i) for i in range(4)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"body": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    pq.write_table(pa.table({"body": texts}), tmp_path / "b.parquet")
    datasets.Dataset.from_dict({"body": texts}).save_to_disk(str(tmp_path / "c"))
    sources = [DomainSource(n, tmp_path / p, text_field="body") for n, p in (("a", "a.jsonl"), ("b", "b.parquet"), ("c", "c"))]
    prepare(tmp_path, sources)
    for name in "abc":
        assert decoded_documents(tmp_path / "corpus", name) == [t[:1000] for t in texts]


def _body_and_content(tmp_path: Path) -> list[str]:
    import pyarrow.parquet as pq

    texts = [english(1500, i) for i in range(4)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in texts))
    pq.write_table(pa.table({"content": texts}), tmp_path / "b.parquet")
    return texts


@pytest.mark.parametrize("form", ["path:field", "--text-field domain=field"])
def test_each_source_names_its_own_text_field_on_the_command_line(tmp_path, form):
    """A JSONL `body` and a Parquet `content` in one corpus: once impossible from the command line."""
    texts = _body_and_content(tmp_path)
    if form == "path:field":
        args = ["--source", f"docs={tmp_path / 'a.jsonl'}:body", "--source", f"code={tmp_path / 'b.parquet'}:content"]
    else:
        args = ["--source", f"docs={tmp_path / 'a.jsonl'}", "--source", f"code={tmp_path / 'b.parquet'}",
                "--text-field", "docs=body", "--text-field", "code=content"]
    code, out = run_cli(["prepare", *args, "--heldout-docs", "0", "--out", str(tmp_path / "corpus"), "--quiet"])
    assert code == 0, out
    for name in ("docs", "code"):
        assert decoded_documents(tmp_path / "corpus", name) == [t[:1000] for t in texts]


def test_missing_field_error_gives_advice_that_works(tmp_path):
    _body_and_content(tmp_path)
    code, out = run_cli(["prepare", "--source", f"docs={tmp_path / 'a.jsonl'}", "--source", f"code={tmp_path / 'b.parquet'}",
                         "--text-field", "body", "--heldout-docs", "0", "--out", str(tmp_path / "corpus"), "--quiet"])
    assert code == 2
    assert out.splitlines()[-1] == (f"error: {tmp_path / 'b.parquet'}: no column 'body' (has: content); name the field "
                                    "with --source DOMAIN=PATH:FIELD or --text-field DOMAIN=FIELD")
    code, out = run_cli(["prepare", "--source", f"docs={tmp_path / 'a.jsonl'}", "--text-field", "doc=body",
                         "--out", str(tmp_path / "corpus"), "--quiet"])
    assert code == 2 and out.splitlines()[-1] == ("error: --text-field 'doc=body': no --source names domain 'doc' "
                                                  "(domains: docs)")


def test_a_saved_datasetdict_asks_for_its_split(tmp_path):
    """It used to read `train` silently; now several splits need --split, one split comes with a note."""
    import datasets

    texts = [english(1500, i) for i in range(4)]
    other = [english(1200, 10 + i) for i in range(3)]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts}),
                          "test": datasets.Dataset.from_dict({"text": other})}).save_to_disk(str(tmp_path / "two"))
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"text": other})}).save_to_disk(str(tmp_path / "one"))
    base = ["--heldout-docs", "0", "--quiet"]
    code, out = run_cli(["prepare", "--source", f"d={tmp_path / 'two'}", *base, "--out", str(tmp_path / "c0")])
    assert code == 2 and out.splitlines()[-1] == (f"error: {tmp_path / 'two'}: DatasetDict has splits train, test; say "
                                                  "which to prepare with --split NAME (or --split DOMAIN=NAME)")
    code, out = run_cli(["prepare", "--source", f"d={tmp_path / 'two'}", "--split", "test", *base,
                         "--out", str(tmp_path / "c1")])
    assert code == 0, out
    assert decoded_documents(tmp_path / "c1", "d") == [t[:1000] for t in other]
    code, out = run_cli(["prepare", "--source", f"d={tmp_path / 'one'}", *base, "--out", str(tmp_path / "c2")])
    assert code == 0, out
    assert f"note: {tmp_path / 'one'}: DatasetDict has one split, 'test'; preparing it" in out.splitlines()
    assert decoded_documents(tmp_path / "c2", "d") == [t[:1000] for t in other]


def test_datasets_objects_are_sources_in_python(tmp_path):
    import datasets

    texts = [english(1500, i) for i in range(4)]
    ds = datasets.Dataset.from_dict({"body": texts, "n": list(range(4))})
    sources = [DomainSource("map", ds, text_field="body"),
               DomainSource("iter", ds.to_iterable_dataset(), text_field="body"),
               DomainSource("dict", datasets.DatasetDict({"train": ds, "test": ds.select([0])}), text_field="body",
                            split="train")]
    prepare(tmp_path, sources)
    for name in ("map", "iter", "dict"):
        assert decoded_documents(tmp_path / "corpus", name) == [t[:1000] for t in texts]
    with pytest.raises(MixerError, match=r"^a Dataset: no column 'text' \(has: body, n\)"):
        prepare(tmp_path, [DomainSource("map", ds)], overwrite=True)


def test_trained_tokenizer_is_saved_and_hashed(tmp_path):
    src = write_docs(tmp_path / "raw", [english(1500, i) for i in range(10)])
    prepare(tmp_path, [DomainSource("web", src)], tokenizer="train", vocab_size=300)
    m = load_manifest(tmp_path / "corpus")
    import hashlib

    assert m.tokenizer.kind == "trained-bpe" and m.vocab_size <= 300 and m.token_dtype == "uint16"
    assert hashlib.sha256((tmp_path / "corpus" / "tokenizer.json").read_bytes()).hexdigest() == m.tokenizer.sha256
    assert decoded_documents(tmp_path / "corpus", "web") == [english(1500, i)[:1000] for i in range(10)]


def test_gpt2_tokenizer_is_the_real_one(tmp_path):
    src = write_docs(tmp_path / "raw", [english(1500)])
    prepare(tmp_path, [DomainSource("web", src)])
    m = load_manifest(tmp_path / "corpus")
    tok = Tokenizer.from_file(str(tmp_path / "corpus" / "tokenizer.json"))
    assert (m.vocab_size, m.eos_id, tok.encode("Hello world").ids) == (50257, 50256, [15496, 995])


# ---- errors: one line naming the culprit, exit code 2, nothing written ----------------------

def run_cli(args: list[str]):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output.strip()


def assert_clean_error(tmp_path: Path, args: list[str], *needles: str) -> None:
    code, out = run_cli(args + ["--out", str(tmp_path / "corpus"), "--quiet"])
    assert code == 2, out
    err = out.splitlines()[-1]
    assert err.startswith("error: ") and all(n in err for n in needles), err
    assert not (tmp_path / "corpus").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".corpus")]  # no temp folder left


def test_error_missing_path(tmp_path):
    assert_clean_error(tmp_path, ["prepare", "--source", f"web={tmp_path / 'nope'}"], "nope", "does not exist")


def test_error_domain_empty_after_rules_names_the_rule(tmp_path):
    src = write_docs(tmp_path / "raw", [english(500, i) for i in range(3)])
    assert_clean_error(tmp_path, ["prepare", "--source", f"web={src}", "--heldout-docs", "0"],
                       "'web'", "3 had <= 1000 characters", "--min-chars")


def test_error_all_non_english(tmp_path):
    src = write_docs(tmp_path / "raw", [(FRENCH * 20)[:1500 + i] for i in range(3)])
    assert_clean_error(tmp_path, ["prepare", "--source", f"wiki={src}", "--kind", "wiki=encyclopedia",
                                  "--heldout-docs", "0"], "'wiki'", "3 were not English")


def test_error_unknown_text_field(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"body": english(1500)}) + "\n")
    assert_clean_error(tmp_path, ["prepare", "--source", f"a={tmp_path / 'a.jsonl'}"], "a.jsonl:1", "'text'", "--text-field")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": [english(1500)]}), tmp_path / "b.parquet")
    assert_clean_error(tmp_path, ["prepare", "--source", f"b={tmp_path / 'b.parquet'}"], "b.parquet", "'text'", "body")


def test_error_unreadable_files(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    assert_clean_error(tmp_path, ["prepare", "--source", f"b={tmp_path / 'bad.parquet'}"], "bad.parquet", "Parquet")
    (tmp_path / "bad.jsonl").write_text('{"text": "unterminated\n')
    assert_clean_error(tmp_path, ["prepare", "--source", f"j={tmp_path / 'bad.jsonl'}"], "bad.jsonl:1", "invalid JSON")
    src = write_docs(tmp_path / "raw", [english(1500)])
    (tmp_path / "tok.json").write_text("{not a tokenizer")
    assert_clean_error(tmp_path, ["prepare", "--source", f"w={src}", "--heldout-docs", "0", "--tokenizer",
                                  str(tmp_path / "tok.json")], "tok.json", "tokenizer")


def test_error_too_few_documents_for_heldout(tmp_path):
    src = write_docs(tmp_path / "raw", [english(1500, i) for i in range(3)])
    assert_clean_error(tmp_path, ["prepare", "--source", f"web={src}", "--heldout-docs", "5"], "'web'", "--heldout-docs 5")


def test_error_vocab_beyond_uint32():
    assert token_dtype_for(50257) == np.uint16 and token_dtype_for(70000) == np.uint32
    with pytest.raises(MixerError, match="exceeds uint32"):
        token_dtype_for(2**32 + 1)


def test_error_output_exists_without_overwrite(tmp_path):
    src = write_docs(tmp_path / "raw", [english(1500)])
    (tmp_path / "corpus").mkdir()
    code, out = run_cli(["prepare", "--source", f"w={src}", "--heldout-docs", "0", "--out", str(tmp_path / "corpus")])
    assert code == 2 and "--overwrite" in out.splitlines()[-1]


def test_corrupt_arrow_part_is_named(tmp_path):
    src = write_docs(tmp_path / "raw", [english(1500, i) for i in range(3)])
    prepare(tmp_path, [DomainSource("web", src)])
    part = tmp_path / "corpus" / "web" / "train" / "part-00000.arrow"
    part.write_bytes(part.read_bytes()[:200])
    with pytest.raises(MixerError, match=r"part-00000.arrow: 200 bytes .*\(truncated or replaced\); re-run `mixer prepare`"):
        open_split(tmp_path / "corpus", "web")


def test_rules_are_options():
    rules = PrepareRules(min_chars=10, cut_chars=5, random_block_kinds=("science",))
    from mixer.prepare.rules import cut_document

    assert cut_document("abcdefghijkl", 1, "web", rules, 0) == "abcde"
    assert len(cut_document("abcdefghijkl", 1, "science", rules, 0)) == 5


def test_report_table_is_never_truncated(tmp_path):
    """A log file or a narrow terminal must not squeeze the report's numbers to `20…`."""
    src = write_docs(tmp_path / "raw", [english(1200 + i, i) for i in range(12)])
    r = CliRunner(env={"COLUMNS": "50"}).invoke(main, ["prepare", "--source", f"a-rather-long-domain-name={src}",
                                                       "--heldout-docs", "2", "--out", str(tmp_path / "c"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "…" not in r.output and "a-rather-long-domain-name" in r.output and "held docs" in r.output


def _messages_as_txt_and_json(folder: Path, texts: list[str]) -> Path:
    """The shape of a real mail corpus: every message as `N.txt` and again as `N.json`
    (its metadata and the same text under "text")."""
    folder.mkdir(parents=True)
    for i, t in enumerate(texts):
        (folder / f"{i:05d}.txt").write_text(t)
        (folder / f"{i:05d}.json").write_text(json.dumps({"id": i, "group": "ham", "text": t}))
    return folder


def test_a_folder_mixing_records_with_text_is_refused_with_the_fixes(tmp_path):
    """Read as text, each message was tokenized twice, once as raw JSON: no duplicate caught,
    nothing said. Now one line naming the domain, the files and both fixes; each fix works."""
    texts = [english(1500, i) for i in range(6)]
    mail = _messages_as_txt_and_json(tmp_path / "mail", texts)
    code, out = run_cli(["prepare", "--source", f"forum={mail}", "--heldout-docs", "0", "--out",
                         str(tmp_path / "c1"), "--quiet"])
    assert code == 2 and out.splitlines()[-1] == (
        f"error: {mail}: domain 'forum' mixes 6 JSON files (e.g. 00000.json) with 6 other files; read as text, "
        "each would be one document of raw records; give --format forum=text to read every file as plain text, "
        "or point --source at files of one kind")
    assert not (tmp_path / "c1").exists()
    # the first fix: every file as plain text, as before, now asked for
    code, out = run_cli(["prepare", "--source", f"forum={mail}", "--format", "forum=text", "--heldout-docs", "0",
                         "--out", str(tmp_path / "c2"), "--quiet", "--cut-chars", "100000"])
    assert code == 0, out
    got = decoded_documents(tmp_path / "c2", "forum")
    assert len(got) == 12 and sum(g in texts for g in got) == 6 and sum(g.startswith('{"id"') for g in got) == 6
    # the second: the JSON files alone are records, their text field read
    only_json = tmp_path / "json"
    only_json.mkdir()
    for f in mail.glob("*.json"):
        (only_json / f.name).write_bytes(f.read_bytes())
    prepare(tmp_path, [DomainSource("forum", only_json)], rules=PrepareRules(cut_chars=100_000))
    assert decoded_documents(tmp_path / "corpus", "forum") == texts
    # a code domain reads a repository's JSON files as the source text they are
    code, out = run_cli(["prepare", "--source", f"repo={mail}", "--kind", "repo=code", "--heldout-docs", "0",
                         "--out", str(tmp_path / "c3"), "--quiet"])
    assert code == 0, out


def test_a_jsonl_folder_with_a_readme_is_refused_not_read_as_text(tmp_path):
    """A JSONL folder was JSONL only when every file was; one README.md made all of it text."""
    src = tmp_path / "news"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps({"text": english(1500, i)}) + "\n" for i in range(4)))
    (src / "README.md").write_text("# news\n" + english(1200))
    (src / ".hidden.json").write_text("{}")  # (hidden files are not read, so not counted)
    with pytest.raises(MixerError, match=r"domain 'news' mixes 1 JSONL files \(e\.g\. a\.jsonl\) with 1 other files"):
        prepare(tmp_path, [DomainSource("news", src)])
    (src / "README.md").unlink()
    prepare(tmp_path, [DomainSource("news", src)])
    assert len(decoded_documents(tmp_path / "corpus", "news")) == 4


def test_json_sources_an_object_an_array_or_json_lines_per_file(tmp_path):
    texts = [english(1500, i) for i in range(7)]
    src = tmp_path / "docs"
    src.mkdir()
    (src / "a.json").write_text(json.dumps({"text": texts[0], "meta": {"n": 1}}, indent=2))
    (src / "b.json").write_text(json.dumps([{"text": t} for t in texts[1:4]]))
    (src / "c.json").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[4:]))  # JSON Lines
    prepare(tmp_path, [DomainSource("docs", src)])
    assert decoded_documents(tmp_path / "corpus", "docs") == [t[:1000] for t in texts]
    (src / "d.json").write_text(json.dumps([{"text": texts[0]}, {"body": "x"}]))
    with pytest.raises(MixerError, match=r"d\.json: item 1: no field 'text' \(has: body\)"):
        prepare(tmp_path, [DomainSource("docs", src)], overwrite=True)
    (src / "d.json").write_text('{"text": "unterminated')
    with pytest.raises(MixerError, match=r"d\.json: invalid JSON \(Unterminated string starting at, line 1 "
                                         r"column 10\); fix the file, or read it as plain text with --format"):
        prepare(tmp_path, [DomainSource("docs", src)], overwrite=True)


def test_a_format_is_checked_where_the_sources_are_given(tmp_path):
    src = write_docs(tmp_path / "web", [english(1500, i) for i in range(3)])
    with pytest.raises(MixerError, match=r"domain 'web': unknown source format 'xml'; use one of auto, text, json, "
                                         r"jsonl, csv, parquet, hf"):
        prepare(tmp_path, [DomainSource("web", src, fmt="xml")])
    with pytest.raises(MixerError) as info:  # text read as CSV: its first line is no header to print whole
        prepare(tmp_path, [DomainSource("web", src, fmt="csv")])
    message = str(info.value)
    assert "doc-0000.txt: no column 'text' in its header row (has: Report number 0. The committee met on...," in message
    assert len(message) < 800 and message.endswith("); name the field with --source DOMAIN=PATH:FIELD or "
                                                   "--text-field DOMAIN=FIELD")
    (tmp_path / "map.json").write_text(json.dumps({"domains": {"web": {"path": "web", "format": "text"}}}))
    code, out = run_cli(["prepare", "--domain-map", str(tmp_path / "map.json"), "--format", "web=jsonl",
                         "--out", str(tmp_path / "c"), "--quiet"])
    assert code == 2 and "give each domain's text_field, format and split in the map" in out


def test_csv_and_tsv_sources_one_document_per_row(tmp_path):
    """A CSV of articles was one document (the file's first 1000 characters: 3,824 articles of a
    real news CSV became 1); now a row is a document, its quotes, commas and newlines intact and
    fields past the csv module's 128 KiB default read whole."""
    import csv

    texts = [english(1500, 0) + ', "quoted", and\nnew lines', english(1500, 1), english(200_000, 2)]
    src = tmp_path / "news"
    src.mkdir()
    with open(src / "a.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "text"])
        w.writerows([i, f"title {i}", t] for i, t in enumerate(texts[:2]))
    with open(src / "b.tsv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t").writerows([["text", "id"], [texts[2], 7]])
    prepare(tmp_path, [DomainSource("news", src)], rules=PrepareRules(cut_chars=10**6))
    assert decoded_documents(tmp_path / "corpus", "news") == texts
    (src / "c.csv").write_text("id,body\n1,x\n")
    with pytest.raises(MixerError, match=r"c\.csv: no column 'text' in its header row \(has: id, body\)"):
        prepare(tmp_path, [DomainSource("news", src)], overwrite=True)
    (src / "c.csv").write_bytes("text\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(MixerError, match=r"c\.csv: not UTF-8 text; convert it \(iconv"):
        prepare(tmp_path, [DomainSource("news", src)], overwrite=True)
    (src / "c.csv").unlink()
    (src / "notes.txt").write_text(english(1500, 3))
    with pytest.raises(MixerError, match=r"domain 'news' mixes 2 CSV files \(e\.g\. a\.csv\) with 1 other files"):
        prepare(tmp_path, [DomainSource("news", src)], overwrite=True)


@pytest.mark.parametrize("codec", ["gz", "bz2", "xz", "zst"])
def test_compressed_files_are_read_through_their_codec(tmp_path, codec):
    """A folder of `.txt.gz` was 'no text at all: all files are binary' and `.jsonl.zst` or
    `.json.gz` (C4's and the Pile's shapes) were read as bytes; each codec now opens what it
    holds, and a damaged file is one line naming it."""
    import bz2
    import gzip
    import lzma

    import zstandard

    pack = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
            "zst": lambda b: zstandard.ZstdCompressor().compress(b)}[codec]
    texts = [english(1500, i) for i in range(6)]
    for name in ("text", "jsonl", "csv"):
        (tmp_path / name).mkdir()
    for i, t in enumerate(texts[:2]):
        (tmp_path / "text" / f"d{i}.txt.{codec}").write_bytes(pack(t.encode()))
    (tmp_path / "jsonl" / f"a.jsonl.{codec}").write_bytes(b"".join(pack((json.dumps({"text": t}) + "\n").encode())
                                                                    for t in texts[2:4]))  # (two frames, or members)
    (tmp_path / "csv" / f"a.csv.{codec}").write_bytes(pack(("text\n" + "".join(f'"{t}"\n' for t in texts[4:])).encode()))
    prepare(tmp_path, [DomainSource(n, tmp_path / n) for n in ("text", "jsonl", "csv")])
    assert [d for n in ("text", "jsonl", "csv") for d in decoded_documents(tmp_path / "corpus", n)] == \
           [t[:1000] for t in texts]
    (tmp_path / "text" / f"d9.txt.{codec}").write_bytes(pack(b"x" * 5000)[:-9])  # truncated
    with pytest.raises(MixerError, match=rf"d9\.txt\.{codec}: not a readable {codec} file \("):
        prepare(tmp_path, [DomainSource("text", tmp_path / "text")], overwrite=True)


def test_json_and_jsonl_that_are_not_utf8_are_named_not_trained_on_as_replacement_characters(tmp_path):
    """JSONL lines were decoded with errors='replace': a Latin-1 line went into the corpus with
    U+FFFD where its accents were. JSON is UTF-8 (as datasets' json loader reads it): now the
    file, the line and the byte are named."""
    src = tmp_path / "news"
    src.mkdir()
    good = json.dumps({"text": english(1500, 0)}).encode()
    (src / "a.jsonl").write_bytes(good + b"\n" + b'{"text": "caf\xe9 ' + english(1500, 1).encode() + b'"}\n')
    with pytest.raises(MixerError, match=r"a\.jsonl:2: not UTF-8 text \(byte 13 of the line\); convert it \(iconv"):
        prepare(tmp_path, [DomainSource("news", src)])
    (src / "a.jsonl").unlink()
    (src / "b.json").write_bytes(b'[' + good + b', {"text": "na\xefve"}]')
    with pytest.raises(MixerError, match=r"b\.json: not UTF-8 text \(byte \d+\); convert it"):
        prepare(tmp_path, [DomainSource("news", src)])
    assert not (tmp_path / "corpus").exists()


def test_a_byte_order_mark_is_not_text(tmp_path):
    """A Windows editor's UTF-8 byte-order mark was the first token of a text document, and a
    JSONL or JSON file that began with one was 'invalid JSON (Unexpected UTF-8 BOM)'."""
    texts = [english(1500, i) for i in range(3)]
    for name, data in {"a.txt": texts[0], "b.jsonl": json.dumps({"text": texts[1]}) + "\n",
                       "c.json": json.dumps({"text": texts[2]})}.items():
        folder = tmp_path / name.split(".")[1]
        folder.mkdir()
        (folder / name).write_bytes(b"\xef\xbb\xbf" + data.encode())
    prepare(tmp_path, [DomainSource(n, tmp_path / n) for n in ("txt", "jsonl", "json")])
    assert [decoded_documents(tmp_path / "corpus", n)[0] for n in ("txt", "jsonl", "json")] == [t[:1000] for t in texts]


def test_a_domain_the_held_out_rule_leaves_without_held_out_documents_is_named_at_prepare(tmp_path):
    """A book given as one file is one document, and a quarter of 1-3 documents is none: the
    domain had no held-out set and nothing said so until training refused to evaluate it."""
    src = write_docs(tmp_path / "book", [english(1500, i) for i in range(3)])
    web = write_docs(tmp_path / "web", [english(1500, 10 + i) for i in range(8)])
    with pytest.warns(MixerNote) as notes:
        prepare(tmp_path, [DomainSource("book", src), DomainSource("web", web)], heldout_docs=None)
    assert [str(n.message) for n in notes] == [
        "domain 'book': 3 documents survive the rules, so the held-out rule (a quarter at most) holds out none and its "
        "held-out loss cannot be measured (training and the loops refuse to evaluate it); split its long files into "
        "several documents, or hold documents out with --heldout-docs N"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for: no note
        prepare(tmp_path, [DomainSource("book", src)], heldout_docs=0, overwrite=True)


def test_a_text_field_that_is_not_text_is_named_not_tokenized_as_its_python_spelling(tmp_path):
    """A list of paragraphs in a JSONL `text` field was tokenized as "['...', '...']"; a Parquet
    or `datasets` column of lists crashed the rules with AttributeError."""
    import datasets
    import pyarrow.parquet as pq

    paragraphs = [[english(800, i), english(800, 10 + i)] for i in range(4)]
    cases = {"a.jsonl": "".join(json.dumps({"text": p}) + "\n" for p in paragraphs),
             "b.json": json.dumps([{"text": {"body": english(1500)}}]), "c.jsonl": json.dumps({"text": 12345}) + "\n"}
    expected = {"a.jsonl": "a.jsonl:1: field 'text' is not text but list ['Report number 0. The committee met on Tuesday",
                "b.json": "b.json: item 0: field 'text' is not text but dict {'body': 'Report number 0.",
                "c.jsonl": "c.jsonl:1: field 'text' is not text but int 12345"}
    fix = "; join it into one string first, or name the field with --source DOMAIN=PATH:FIELD or --text-field DOMAIN=FIELD"
    for name, body in cases.items():
        (tmp_path / name).write_text(body)
        with pytest.raises(MixerError) as info:
            prepare(tmp_path, [DomainSource("d", tmp_path / name)])
        message = str(info.value)
        assert message.startswith(f"{tmp_path}/{expected[name]}") and message.endswith(fix), message
        assert len(message) < len(f"{tmp_path}/{expected[name]}{fix}") + 40, message  # (the value's spelling: cut)
    pq.write_table(pa.table({"text": paragraphs}), tmp_path / "d.parquet")
    ds = datasets.Dataset.from_dict({"text": paragraphs})
    ds.save_to_disk(str(tmp_path / "e"))
    for source, message in [(tmp_path / "d.parquet", f"{tmp_path / 'd.parquet'}: column 'text' is list<element: string>"),
                            (tmp_path / "e", f"{tmp_path / 'e'}: column 'text' is list<item: string>"),
                            (ds.to_iterable_dataset(), "a IterableDataset: row 0: field 'text' is not text but list")]:
        with pytest.raises(MixerError) as info:
            prepare(tmp_path, [DomainSource("d", source)])
        assert str(info.value).startswith(message) and str(info.value).endswith(f", not text{fix}" if "column" in message
                                                                                else fix), str(info.value)
