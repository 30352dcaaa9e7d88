"""`dumps_sorted` writes exactly the bytes of `json.dumps(obj, indent=2, sort_keys=True)`: every
JSON file mixer writes (index.json, corpus.json, run.json ...) goes through it."""
import json
import math
import random

import pytest

from mixer.core.atomic import write_json_atomic
from mixer.core.jsonio import dumps_sorted

SCALARS = [None, True, False, 0, -3, 2**70, 1.5, -0.0, 1e300, 1e-7, 0.1, 3.0, math.nan, math.inf, -math.inf,
           "", "plain", 'quote " backslash \\ newline \n tab \t control \x01', "é 日本 \U0001f600"]
KEYS = ["a", "b", "é", "a b", '"q', "10", "9", ""]


def random_value(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 4 or r < 0.45:
        return rng.choice(SCALARS)
    if r < 0.75:
        return {rng.choice(KEYS) + str(rng.randint(0, 2)): random_value(rng, depth + 1) for _ in range(rng.randint(0, 6))}
    items = [random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return items if r < 0.9 else tuple(items)


def test_same_bytes_as_the_json_module_on_random_documents():
    rng = random.Random(11)
    for _ in range(3000):
        obj = random_value(rng)
        assert dumps_sorted(obj) == json.dumps(obj, indent=2, sort_keys=True)


def test_an_index_shaped_document_and_the_file_written(tmp_path):
    names = [f"d{i:05d}" for i in range(2000)]
    obj = {"domain_order": names, "weights": {n: 1 / 3 + i for i, n in enumerate(names)},
           "domains": {n: {"index": i, "weight": 0.5, "epochs": 1, "content_tokens": None, "tokens": [1, 2]}
                       for i, n in enumerate(names)},
           "shards": [{"file": "shard-00000.zst", "domains": {"file": "x", "xxh64": "ab"}, "sequences": 3}],
           "stages": [], "special": {}, "checksum": "00ff"}
    write_json_atomic(tmp_path / "index.json", obj)
    assert (tmp_path / "index.json").read_text() == json.dumps(obj, indent=2, sort_keys=True) + "\n"


def test_what_the_json_module_refuses_it_refuses_the_same_way():
    with pytest.raises(TypeError, match="not supported between"):
        dumps_sorted({"a": {1: 2, "b": 3}})
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps_sorted({"a": [object()]})
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps_sorted(loop)
    for odd in ({1: "int key", 2.5: "float key"}, [{True: 1, False: 2}], {"a": (1, [2, {"b": float("nan")}])}):
        assert dumps_sorted(odd) == json.dumps(odd, indent=2, sort_keys=True)


def test_write_sealed_is_the_sealed_object_written(tmp_path):
    """`write_sealed` (floats' spelling checked once) writes what write_json_atomic(seal(obj))
    wrote, on random documents with odd floats (1e-07, NaN), non-ASCII keys and escapes."""
    from mixer.formats.schema import SEAL_KEY, canonical, write_sealed

    import xxhash

    rng = random.Random(5)
    for k in range(400):
        obj = {"v": random_value(rng), "w": random_value(rng), SEAL_KEY: "stale"}
        write_sealed(tmp_path / "a.json", obj)
        body = {k: v for k, v in obj.items() if k != SEAL_KEY}
        sealed = {**body, SEAL_KEY: xxhash.xxh3_64_hexdigest(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                                                         ensure_ascii=True).encode("ascii"))}
        assert (tmp_path / "a.json").read_text() == json.dumps(sealed, indent=2, sort_keys=True) + "\n"
        assert canonical(body) == json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")


def _floats_alike_one_by_one(obj) -> bool:
    """The walk `floats_spelled_alike` replaced: value after value."""
    import orjson

    floats, stack = [], [obj]
    while stack:
        x = stack.pop()
        if type(x) is dict:
            stack.extend(x.values())
        elif type(x) in (list, tuple):
            stack.extend(x)
        elif type(x) is float:
            floats.append(x)
    return all(orjson.dumps(f) == float.__repr__(f).encode() for f in floats)


def test_floats_spelled_alike_agrees_with_a_value_by_value_walk():
    from mixer.core.jsonio import floats_spelled_alike

    rng = random.Random(3)
    seen = set()
    for _ in range(3000):
        obj = random_value(rng)
        seen.add(floats_spelled_alike(obj))
        assert floats_spelled_alike(obj) == _floats_alike_one_by_one(obj), obj
    assert seen == {True, False}
    for scalar in (1e-7, 0.5, "x", None, 3):
        assert floats_spelled_alike(scalar) == _floats_alike_one_by_one(scalar)


def test_reading_every_document_back_and_refusing_keys_given_twice(tmp_path):
    """A file mixer wrote is read without the per-object key check (it is the bytes mixer writes
    for what was read: each key once); any other text is read with it. The object read is the
    json module's either way, and a key given twice is named, whatever the file's layout."""
    from mixer.core.errors import MixerError
    from mixer.core.jsonio import _keys_unique, read_json_document, read_json_object

    rng = random.Random(8)
    path = tmp_path / "doc.json"
    fast = 0
    for _ in range(600):
        obj = {"v": random_value(rng), "w": [random_value(rng)]}
        write_json_atomic(path, obj)
        raw = path.read_bytes()
        fast += _keys_unique(raw, json.loads(raw))
        expected = json.loads(raw)
        got, plain = read_json_document(path, "test document", "fix it")
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
        assert json.dumps(read_json_object(path, "test document", "fix it"), sort_keys=True) == \
            json.dumps(expected, sort_keys=True)
    assert 100 < fast < 600  # both paths taken (NaN, escapes and odd floats go the slow way)
    twice = [
        '{\n  "a": 1,\n  "a": 1\n}\n',  # mixer's layout, a key twice with the same value
        '{\n  "a": {\n    "b": 1,\n    "b": 2\n  }\n}\n',
        '{"a": 1, "b": [{"c": 0.5, "c": 0.5}]}',
        '{\n  "a": 1,\n  "\\u0061": 1\n}\n',  # the same key spelled two ways
    ]
    for text in twice:
        path.write_text(text)
        with pytest.raises(MixerError, match="is given twice in one object of the test document; fix it"):
            read_json_object(path, "test document", "fix it")
        with pytest.raises(MixerError, match="is given twice"):
            read_json_document(path, "test document", "fix it")


def test_an_atomic_write_that_fails_leaves_no_temporary(tmp_path, monkeypatch):
    """The rename refused (a folder where the file goes) or the write cut short (a full disk):
    the error is raised and nothing half-written stays beside the target."""
    import os

    from mixer.core.atomic import write_bytes_atomic

    (tmp_path / "a.json").mkdir()
    with pytest.raises(OSError):
        write_bytes_atomic(tmp_path / "a.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]

    def full(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        write_bytes_atomic(tmp_path / "b.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
