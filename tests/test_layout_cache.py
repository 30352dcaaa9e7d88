"""The parts' model layout kept between processes (`mixer.formats.arrow.layout_cache`): a process
with the layout cached reads a corpus without importing pyarrow and gets exactly the arrays a
process that learned the layout gets; a damaged or foreign cache file is ignored and rewritten."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mixer.formats.synthetic import write_synthetic_corpus

READ = """
import hashlib, sys
from mixer.formats.corpus_handle import Corpus
c = Corpus.open(sys.argv[1])
h = hashlib.sha256()
for d in c.domain_names:
    for split in ("train", "heldout"):
        for p in c.splits([d], split)[d].parts:
            for a in (p.doc_ids, p.offsets, p.values):
                h.update(str(a.dtype).encode()); h.update(a.tobytes())
print(h.hexdigest(), "pyarrow" in sys.modules)
"""


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(4)
    lengths = {f"d{k}": rng.integers(1, 3000, 40 + 30 * k) for k in range(3)}  # small parts and a mapped one
    lengths["big"] = rng.integers(2000, 4000, 60)
    write_synthetic_corpus(tmp_path / "corpus", lengths, heldout_lengths={d: [5, 9] for d in lengths})
    return tmp_path / "corpus"


def _read(corpus, cache):
    out = subprocess.run([sys.executable, "-c", READ, str(corpus)], capture_output=True, text=True, check=True,
                         env={**os.environ, "MIXER_CACHE": str(cache)})
    digest, imported = out.stdout.split()
    return digest, imported == "True"


def _cached(cache):
    return sorted((cache / "arrow-layouts").glob("*.json"))


def test_a_cached_layout_reads_the_same_arrays_without_pyarrow(tmp_path, corpus):
    cache = tmp_path / "cache"
    learned, imported = _read(corpus, cache)
    assert imported  # the first process learns the layout through pyarrow
    (kept,) = _cached(cache)
    assert kept.name.startswith("uint16-")
    again, imported = _read(corpus, cache)
    assert (again, imported) == (learned, False)


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "another seal", "not json", "a folder"])
def test_a_damaged_cache_file_is_ignored_and_rewritten(tmp_path, corpus, damage):
    cache = tmp_path / "cache"
    learned, _ = _read(corpus, cache)
    (kept,) = _cached(cache)
    good = kept.read_bytes()
    if damage == "flipped byte":
        text = good.decode()
        at = text.index('"footer_head": "') + len('"footer_head": "') + 4
        kept.write_text(text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:])
    elif damage == "truncated":
        kept.write_bytes(good[:len(good) // 2])
    elif damage == "another seal":
        obj = json.loads(good)
        obj["layout"]["meta"] += 8
        kept.write_text(json.dumps(obj))  # the old seal: no longer its content's
    elif damage == "not json":
        kept.write_bytes(b"\x00\xff garbage")
    else:
        kept.unlink()
        kept.mkdir()
    digest, imported = _read(corpus, cache)
    assert (digest, imported) == (learned, True)  # learned again, through pyarrow
    if damage != "a folder":
        assert kept.read_bytes() == good  # and written again, whole
        assert _read(corpus, cache) == (learned, False)
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]  # (no temporary left beside it)


def test_no_cache_folder_to_write_is_no_error(tmp_path, corpus):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    learned, _ = _read(corpus, tmp_path / "cache")
    assert _read(corpus, blocker) == (learned, True)  # ($MIXER_CACHE a file: nothing cached, all read)
    assert blocker.read_text() == "not a folder"


def test_a_cached_layout_that_fits_no_part_gives_way_to_the_parts_own(tmp_path, corpus):
    """The cache decides only how a part whose checksum already passed is parsed. A sealed
    layout that fits none of them (parts written by another pyarrow, say; here another footer)
    sends the first part to pyarrow, whose layout then replaces it, in the process and in the
    cache: the same arrays, and the next process needs no pyarrow."""
    from mixer.formats.arrow.layout_cache import _seal

    cache = tmp_path / "cache"
    learned, _ = _read(corpus, cache)
    (kept,) = _cached(cache)
    obj = json.loads(kept.read_bytes())
    body = {k: v for k, v in obj.items() if k != "checksum"}
    head = bytes.fromhex(body["layout"]["footer_head"])
    body["layout"]["footer_head"] = bytes([head[0] ^ 0xFF]).hex() + head[1:].hex()
    good = kept.read_bytes()
    kept.write_text(json.dumps({**body, "checksum": _seal(body)}))
    assert _read(corpus, cache) == (learned, True)
    assert kept.read_bytes() == good
    assert _read(corpus, cache) == (learned, False)


def test_build_shards_imports_no_pyarrow_once_the_layout_is_cached(tmp_path, corpus):
    """The whole command, as users run it: the first build learns the layout (pyarrow), the
    second imports no pyarrow at all, and writes the same shards."""
    cache = tmp_path / "cache"
    code = ("import atexit, sys; atexit.register(lambda: print('PYARROW', 'pyarrow' in sys.modules)); "
            "from mixer.cli import main; main()")
    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"weights": {"d0": 0.2, "d1": 0.3, "d2": 0.1, "big": 0.4}}))
    seen, indexes = [], []
    for k in range(2):
        out = tmp_path / f"shards{k}"
        run = subprocess.run([sys.executable, "-c", code, "build-shards", "--corpus", str(corpus), "--weights",
                              str(weights), "--tokens", "40960", "--seq-len", "128", "--out", str(out), "--quiet"],
                             capture_output=True, text=True, env={**os.environ, "MIXER_CACHE": str(cache)})
        assert run.returncode == 0, run.stderr
        seen.append(run.stdout.split()[-1])
        indexes.append(json.loads((out / "index.json").read_text())["shards"])
    assert seen == ["True", "False"]
    assert indexes[0] == indexes[1]  # (the shards' checksums: the same bytes)


def test_the_stored_fields_give_the_layout_back_and_odd_ones_none(tmp_path, fresh_layouts):
    from mixer.formats.arrow import ipc
    from mixer.formats.corpus import open_part, write_part

    write_part(tmp_path / "p.arrow", np.arange(3, dtype=np.uint64), np.array([0, 2, 5, 9]), np.arange(9, dtype=np.uint16))
    open_part(tmp_path / "p.arrow", np.uint16)
    layout = ipc._LAYOUTS[np.dtype(np.uint16)]
    fields = json.loads(json.dumps(ipc._fields(layout)))  # (through JSON, as stored)
    assert ipc._from_fields(fields) == layout
    odd = [
        {k: v for k, v in fields.items() if k != "meta"},
        {**fields, "rows_at": -8},
        {**fields, "rows_at": True},
        {**fields, "footer_head": "zz"},
        {**fields, "fixed": [[0, ""]]},
        {**fields, "fixed": [[fields["meta"], "00"]]},
        {**fields, "fixed": "0000"},
    ]
    assert [ipc._from_fields(f) for f in odd] == [None] * len(odd)


def test_no_home_and_no_mixer_cache_means_no_cache(monkeypatch):
    """A user the system does not know has no home directory (`Path.home()` raises): with no
    $MIXER_CACHE either, nothing is cached and nothing fails."""
    from pathlib import Path

    from mixer.formats.arrow import layout_cache

    def nowhere():
        raise RuntimeError("Could not determine home directory.")
    monkeypatch.delenv("MIXER_CACHE", raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(nowhere))
    assert layout_cache.layout_path("uint16", "abc") is None
    assert layout_cache.load_layout("uint16", "abc") is None
    layout_cache.store_layout("uint16", "abc", {"meta": 8})  # (no error)
