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
