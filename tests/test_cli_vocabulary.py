"""One vocabulary of options across commands: `--quiet` for no progress bars, `--workers` for
processes, `--threads` for threads, `--max-epochs` for repetition, `--shards` for a shards
folder, and sizes shown in human units."""
from __future__ import annotations

import json
import math

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
        for old in ("--progress", "--no-progress", "--allow-repeat", "--max-repeat"):  # not even hidden
            assert all(old not in p.opts for p in cmd.params), f"mixer {name} still takes {old}"
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


@pytest.mark.parametrize("name, old", [
    ("build-shards", ["--allow-repeat"]), ("build-shards", ["--workers", "2"]), ("train", ["--allow-repeat"]),
    ("train", ["--no-progress"]), ("loop ddo", ["--allow-repeat"]), ("loop autoscale", ["--allow-repeat"]),
    ("loop regmix", ["--allow-repeat"]), ("loop doremi", ["--allow-repeat"])])
def test_old_spellings_are_refused(name, old):
    """The former aliases (--allow-repeat, train's --no-progress, build-shards' --workers) are gone:
    click refuses them like any unknown option."""
    assert all(old[0] not in p.opts for p in commands()[name].params)
    r = CliRunner().invoke(main, [*name.split(), *old])
    assert r.exit_code == 2 and "No such option" in r.output and old[0] in r.output, r.output


def test_max_epochs_is_one_run_setting_and_no_cap_is_null():
    """`max_epochs` enters the run key like any trainer setting; no cap (inf) is null in the key
    and in spec.json (JSON has no infinity); a cap below one pass, or NaN, is refused by name."""
    from mixer.core.errors import MixerError
    from mixer.loop.runner import RunSpec, TrainSpec

    def spec(**kw):
        return RunSpec(corpus="c", corpus_sha256="0" * 64, name="base", weights={"a": 1.0}, budget_tokens=1000,
                       train=TrainSpec(**kw))

    assert len({spec(max_epochs=m).key() for m in (1.0, 2.0, math.inf)}) == 3
    assert spec(max_epochs=2).key() == spec(max_epochs=2.0).key() and spec().key() == spec(max_epochs=1).key()
    text = json.dumps(spec(max_epochs=math.inf).to_json(), allow_nan=False)  # would raise on a bare inf
    assert json.loads(text)["train"]["max_epochs"] is None
    for bad in (0.5, math.nan):
        with pytest.raises(MixerError, match="--max-epochs"):
            TrainSpec(max_epochs=bad)
    r = CliRunner().invoke(main, ["loop", "ddo", "--corpus", "c", "--out", "o", "--tokens", "1k", "--max-epochs", "nan"])
    assert r.exit_code == 2 and r.output.startswith("error: --max-epochs nan: must be at least 1"), r.output


def test_loop_config_replays_no_cap_with_the_same_keys(tmp_path):
    """`--max-epochs inf` is written to OUT/loop.toml as TOML's inf and read back as no cap: the
    replay plans the same runs (same folders, so the same keys)."""
    from mixer.cli.commands._options import write_config
    from mixer.formats.synthetic import write_synthetic_corpus

    write_synthetic_corpus(tmp_path / "c", {d: [50] * 20 for d in "abc"}, vocab_size=64)
    args = ["--corpus", str(tmp_path / "c"), "--out", str(tmp_path / "o"), "--tokens", "2k", "--factors", "2",
            "--max-epochs", "inf"]
    direct = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["loop", "ddo", *args, "--show"])
    assert direct.exit_code == 0, direct.output
    cmd = commands()["loop ddo"]
    path = write_config(cmd, cmd.make_context("ddo", list(args)).params, tmp_path / "o")  # as a finished run does
    assert "max-epochs = inf" in path.read_text()
    replay = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["loop", "ddo", "--config", str(path), "--show"])
    assert replay.exit_code == 0, replay.output
    assert replay.output == direct.output and "-x1-s0-" in direct.output


@pytest.mark.filterwarnings("always::UserWarning")
def test_a_warning_is_one_line_without_mixers_source(monkeypatch, tmp_path):
    """Python's default prints `file:line: Category: message` and then the source line that warned."""
    import warnings
    from types import SimpleNamespace

    from mixer.formats import verify

    def warns(folder):
        warnings.warn("the first line\n  and its second", UserWarning, stacklevel=1)
        return SimpleNamespace(kind="corpus", summary="fine")

    monkeypatch.setattr(verify, "verify_folder", warns)
    r = CliRunner().invoke(main, ["verify", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == ["warning: UserWarning: the first line and its second"]


def test_every_option_says_what_it_does():
    bare = [f"{name} {p.opts[0]}" for name, cmd in commands().items() for p in cmd.params
            if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert bare == []


def test_help_names_only_options_the_command_has():
    """build-shards' --ray help once said '--workers is then unused'; build-shards has no --workers."""
    import re

    foreign = []
    for name, cmd in commands().items():
        have = {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                foreign += [f"{name} {p.opts[0]}: {m}" for m in re.findall(r"(?<![\w-])--[a-z][a-z-]*", p.help or "")
                            if m not in have]
    assert foreign == []
    assert "--threads is then unused" in visible(commands()["build-shards"])["--ray"].help


def test_preset_help_lists_the_presets():
    from mixer.trainers.presets import PRESETS

    for name, cmd in commands().items():
        preset = visible(cmd).get("--preset")
        if preset is not None:
            for model, names in PRESETS.items():
                assert f"{model}: {', '.join(names)}" in preset.help, name
    assert "--preset" in visible(commands()["loop ddo"])


@pytest.mark.parametrize("command, option, needs", [
    ("prepare", "--vocab-size", "--tokenizer train"), ("prepare", "--task-mb", "With --ray"),
    ("prepare", "--split", "Only with a save_to_disk DatasetDict"), ("build-shards", "--shared-fs", "With --ray"),
    ("build-shards", "--normalize", "With --weight"), ("train", "--normalize", "With --weight"),
    ("train", "--tokens", "With --corpus"), ("train", "--weights", "With --corpus"),
    ("loop ddo", "--ray-cpus", "--ray local")])
def test_an_option_that_matters_only_with_another_says_so(command, option, needs):
    assert needs in visible(commands()[command])[option].help


def test_help_of_every_command_imports_no_heavy_library():
    """`mixer --help` and every command's `--help` stay light: the command modules import the
    library inside their functions, and option help (the presets' names) reads no trainer; no
    torch, numba, matplotlib or ray is imported to print help (a subprocess, so this test run's
    own imports do not count)."""
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from mixer.cli import main\n"
            "names = [c for c in main.list_commands(None)]\n"
            "for argv in [['--help']] + [[n, '--help'] for n in names]:\n"
            "    assert CliRunner().invoke(main, argv).exit_code == 0, argv\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numba', 'matplotlib', 'ray'})\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"help imported {out}"
