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


def test_shard_digests_in_pieces_are_the_whole_files_digests():
    """`_digest` hashes 256 KiB pieces with both hashes in turn: the same xxh64 and sha256 as
    hashing the bytes whole, at every length around a piece's boundary."""
    import hashlib
    import os

    import xxhash

    from mixer.formats.shards import _DIGEST_STEP, _digest

    for n in (0, 1, _DIGEST_STEP - 1, _DIGEST_STEP, _DIGEST_STEP + 1, 3 * _DIGEST_STEP + 17):
        data = os.urandom(n)
        assert _digest(data) == (xxhash.xxh64_hexdigest(data), hashlib.sha256(data).hexdigest())
