"""Every file format is versioned, has one writer and one reader, and refuses what it cannot read."""
import json

import pytest

from mixer.core.errors import MixerError
from mixer.formats.weights import FORMAT_VERSION, MixtureWeights, load_weights, save_weights


def test_weights_json_is_versioned_and_round_trips(tmp_path):
    path = tmp_path / "weights.json"
    mw = MixtureWeights(weights={"a": 0.25, "b": 0.75}, method="ddo", budget_tokens=1000, provenance={"x": 1})
    save_weights(path, mw)
    obj = json.loads(path.read_text())
    assert obj["format_version"] == FORMAT_VERSION == 1
    assert load_weights(path) == mw


def test_weights_json_hand_written_other_versions_and_strings(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"weights": {"a": 0.5, "b": 0.5}}))   # typed by a person: version 1
    assert load_weights(path).weights == {"a": 0.5, "b": 0.5}
    for obj, needle in [({"format_version": 2, "weights": {"a": 1.0}}, "format_version 2"),
                        ({"weights": {"a": "0.6", "b": 0.4}}, "weight of domain 'a' is '0.6', not a number"),
                        ({"weights": {"a": True}}, "weight of domain 'a' is True")]:
        path.write_text(json.dumps(obj))
        with pytest.raises(MixerError) as exc:
            load_weights(path)
        assert needle in str(exc.value) and str(exc.value).startswith(str(path)) and "\n" not in str(exc.value)
