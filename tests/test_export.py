"""`mixer export`: each target library reads what we wrote and gets the mixture back (Megatron's
blend parser, `datasets.interleave_datasets`, litdata's `CombinedStreamingDataset`, torchtitan's
`ConfigManager`; Mosaic and OLMo-core against their documented schemas, and their own classes
where installed); the same inputs give the same bytes; bad input is one line and exit 2."""
from __future__ import annotations

import collections
import json
import math
import warnings

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from mixer.cli.main import main
from mixer.core.errors import MixerError
from mixer.export.mixture import ExportSpec, flow_list, number
from mixer.export.targets import TARGETS, export_mixture

WEIGHTS = {"news": 0.25, "code": 0.7, "web": 0.05, "books": 0.0}
KEPT = ["code", "news", "web"]  # weight > 0, sorted


@pytest.fixture
def weights_file(tmp_path):
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"format_version": 1, "weights": WEIGHTS, "method": "ddo", "budget_tokens": 30_000_000,
                                "intervals": {"news": [0.18, 0.31], "code": [0.6, 0.8]},
                                "verdict": "unsupported", "reasons": ["gain within noise"], "provenance": {}}))
    return path


def export(weights_file, target, prefix="", **kw) -> str:
    return export_mixture(ExportSpec(weights=weights_file, target=target, prefix=prefix, **kw)).text


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_megatron_blend_is_what_megatron_core_parses(weights_file):
    with warnings.catch_warnings():  # megatron-core warns on import that Apex / Transformer Engine are absent
        warnings.simplefilter("ignore")
        from megatron.core.datasets.utils import get_blend_from_list

    text = export(weights_file, "megatron", "/data/{domain}_text_document", paths={"web": "/other/web_doc"})
    assert text == "0.7 /data/code_text_document 0.25 /data/news_text_document 0.05 /other/web_doc\n"
    prefixes, weights = get_blend_from_list(text.split())  # what --data-args-path does with the file
    assert prefixes == ["/data/code_text_document", "/data/news_text_document", "/other/web_doc"]
    assert weights == [0.7, 0.25, 0.05]


def test_megatron_prints_the_verdict_and_intervals_beside_the_blend(weights_file):
    r = cli("export", weights_file, "--to", "megatron", "--prefix", "d")
    assert r.exit_code == 0, r.output
    assert r.stdout == "0.7 d/code 0.25 d/news 0.05 d/web\n"
    assert "note: code: 0.7 (95 % interval 0.6 to 0.8)" in r.stderr
    assert "note: left out at weight 0: books" in r.stderr
    assert "UNSUPPORTED" in r.stderr


def test_hf_config_drives_interleave_datasets(weights_file, tmp_path):
    import datasets

    n = 4000
    for d in WEIGHTS:
        datasets.Dataset.from_dict({"domain": [d] * n, "i": list(range(n))}).save_to_disk(str(tmp_path / "hf" / d))
    cfg = yaml.safe_load(export(weights_file, "hf", str(tmp_path / "hf")))
    assert cfg["domains"] == KEPT and cfg["probabilities"] == [0.7, 0.25, 0.05]
    mixed = datasets.interleave_datasets([datasets.load_from_disk(p) for p in cfg["paths"]],
                                         probabilities=cfg["probabilities"], seed=cfg["seed"],
                                         stopping_strategy=cfg["stopping_strategy"])
    counts = collections.Counter(mixed["domain"])
    total = sum(counts.values())
    assert counts["code"] == n  # first_exhausted: the heaviest domain runs out first, nothing repeats
    for d, p in zip(cfg["domains"], cfg["probabilities"]):  # each share within 5 binomial sd of its weight
        assert abs(counts[d] - p * total) < 5 * math.sqrt(total * p * (1 - p)), (d, counts)
    assert "books" not in counts


def test_litdata_config_drives_combined_streaming_dataset(weights_file, tmp_path):
    # not a test extra: litdata requires torchvision, whose PyPI wheel does not load beside the CPU
    # torch this project installs (and then breaks transformers' imports); install it with --no-deps
    pytest.importorskip("litdata")
    from litdata import CombinedStreamingDataset, StreamingDataset
    from litdata.streaming.writer import BinaryWriter

    for d in KEPT:
        writer = BinaryWriter(str(tmp_path / "ld" / d), chunk_size=200)
        for i in range(600):
            writer.add_item(i, {"domain": d, "i": i})
        writer.done()
        writer.merge()
    cfg = yaml.safe_load(export(weights_file, "litdata", str(tmp_path / "ld")))
    mixed = CombinedStreamingDataset([StreamingDataset(x["input_dir"]) for x in cfg["datasets"]], weights=cfg["weights"],
                                     iterate_over_all=cfg["iterate_over_all"], seed=cfg["seed"])
    total = 500
    counts = collections.Counter(item["domain"] for _, item in zip(range(total), mixed))
    assert cfg["weights"] == [0.7, 0.25, 0.05]
    for d, p in zip(cfg["domains"], cfg["weights"]):
        assert abs(counts[d] - p * total) < 5 * math.sqrt(total * p * (1 - p)), (d, counts)


@pytest.fixture
def torchtitan_config_manager(monkeypatch):
    """torchtitan's `ConfigManager` without torchtitan's package `__init__`, which imports its
    float8/MoE kernels and through them triton (a GPU compiler not installed on CPU machines): a bare
    package module stands in for it, so only `torchtitan.config` and `torchtitan.tools` are loaded."""
    import importlib.util
    import sys
    import types

    spec = importlib.util.find_spec("torchtitan")
    if spec is None:
        pytest.skip("torchtitan is not installed (pip install -e .[test])")
    for name in [m for m in sys.modules if m == "torchtitan" or m.startswith("torchtitan.")]:
        monkeypatch.delitem(sys.modules, name)
    package = types.ModuleType("torchtitan")
    package.__path__ = list(spec.submodule_search_locations)
    monkeypatch.setitem(sys.modules, "torchtitan", package)
    from torchtitan.config.manager import ConfigManager

    yield ConfigManager
    for name in [m for m in sys.modules if m.startswith("torchtitan.")]:
        del sys.modules[name]


def test_torchtitan_config_manager_reads_the_mixture(weights_file, tmp_path, torchtitan_config_manager):
    ConfigManager = torchtitan_config_manager

    path = tmp_path / "mixture.toml"
    path.write_text(export(weights_file, "torchtitan", "/data"))
    config = ConfigManager().parse_args(["--job.config_file", str(path)])
    assert config.mixture.domains == KEPT
    assert config.mixture.weights == [0.7, 0.25, 0.05]
    assert config.mixture.paths == ["/data/code", "/data/news", "/data/web"]
    assert config.training.dataset == "c4_test"  # the rest of torchtitan's job config untouched


# Stream's keyword arguments (mosaicml-streaming 0.13, streaming/base/stream.py). The library cannot be
# installed beside this project: it pins numpy<2.2 and imports torchvision, whose wheels need another torch.
MOSAIC_STREAM_KEYS = {"remote", "local", "split", "proportion", "repeat", "choose", "download_retry",
                      "download_timeout", "validate_hash", "keep_zip"}


def test_mosaic_streams_follow_the_stream_signature(weights_file):
    cfg = yaml.safe_load(export(weights_file, "mosaic", "s3://bucket", paths={"news": "/local/news"}))
    assert list(cfg) == ["streams"] and list(cfg["streams"]) == KEPT
    assert cfg["streams"]["code"] == {"remote": "s3://bucket/code", "proportion": 0.7}
    assert cfg["streams"]["news"] == {"local": "/local/news", "proportion": 0.25}
    for stream in cfg["streams"].values():
        assert set(stream) <= MOSAIC_STREAM_KEYS
    assert math.fsum(s["proportion"] for s in cfg["streams"].values()) == pytest.approx(1.0, abs=1e-12)
    try:
        import streaming
    except ImportError:  # not installable here (see above); the schema check stands in for it
        return
    built = [streaming.Stream(**s) for s in cfg["streams"].values()]
    assert [s.proportion for s in built] == [0.7, 0.25, 0.05]


# SourceMixtureConfig's fields (ai2-olmo-core 3.0, olmo_core/data/source_mixture.py); not installable here:
# its cached-path dependency pins rich<14 and this project has rich 15.
OLMO_SOURCE_KEYS = {"source_name", "target_ratio", "paths", "max_repetition_ratio", "max_source_fraction"}


def test_olmo_source_list_follows_source_mixture_config(weights_file):
    cfg = yaml.safe_load(export(weights_file, "olmo", "gs://b/{domain}/*.npy"))
    assert list(cfg) == ["sources"]
    assert [s["source_name"] for s in cfg["sources"]] == KEPT
    assert cfg["sources"][0] == {"source_name": "code", "target_ratio": 0.7, "paths": ["gs://b/code/*.npy"],
                                 "max_repetition_ratio": 1.0}
    for s in cfg["sources"]:  # SourceMixtureConfig.validate's rules
        assert set(s) <= OLMO_SOURCE_KEYS and 0 < s["target_ratio"] <= 1 and s["paths"]
    assert np.allclose(sum(s["target_ratio"] for s in cfg["sources"]), 1.0)  # SourceMixtureList.validate
    try:
        from olmo_core.data.source_mixture import SourceMixtureList
    except ImportError:
        return
    sources = SourceMixtureList.from_dict(cfg)
    sources.validate()
    assert [s.target_ratio for s in sources.sources] == [0.7, 0.25, 0.05]


@pytest.mark.parametrize("target", TARGETS)
def test_same_inputs_same_bytes_and_out_equals_print(weights_file, tmp_path, target):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    r1 = cli("export", weights_file, "--to", target, "--prefix", "p", "--out", a)
    r2 = cli("export", weights_file, "--to", target, "--prefix", "p", "--out", b)
    printed = cli("export", weights_file, "--to", target, "--prefix", "p")
    assert r1.exit_code == r2.exit_code == printed.exit_code == 0, r1.output
    assert a.read_bytes() == b.read_bytes() == printed.stdout.encode()
    if target != "megatron":  # the comments travel inside the file
        text = a.read_text()
        assert "# verdict: UNSUPPORTED" in text and "# news: 0.25 (95 % interval 0.18 to 0.31)" in text


def test_numbers_read_back_exactly_in_yaml_toml_and_json():
    import tomllib

    values = [0.1, 1e-05, 1 / 3, 2.5e-10, 1.0, 123456.789e20]
    text = flow_list(values)
    assert yaml.safe_load(text) == values and json.loads(text) == values
    assert tomllib.loads(f"x = {text}")["x"] == values
    assert number(1e-05) == "1.0e-05"


@pytest.mark.parametrize("args, message", [
    (["missing.json", "--to", "hf"], "missing.json"),
    (["{w}", "--to", "hf", "--path", "law=/x"], "unknown domain 'law'"),
    (["{w}", "--to", "hf", "--path", "code"], "expected DOMAIN=PATH"),
    (["{w}", "--to", "megatron", "--prefix", "my data"], "whitespace"),
    (["{bad}", "--to", "olmo"], "sum to"),
    (["{w}", "--to", "hf", "--out", "{tmp}/nowhere/mix.yaml"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(weights_file, tmp_path, args, message):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"weights": {"a": 0.5, "b": 0.6}}))
    args = [a.format(w=weights_file, bad=bad, tmp=tmp_path) for a in args]
    r = CliRunner().invoke(main, ["export", *args], catch_exceptions=False)
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and message in r.stderr
    assert not list(tmp_path.rglob("*.yaml")) and not list(tmp_path.rglob(".*.tmp-*"))


def test_unknown_target_exits_2(weights_file):
    r = cli("export", weights_file, "--to", "fairseq")
    assert r.exit_code == 2 and "fairseq" in r.stderr
    with pytest.raises(MixerError, match="unknown target"):
        export_mixture(ExportSpec(weights=weights_file, target="fairseq"))
