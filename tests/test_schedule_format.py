"""schedule.json (reader, writer, one-line errors) and the AutoScale curve -> stages conversion."""
import json
import math

import numpy as np
import pytest

from mixer.core.errors import MixerError
from mixer.formats.schedule import load_schedule, make_schedule, save_schedule
from mixer.solver.autoscale import fit_floored
from mixer.solver.schedule import schedule_from_fit, stage_boundaries


def test_round_trip(tmp_path):
    s = make_schedule([(1000, {"a": 0.25, "b": 0.75}), (3000, {"a": 0.5, "b": 0.5})], method="manual",
                      provenance={"why": "test"})
    save_schedule(tmp_path / "schedule.json", s)
    back = load_schedule(tmp_path / "schedule.json")
    assert back == s and back.budget_tokens == 3000 and back.domains == ("a", "b")
    assert json.loads((tmp_path / "schedule.json").read_text())["format_version"] == 1


@pytest.mark.parametrize("stages, words", [
    ([], "no stages"),
    ([(1000, {"a": 0.5, "b": 0.5}), (1000, {"a": 0.5, "b": 0.5})], "stages[1].until_tokens 1000 is not above"),
    ([(10.5, {"a": 1.0})], "stages[0].until_tokens is 10.5"),
    ([(100, {"a": 0.5, "b": 0.6})], "stages[0]: weights sum to"),
    ([(100, {"a": 0.5, "b": 0.5}), (200, {"a": 0.5, "c": 0.5})], "stages[1] and stages[0] differ in domain 'b'"),
    ([{"until_tokens": 5}], "stages[0] needs"),
])
def test_bad_schedules_are_one_line(stages, words):
    with pytest.raises(MixerError) as e:
        make_schedule(stages)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_reader_refuses_other_versions(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"format_version": 7, "stages": []}))
    with pytest.raises(MixerError, match="format_version 7"):
        load_schedule(p)


def test_schedule_from_a_known_fit_equals_the_hand_computed_one():
    # Optima (100, 100) at 200 tokens and (200, 400) at 600: r = (2, 4), so N*(B) = (100u, 100u^2)
    # with 100u + 100u^2 = B (u = 2^t). B = 600: u = 2; B = 1200: u = 3; B = 1800: u = (-1 + sqrt 73)/2.
    fit = fit_floored([[100.0, 100.0], [200.0, 400.0]])
    s = schedule_from_fit(fit, ["a", "b"], target=1800, stage_tokens=600)
    assert [x.until_tokens for x in s.stages] == [600, 1200, 1800]
    u = (-1 + math.sqrt(73)) / 2
    expected = [(200 / 600, 400 / 600), (100 / 600, 500 / 600), ((100 * u - 300) / 600, (100 * u * u - 900) / 600)]
    for stage, (a, b) in zip(s.stages, expected):
        assert stage.weights["a"] == pytest.approx(a, abs=1e-9) and stage.weights["b"] == pytest.approx(b, abs=1e-9)
    # The data read by each boundary is the optimum there: cumulative tokens of "a" at 1200 are 300.
    cum_a = np.cumsum([st.weights["a"] * 600 for st in s.stages])
    np.testing.assert_allclose(cum_a, [200, 300, 100 * u], rtol=1e-9)
    assert s.method == "autoscale" and s.provenance["clipped"] == []


def test_shrinking_domain_is_clipped_at_zero():
    # "b" shrinks with scale (r_b = 0.9): its increments go negative once the budget grows.
    fit = fit_floored([[100.0, 100.0], [300.0, 90.0]])
    s = schedule_from_fit(fit, ["a", "b"], target=4000, stage_tokens=1000)
    assert s.provenance["clipped"] and all(st.weights["b"] >= 0 for st in s.stages)
    assert all(abs(sum(st.weights.values()) - 1) < 1e-9 for st in s.stages)


def test_stage_boundaries_and_bad_granularity():
    assert stage_boundaries(2500, 1000) == [1000, 2000, 2500]
    assert stage_boundaries(2000, 1000) == [1000, 2000]
    with pytest.raises(MixerError, match="--stage-tokens 0"):
        stage_boundaries(2000, 0)


def test_stage_intervals_from_replicate_fits():
    rng = np.random.default_rng(0)
    base = np.array([[100.0, 100.0], [200.0, 400.0]])
    reps = [fit_floored(base * np.exp(rng.normal(0, 0.05, base.shape))) for _ in range(40)]
    s = schedule_from_fit(fit_floored(base), ["a", "b"], target=1800, stage_tokens=600, replicate_fits=reps)
    assert s.provenance["interval_replicates"] == 40
    for stage in s.stages:
        lo, hi = stage.intervals["a"]
        assert lo < stage.weights["a"] < hi and hi - lo < 0.5
    few = schedule_from_fit(fit_floored(base), ["a", "b"], target=1800, stage_tokens=600, replicate_fits=reps[:5])
    assert all(st.intervals == {} for st in few.stages)  # too few replicates: no interval rather than a narrow one
