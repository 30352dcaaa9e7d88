"""RegMix's target and usage bound, as the authors' code has them: the regression's target is one
chosen loss (`eval_domains`; the authors regress their Pile-CC loss), and no domain may take more
weight than `max_usage` (15) epochs of its tokens allow, in the training mixtures and in the
search (sail-sg/regmix `mixture_config/synthesize_mixture.py`). Constructed cases in which each
must change the chosen mixture."""
from __future__ import annotations

import numpy as np
import pytest
from support import mixing_law_runs, write_runs

from mixer.core.errors import MixerError
from mixer.solver.baselines.regmix import PriorSpec, sample_mixtures, usage_bound
from mixer.solver.runs import read_runs
from mixer.solver.baselines.regmix import RegMixSettings
from mixer.solver.solutions import regmix_solution

DOMAINS = ("a", "b", "c")
C, K = np.array([2.0, 1.5, 3.0]), np.array([1.0, 0.8, 1.2])
T = np.array([[-3, 1, 2], [1, -2.5, 1.5], [0.5, 1, -1.5]], float)
T -= T.mean(axis=1, keepdims=True)  # domain a's loss falls with r_a; the mean's optimum is (0.468, 0.314, 0.217)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regmix-target")
    write_runs(folder, mixing_law_runs(C, K, T, 120, domains=DOMAINS))
    return read_runs([folder])


def solve(runs, tmp_path, **kw):
    upper = kw.pop("upper", None)
    return regmix_solution(runs, tmp_path / "w.json", settings=RegMixSettings(n_bootstrap=0, n_search=20_000),
                           space=(None, upper), plots=False, **kw)


def test_the_target_loss_changes_the_chosen_mixture(runs, tmp_path):
    mean = solve(runs, tmp_path)  # the default: the mean over every domain, LightGBM
    assert mean.provenance["model"] == "lightgbm" and mean.provenance["eval_domains"] is None
    np.testing.assert_allclose([mean.weights[d] for d in DOMAINS], [0.468, 0.314, 0.217], atol=0.08)
    only_a = solve(runs, tmp_path, eval_domains=["a"])  # domain a's loss alone: as much a as possible
    assert only_a.weights["a"] > 0.75 > mean.weights["a"] + 0.2
    assert only_a.provenance["target"] == "mean held-out loss over a"
    with pytest.raises(MixerError, match="'z' is not a domain"):
        solve(runs, tmp_path, eval_domains=["z"])


def test_the_usage_bound_changes_the_chosen_mixture(runs, tmp_path):
    # Domain a holds 1 % of the tokens: 15 epochs of it are at most 15 % of a corpus-sized run.
    upper = dict(zip(DOMAINS, usage_bound([1.0, 50.0, 49.0]).tolist()))
    assert upper == pytest.approx({"a": 0.15, "b": 1.0, "c": 1.0})
    free = solve(runs, tmp_path, eval_domains=["a"])
    bound = solve(runs, tmp_path, eval_domains=["a"], upper=upper)
    assert free.weights["a"] > 0.75  # the regression wants a ...
    assert 0.10 < bound.weights["a"] <= 0.15 + 1e-9  # ... the bound allows 15 %: it takes close to all of it
    assert bound.provenance["usage_bound"] == pytest.approx(upper)


def test_usage_bound_and_rounding_of_the_candidates():
    assert usage_bound([10.0, 90.0], max_usage=2, train_tokens=100).tolist() == pytest.approx([0.2, 1.0])
    with pytest.raises(ValueError, match="allow more epochs"):
        usage_bound([10.0, 10.0], max_usage=2, train_tokens=100)  # bounds sum to 0.4
    prior, upper = np.array([0.2, 0.5, 0.3]), np.array([0.25, 1.0, 0.6])
    W = sample_mixtures(prior, 3000, seed=0, upper=upper)
    assert np.all(W <= upper + 2e-4) and np.allclose(W.sum(axis=1), 1.0, atol=1e-12)
    assert np.allclose(W / 2e-4, np.round(W / 2e-4), atol=1e-6)  # multiples of 2e-4, the authors' rounding
    assert (W == 0).any()  # shares under 2e-4 are zeroed (draws near a corner have some)
    free = sample_mixtures(prior, 3000, seed=0, spec=PriorSpec(minimum=0.0))
    assert (free[:, 0] > 0.25).mean() > 0.1  # without the bound, domain 0 often exceeds it
    assert np.array_equal(W, sample_mixtures(prior, 3000, seed=0, upper=upper))  # deterministic


def test_cli_target_and_bound_options(runs, tmp_path):
    """`mixer solve regmix --eval-domains` and `--corpus` reach the fit; a domain the runs do not
    report is one line, exit 2, before anything is written."""
    from pathlib import Path

    from click.testing import CliRunner

    from mixer.cli import main
    from mixer.formats.weights import load_weights

    folder = str(Path(runs[0].path).parent.parent)
    out = tmp_path / "w.json"
    r = CliRunner().invoke(main, ["solve", "regmix", folder, "--out", str(out), "--eval-domains", "z",
                                  "--bootstrap", "0", "--no-plots"])
    assert r.exit_code == 2 and "'z' is not a domain" in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()
    r = CliRunner().invoke(main, ["solve", "regmix", folder, "--out", str(out), "--eval-domains", "a",
                                  "--bootstrap", "0", "--no-plots"])
    assert r.exit_code == 0, r.output
    w = load_weights(out)
    assert w.provenance["model"] == "lightgbm" and w.provenance["eval_domains"] == ["a"] and w.weights["a"] > 0.75
