"""Many domains opened together (`corpus_handle.open_splits`, `arrow.ipc.read_parts`) give
exactly what `open_split` gives domain by domain: the same arrays, and for every fault the same
one-line error. And corpus.json's canonical bytes through orjson are the json module's."""
import json
import math
import random
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from mixer.core.errors import MixerError
from mixer.core.jsonio import dumps_sorted, orjson_sorted, read_json_document
from mixer.formats.arrow import ipc as arrow_ipc
from mixer.formats.corpus import DomainInfo, SplitInfo, load_manifest, open_part, open_split, save_manifest, write_part
from mixer.formats.corpus_handle import Corpus, open_splits
from mixer.formats.schema import canonical, canonical_and_seal_ok, seal
from mixer.formats.synthetic import write_synthetic_corpus


def _part_bytes(path, n, dtype, seed):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(rng.integers(0, 40, n))]).astype(np.int64)
    write_part(path, rng.integers(0, 2**63, n).astype(np.uint64), offsets,
               rng.integers(0, 60000, offsets[-1]).astype(dtype))
    return path.read_bytes()


def test_read_parts_agrees_with_read_part_on_every_damaged_byte(tmp_path, fresh_layouts):
    """Each single-byte change of a part (three xor masks), truncations and random multi-byte
    damage, all laid side by side in one buffer: `read_parts` accepts exactly the variants
    `read_part` accepts, and reads the same arrays from them."""
    dt = np.dtype(np.uint16)
    assert arrow_ipc.read_parts(np.zeros(64, np.uint8), np.zeros(1, np.int64), np.zeros(1, np.int64), dt) is None
    _part_bytes(tmp_path / "model.arrow", 3, dt, 0)
    open_part(tmp_path / "model.arrow", dt)  # pyarrow reads it, then it is the model
    raw = _part_bytes(tmp_path / "p.arrow", 6, dt, seed=6)
    rng = np.random.default_rng(1)
    variants = [raw] + [raw[:i] + bytes([raw[i] ^ x]) + raw[i + 1:] for x in (0x5A, 0x01, 0x80) for i in range(len(raw))]
    variants += [raw[:k] for k in (0, 7, 8, 100, len(raw) - 1)] + [raw + bytes(8)]
    for _ in range(200):
        v = np.frombuffer(raw, np.uint8).copy()
        v[rng.integers(0, len(raw), 3)] = rng.integers(0, 256, 3, dtype=np.uint8)
        variants.append(v.tobytes())
    starts = np.concatenate([[0], np.cumsum([-(-len(v) // 64) * 64 for v in variants])]).astype(np.int64)
    buf = np.zeros(int(starts[-1]) + 1024, np.uint8)
    for a, v in zip(starts.tolist(), variants):
        buf[a:a + len(v)] = np.frombuffer(v, np.uint8)
    got = arrow_ipc.read_parts(buf, starts[:-1], np.array([len(v) for v in variants]), dt)
    accepted = 0
    for j, v in enumerate(variants):
        one = arrow_ipc.read_part(pa.py_buffer(v), dt)
        assert bool(got.ok[j]) == (one is not None), j
        if one is None:
            continue
        accepted += 1
        ids, offsets, values = one
        assert got.rows[j] == len(ids) and got.n_values[j] == len(values)
        a, b, c = (int(x[j]) for x in (got.ids_at, got.offsets_at, got.values_at))
        assert np.array_equal(buf[a:a + ids.nbytes].view(np.uint64), ids)
        assert np.array_equal(buf[b:b + offsets.nbytes].view(np.int64), offsets)
        assert np.array_equal(buf[c:c + values.nbytes].view(dt), values)
    assert accepted > len(raw)  # the token values and ids are still read fast after a change


def _corpus(tmp_path, vocab_size=50257):
    """Domains of one small part each, one of two parts, one empty, one part above 64 KiB."""
    lengths = {f"d{i:02d}": [5 + i, 30, 7] for i in range(12)}
    lengths["big"] = [40_000]  # 80 KB of uint16: memory-mapped, not read whole
    lengths["empty"] = []
    folder = tmp_path / "corpus"
    manifest = write_synthetic_corpus(folder, lengths, vocab_size=vocab_size, seed=3)
    extra = "d03/train/part-00001.arrow"
    _part_bytes(folder / extra, 4, np.dtype(manifest.token_dtype), seed=9)
    split = manifest.domains["d03"].splits["train"]
    part = open_part(folder / extra)
    grown = SplitInfo(documents=split.documents + 4, tokens=split.tokens + int(part.offsets[-1]),
                      files=[*split.files, extra])
    domains = {**manifest.domains, "d03": DomainInfo(kind=manifest.domains["d03"].kind,
                                                     splits={**manifest.domains["d03"].splits, "train": grown})}
    save_manifest(folder, replace(manifest, domains=domains))
    return folder


def _same(a, b):
    assert [p.path for p in a.parts] == [p.path for p in b.parts]
    for x, y in zip(a.parts, b.parts):
        for f in ("doc_ids", "offsets", "values"):
            u, v = getattr(x, f), getattr(y, f)
            assert u.dtype == v.dtype and np.array_equal(u, v) and u.flags.writeable == v.flags.writeable


@pytest.mark.parametrize("model_known, vocab_size", [(False, 50257), (True, 50257), (False, 100_000)])
def test_open_splits_gives_what_open_split_gives(tmp_path, fresh_layouts, model_known, vocab_size):
    folder = _corpus(tmp_path, vocab_size)  # (100,000 ids: uint32 tokens)
    manifest = load_manifest(folder)
    if model_known:  # (else open_splits opens the first part alone, as the model of the rest)
        open_split(folder, "d00", "train", manifest)
    together = open_splits(folder, manifest, manifest.domain_names, "train")
    assert list(together) == manifest.domain_names
    assert len(together["d03"].parts) == 2 and together["empty"].num_documents == 0
    for d in manifest.domain_names:
        _same(together[d], open_split(folder, d, "train", manifest))
    corpus = Corpus.open(folder)  # the handle opens them once and keeps them
    first = corpus.splits(["d05", "big", "d05"])
    assert list(first) == ["d05", "big"] and first["big"] is corpus.split("big")


def _rewrite_offsets(folder, rel):
    """Part `rel` written again with a falling offset (a layout the fast reader reads), and its
    checksum recorded: only the offsets check can refuse it."""
    dt = np.dtype(np.uint16)
    write_part(folder / rel, np.arange(3, dtype=np.uint64), np.array([0, 5, 2, 9], np.int64), np.ones(9, dt))
    save_manifest(folder, load_manifest(folder))


FAULTS = {
    "damaged byte": lambda f: (f / "d07/train/part-00000.arrow").write_bytes(
        (lambda b: b[:200] + bytes([b[200] ^ 1]) + b[201:])((f / "d07/train/part-00000.arrow").read_bytes())),
    "missing": lambda f: (f / "d02/train/part-00000.arrow").unlink(),
    "truncated": lambda f: (f / "d09/train/part-00000.arrow").write_bytes(
        (f / "d09/train/part-00000.arrow").read_bytes()[:-16]),
    "falling offsets": lambda f: _rewrite_offsets(f, "d04/train/part-00000.arrow"),
    "counts": lambda f: (f / "corpus.json").write_text(json.dumps(_counts_off(f))),
}


def _counts_off(folder):
    """corpus.json with one domain's document count off by one, sealed again."""
    obj = json.loads((folder / "corpus.json").read_text())
    obj["domains"]["d01"]["splits"]["train"]["documents"] += 1
    return seal({k: v for k, v in obj.items() if k != "checksum"})


@pytest.mark.parametrize("fault", [*sorted(FAULTS), "counts + damaged byte", "missing + damaged byte",
                                   "damaged byte + falling offsets", "unknown domain first"])
def test_open_splits_names_each_fault_as_open_split_does(tmp_path, fresh_layouts, fault):
    """One fault, or two in different domains: the error `open_split` domain by domain meets
    first is the one `open_splits` raises."""
    folder = _corpus(tmp_path)
    for one in fault.split(" + "):
        if one != "unknown domain first":
            FAULTS[one](folder)
    manifest = load_manifest(folder)
    names = manifest.domain_names
    if fault == "unknown domain first":  # (and a damaged part after it)
        FAULTS["damaged byte"](folder)
        names = ["a-domain-not-there", *names]
    with pytest.raises(MixerError) as one:
        for d in names:
            open_split(folder, d, "train", manifest)
    arrow_ipc._LAYOUTS.clear()
    with pytest.raises(MixerError) as together:
        open_splits(folder, manifest, names, "train")
    assert str(together.value) == str(one.value)
    assert "\n" not in str(one.value)
    assert ("a-domain-not-there" if fault == "unknown domain first" else "re-run `mixer prepare`") in str(one.value)


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 7, 2**63 - 1, -2**63, 2**64 - 1, 2**64, -(2**70), rng.randrange(-10**6, 10**6)])
    if kind == 2:
        return rng.choice([0.05, 0.5, 123.456, 1e-05, 2.5e-07, 1e16, 1e22, -0.0, 1 / 3, 5e-324, math.nan, math.inf,
                           rng.random() * 10 ** rng.randint(-8, 20)])
    if kind in (3, 4, 5):
        alphabet = "abcXYZ019 _-./:" + rng.choice(["", "\"", "\\", "\n", "\x01", "\x7f", "é", "日", "😀"])
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))
    if kind in (6, 7):  # (keys: random strings, made unique)
        return {f"{_random_value(rng, 5) if kind == 6 else ''}{i}": _random_value(rng, depth + 1)
                for i in range(rng.randrange(0, 5))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]


def test_json_through_orjson_is_the_json_modules_byte_for_byte(tmp_path):
    """600 random documents (strings with quotes, backslashes, control characters, DEL and
    non-ASCII; ints beyond 64 bits; floats orjson spells otherwise, NaN, Infinity), written as
    JSON and read back: the canonical bytes, the seal verdict and the indented text are the json
    module's each time (its own calls, written out here), and orjson gives them for a good share."""
    rng, fast = random.Random(7), 0
    for i in range(600):
        obj = {str(k): _random_value(rng) for k in range(rng.randrange(1, 6))}
        if i % 4 == 1:
            obj["checksum"] = "0" * 16  # a wrong seal
        elif i % 4 == 3:
            obj = seal(obj)  # a right one
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps(obj, indent=rng.choice([None, 2])))
        read, plain = read_json_document(path, "test file", "fix")
        assert canonical_and_seal_ok(read, plain_floats=plain) == canonical_and_seal_ok(read) == (
            _json_canonical(read), _json_seal_ok(read)), obj
        assert canonical(read) == _json_canonical(read)
        assert dumps_sorted(read) == json.dumps(read, indent=2, sort_keys=True)
        fast += orjson_sorted(read, indent=False) is not None
        if plain:  # the reader's word on the floats holds: orjson, told so, gives the json module's bytes
            assert orjson_sorted(read, indent=False, floats_alike=True) in (None, _json_canonical(read))
    assert 100 < fast < 550, fast


def _json_canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _json_seal_ok(obj) -> bool:
    body = {k: v for k, v in obj.items() if k != "checksum"}
    return obj.get("checksum") == xxhash.xxh3_64_hexdigest(_json_canonical(body))
