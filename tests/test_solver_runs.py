"""run.json reading: every bad input is one MixerError line naming the file and the problem."""
import json

import numpy as np
import pytest

from mixer.core.errors import MixerError
from mixer.solver.runs import group_ddo, read_run, read_runs
from support import ddo_sweep, write_runs


def sweep(tmp_path, factors=(0.2, 3.0), **kw):
    runs = ddo_sweep(["a", "b", "c"], [1.0, 0.5, 2.0], [0.3, 0.6, 0.5], factors=factors, **kw)
    return runs, write_runs(tmp_path, runs)


def rewrite(path, **changes):
    obj = json.loads(path.read_text())
    obj.update(changes)
    path.write_text(json.dumps(obj))


def expect(paths, match, grouped=True):
    with pytest.raises(MixerError, match=match) as info:
        runs = read_runs(paths)
        if grouped:
            group_ddo(runs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_points_in_authors_units(tmp_path):
    _, paths = sweep(tmp_path)
    data = group_ddo(read_runs([tmp_path]))          # a folder is searched for run.json
    assert data.factors == (0.2, 3.0) and len(data.base) == 1
    x, y = data.points()["b"]
    np.testing.assert_allclose(x, [1.0, 0.2, 3.0], rtol=1e-5)   # base first, then the perturbed runs
    assert y[0] == pytest.approx(1.0)
    assert data.base[0].aggregate_loss == pytest.approx(3.0)


def test_mixed_corpora(tmp_path):
    _, paths = sweep(tmp_path)
    rewrite(paths[2], corpus_sha256="f" * 64)
    assert str(paths[2]) in expect(paths, "corpus")


def test_mixed_budgets(tmp_path):
    _, paths = sweep(tmp_path, factors=(0.2, 2.0), keep_total=True)
    rewrite(paths[3], budget_tokens=2_000_000)
    assert str(paths[3]) in expect(paths, "budget")


def test_missing_perturbed_run(tmp_path):
    _, paths = sweep(tmp_path)
    missing = [p for p in paths if p.parent.name == "b-x3"][0]
    msg = expect([p for p in paths if p != missing], "domain 'b' has no perturbed run with factor 3")
    assert "base" in msg


def test_no_base_run(tmp_path):
    _, paths = sweep(tmp_path)
    expect([p for p in paths if p.parent.name != "base"], "role 'base'")


def test_nan_loss(tmp_path):
    _, paths = sweep(tmp_path)
    rewrite(paths[1], final_loss={"a": float("nan"), "b": 3.0, "c": 3.0})
    assert str(paths[1]) in expect(paths, "final_loss of domain 'a' is nan")


def test_non_positive_tokens(tmp_path):
    _, paths = sweep(tmp_path)
    rewrite(paths[1], tokens_per_domain={"a": 0, "b": 10, "c": 10})
    assert str(paths[1]) in expect(paths, "tokens_per_domain of domain 'a' is 0")


def test_version_missing_field_and_bad_json(tmp_path):
    _, paths = sweep(tmp_path)
    rewrite(paths[0], format_version=2)
    expect(paths[:1], "format_version 2", grouped=False)
    obj = json.loads(paths[1].read_text())
    del obj["final_loss"]
    paths[1].write_text(json.dumps(obj))
    expect(paths[1:2], "missing field 'final_loss'", grouped=False)
    paths[2].write_text("{not json")
    expect(paths[2:3], "unreadable run file", grouped=False)
    expect([tmp_path / "nope.json"], "nope.json", grouped=False)


def test_history_read_unknown_fields_and_bad_weights_refused(tmp_path):
    """run.json has one reader (mixer.formats.run): the solver refuses what the trainers refuse."""
    _, paths = sweep(tmp_path)
    rewrite(paths[0], loss_history={"a": [1.0, 2.0]})
    run = read_run(paths[0])
    assert run.loss_history == {"a": [1.0, 2.0]} and run.role == "base"
    rewrite(paths[0], something_new={"x": 1})
    assert str(paths[0]) in expect(paths[:1], "unknown field 'something_new'", grouped=False)
    rewrite(paths[1], weights={"a": 0.5, "b": 0.2, "c": 0.2})
    assert str(paths[1]) in expect(paths[1:2], "weights sum to 0.9", grouped=False)


def test_grown_runs_group_when_trainer_realises_fewer_tokens(tmp_path):
    """A trainer stops at whole batches, so realised tokens fall short of the plan by up to a
    batch; at small budgets that is over 1 %. Grouping must go by the planned mixture."""
    from mixer.solver.runs import group_ddo, read_runs
    from support import ddo_sweep, write_runs

    runs = ddo_sweep(["a", "b", "c"], [0.5, 0.5, 0.5], [0.3, 0.4, 0.5], budget=16_000, factors=(3.0,))
    for obj in runs.values():
        obj["tokens_per_domain"] = {d: int(n * 0.97) for d, n in obj["tokens_per_domain"].items()}
    data = group_ddo(read_runs(write_runs(tmp_path, runs)))
    assert data.budget_tokens == 16_000 and data.factors == (3.0,)
    assert all(len(data.perturbed[d]) == 1 for d in ("a", "b", "c"))
