"""No path is ever silently reinterpreted: a URL (`s3://bucket/x`) where mixer takes a local path
only is one line naming it and exit 2, and nothing is written locally (`./s3:/bucket/x` was)."""
from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mixer.cli.commands._options import LocalPath, StoragePath
from mixer.cli.main import main
from mixer.core.errors import MixerError
from mixer.core.urls import (
    filesystem,
    is_remote,
    is_url,
    local_path,
    require_local,
    url_scheme,
)
from mixer.formats.synthetic import lognormal_lengths, write_synthetic_corpus

URL = "s3://bucket/thing"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("urls") / "corpus"
    write_synthetic_corpus(path, {"code": lognormal_lengths(40, 30, 1.0, 1), "web": lognormal_lengths(40, 30, 1.0, 2)},
                           vocab_size=500, seed=3)
    return path


def test_urls_are_recognised_also_after_path_lost_a_slash():
    assert url_scheme("s3://b/k") == "s3" and url_scheme("GS://b") == "gs" and url_scheme("memory://x") == "memory"
    assert url_scheme(Path("s3://b/k")) == "s3"  # PosixPath('s3:/b/k'): the URL it was
    assert not is_url("shards/s3") and not is_url("./a:b/c") and not is_url("C:\\data") and not is_url(None)
    assert is_url("file:///tmp/x") and not is_remote("file:///tmp/x") and is_remote("az://c/x")
    assert local_path("file:///tmp/x") == Path("/tmp/x") and require_local("file:///tmp/x", "--out") == Path("/tmp/x")
    with pytest.raises(MixerError, match=r"^--corpus s3://b/k: object storage URLs are not supported here yet"):
        require_local("s3://b/k", "--corpus")


def test_unknown_scheme_is_one_clear_error():
    with pytest.raises(MixerError, match=r"nosuch://b/x: nosuch:// is not a storage scheme fsspec knows"):
        filesystem("nosuch://b/x")


def every_path_param():
    """(command path, parameter) for every path-typed parameter of every command."""
    def walk(cmd: click.Command, names: tuple[str, ...]):
        for p in cmd.params:
            if isinstance(p.type, click.Path):
                yield " ".join(names), p
        if isinstance(cmd, click.Group):  # `mixer` loads each command when named: ask it
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), (*names, name))
    return list(walk(main, ()))


def test_every_path_argument_of_every_command_says_whether_it_takes_urls():
    params = every_path_param()
    assert len(params) > 30
    plain = [f"{c} {p.name}" for c, p in params if type(p.type) not in (LocalPath, StoragePath)]
    assert plain == []


# One row per argument that a user would point at object storage; the URL must not be taken.
CASES = [
    ("loop --cache", ["loop", "ddo", "--corpus", "{corpus}", "--tokens", "1k", "--out", "{tmp}/l", "--cache", URL]),
    ("export-shards --out", ["export-shards", "{tmp}/s", "--out", URL, "--format", "megatron"]),
    ("solve --out", ["solve", "ddo", "{tmp}/r", "--out", URL]),
    ("train --out", ["train", "--corpus", "{corpus}", "--weight", "code=1", "--tokens", "1k", "--out", URL]),
]


@pytest.mark.parametrize("name,args", CASES, ids=[c[0] for c in CASES])
def test_cli_refuses_a_url_it_cannot_take(name, args, corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "src.jsonl"
    src.write_text('{"text": "a document"}\n')
    args = [a.format(src=src, tmp=tmp_path, corpus=corpus) for a in args]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    err = r.output.strip().splitlines()
    assert len(err) == 1 and "s3://bucket/thing" in err[0] and "not supported here" in err[0], r.output
    assert "docs/storage.md" in err[0]
    assert not (tmp_path / "s3:").exists() and not any(p.name.startswith("s3") for p in tmp_path.iterdir())


def test_library_entry_points_refuse_urls(corpus, tmp_path, monkeypatch):
    from mixer.formats.shards import read_index

    monkeypatch.chdir(tmp_path)
    src = tmp_path / "src.jsonl"
    src.write_text('{"text": "a document"}\n')
    calls = [("shards folder", lambda: read_index(URL))]
    for what, call in calls:
        with pytest.raises(MixerError, match=f"^{what} s3://bucket/thing"):
            call()
    assert os.listdir(tmp_path) == ["src.jsonl"]


def test_a_ray_build_into_a_url_with_shared_fs_is_refused_before_any_work(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["build-shards", "--corpus", str(corpus), "--weight", "code=1", "--tokens", "1k",
                                  "--seq-len", "16", "--ray", "local", "--shared-fs", "--out", URL])
    assert r.exit_code == 2 and r.output.strip() == (
        f"error: --out {URL}: --shared-fs does not apply to an output on object storage; drop it")
    assert os.listdir(tmp_path) == []


def test_a_url_in_a_domain_map_is_kept_as_given(tmp_path):
    from mixer.prepare.domain_map import load_domain_map

    (tmp_path / "map.json").write_text('{"domains": {"news": {"path": "s3://bucket/news.jsonl", "kind": "news"},'
                                       ' "web": {"path": "web", "kind": "web"}}}')
    news, web = load_domain_map(tmp_path / "map.json")
    assert news.path == "s3://bucket/news.jsonl" and web.path == (tmp_path / "web").resolve()
