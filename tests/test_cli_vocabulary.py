"""One vocabulary of options across commands: `--quiet` for no progress bars, `--workers` for
processes, `--threads` for threads, `--max-epochs` for repetition, `--shards` for a shards
folder, and sizes shown in human units."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mixer.cli import main


def commands() -> dict[str, click.Command]:
    ctx = click.Context(main)
    out = {}
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                out[f"{name} {sub}"] = cmd.get_command(ctx, sub)
        else:
            out[name] = cmd
    return out


def visible(cmd: click.Command) -> dict[str, click.Parameter]:
    return {opt: p for p in cmd.params if isinstance(p, click.Option) and not p.hidden for opt in p.opts}


def test_no_command_uses_the_old_spellings():
    for name, cmd in commands().items():
        opts = visible(cmd)
        for old in ("--progress", "--no-progress", "--allow-repeat", "--max-repeat"):
            assert old not in opts, f"mixer {name} still shows {old}"
        if "--quiet" in opts:
            assert opts["--quiet"].is_flag, name
        if "--workers" in opts:
            assert "process" in (opts["--workers"].help or "").lower(), f"mixer {name}: --workers must mean processes"
        if "--threads" in opts:
            assert "thread" in (opts["--threads"].help or "").lower(), name


@pytest.mark.parametrize("name", ["prepare", "build-shards", "train", "demo", "corpus default"])
def test_commands_that_show_progress_take_quiet(name):
    assert "--quiet" in visible(commands()[name])


def test_shards_folder_is_named_the_same_everywhere(tmp_path):
    assert "--shards" in visible(commands()["inspect"]) and "--shards" in visible(commands()["train"])
    r = CliRunner().invoke(main, ["inspect"])
    assert r.exit_code == 2 and "--shards DIR" in r.output


def test_sizes_show_in_human_units():
    r = CliRunner().invoke(main, ["build-shards", "--help"])
    assert "32Mi" in r.output and "33554432" not in r.output


def test_loop_max_epochs_keys_runs_and_keeps_old_caches():
    """`--max-epochs inf` and the old `--allow-repeat` train the same runs (same cache keys, so
    caches built before the cap still hold); a finite cap is another run."""
    from mixer.cli.commands._options import trainer_repetition
    from mixer.loop.runner import RunSpec, TrainSpec

    def key(**kw):
        spec = TrainSpec(**trainer_repetition({"max_epochs": 1.0, "allow_repeat": False, **kw}))
        return RunSpec(corpus="c", corpus_sha256="0" * 64, name="base", weights={"a": 1.0}, budget_tokens=1000,
                       train=spec).key()

    old = RunSpec(corpus="c", corpus_sha256="0" * 64, name="base", weights={"a": 1.0}, budget_tokens=1000,
                  train=TrainSpec(allow_repeat=True)).key()
    assert key(allow_repeat=True) == key(max_epochs=float("inf")) == old
    assert key(max_epochs=2.0) != old and key() != old
    with pytest.raises(Exception, match="--max-epochs 0.5"):
        key(max_epochs=0.5)
