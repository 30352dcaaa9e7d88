"""`python -m bench.reader --quick` runs end to end (the CI's check that the benchmark works):
every configuration of ours delivers the whole stream, and each goal of issue 28 gets a ratio."""
from __future__ import annotations

import json

import pytest

from bench.reader import run

# two DataLoader workers on a 2-core machine: torch does not warn; more would
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


def test_reader_quick_without_peers(tmp_path, capsys):
    out = run(["--quick", "--no-peers", "--tokens", "1M", "--seq-len", "256", "--slow-tokens", "64K",
               "--out", str(tmp_path / "reader.json")])
    res = out["results"]
    whole = 1_000_000 // 256 * 256
    for name in ("stream_1thread", "stream_w0", "stream_w2", "stream_tokens_1thread", "stream_tokens_w2",
                 "stream_perseq_w0", "sampler_w0", "sampler_w2", "decode_widen", "decode_widen_tokens"):
        assert res[name]["tokens"] == whole, name
    assert 64_000 <= res["stream_perseq_w2"]["tokens"] < whole
    assert {"loader_w2_vs_w0", "stream_vs_decode_widen", "stream_tokens_vs_decode_widen"} <= set(out["ratios"])
    printed = capsys.readouterr().out
    assert "stream.loader(2) vs its own 0 workers" in printed and "goal >= 1.5x" in printed
    saved = json.loads((tmp_path / "reader.json").read_text())
    assert saved["machine"]["loadavg"] and saved["loadavg_after"] and saved["machine"]["versions"]["torch"]


@pytest.mark.slow
def test_reader_quick_with_peers(tmp_path, capsys):
    out = run(["--quick", "--tokens", "1M", "--seq-len", "256", "--slow-tokens", "64K"])
    assert "hf_arrow" in out["results"] and "stream_vs_hf_1thread" in out["ratios"]
    # litdata imports in the dev venv; where it does not, --quick skips it with a note
    assert "litdata_w0" in out["results"] or any("litdata skipped" in n for n in out["notes"])
    assert "vs litdata" in capsys.readouterr().out


def test_reader_only_some_configurations_with_cpu_time(tmp_path, monkeypatch, capsys):
    """--only runs the named configurations and writes no results file unless --out is given;
    every run in this process carries its CPU time beside its wall time."""
    monkeypatch.setattr("bench.reader.RESULTS", tmp_path / "reader.json")
    out = run(["--no-peers", "--tokens", "512K", "--seq-len", "256", "--repeats", "2",
               "--only", "decode_widen_tokens,stream_tokens_1thread"])
    res = out["results"]
    assert set(res) == {"decode_widen_tokens", "stream_tokens_1thread"}
    for r in res.values():
        assert r["tokens"] == 512_000 and len(r["runs_cpu_tokens_per_s"]) == 2 and r["cpu_tokens_per_s"] > 0
    assert set(out["ratios"]) == {"stream_tokens_vs_decode_widen"}
    assert "tokens only:" in (printed := capsys.readouterr().out) and "CPU time" in printed
    assert not (tmp_path / "reader.json").exists()
    with pytest.raises(SystemExit) as exc:
        run(["--no-peers", "--tokens", "512K", "--seq-len", "256", "--only", "stream_nope"])
    assert exc.value.code == 2
