"""Corpus parts read straight from their bytes (`mixer.formats.arrow.ipc`) give exactly what
pyarrow gives, and any file not laid out as the model part goes to pyarrow."""
import numpy as np
import pyarrow as pa
import pytest

from mixer.core.errors import MixerError
from mixer.formats.arrow import ipc as arrow_ipc
from mixer.formats.arrow.pyarrow_views import pyarrow_views as _pyarrow_views
from mixer.formats.corpus import open_part, write_part


def _part(path, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(rng.integers(0, 40, n))]).astype(np.int64)
    write_part(path, rng.integers(0, 2**63, n).astype(np.uint64), offsets,
               rng.integers(0, 60000, offsets[-1]).astype(dtype))
    return path


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_parts_read_from_their_bytes_equal_pyarrow(tmp_path, dtype, fresh_layouts):
    dt = np.dtype(dtype)
    model = open_part(_part(tmp_path / "model.arrow", 3, dt), dt)  # pyarrow, then the model
    assert dt in arrow_ipc._LAYOUTS and len(model.doc_ids) == 3
    for n in (1, 2, 7, 100, 5000):
        data = pa.py_buffer(_part(tmp_path / f"p{n}.arrow", n, dt, seed=n).read_bytes())
        fast = arrow_ipc.read_part(data, dt)
        assert fast is not None, n
        for a, b in zip(fast, _pyarrow_views(tmp_path, data, dt, "fix")):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    other = np.dtype(np.uint32 if dt == np.uint16 else np.uint16)
    assert arrow_ipc.read_part(data, other) is None  # no model of that dtype (and another schema)
    empty = tmp_path / "empty.arrow"
    write_part(empty, np.zeros(0, np.uint64), np.zeros(1, np.int64), np.zeros(0, dt))
    assert arrow_ipc.read_part(pa.py_buffer(empty.read_bytes()), dt) is None  # another layout: pyarrow reads it
    assert len(open_part(empty, dt).doc_ids) == 0


def test_a_damaged_byte_is_refused_or_read_as_pyarrow_reads_it(tmp_path, fresh_layouts):
    """Every single-byte change of a small part: the bytes reader refuses it, or reads what
    pyarrow reads, or open_part's own offset check refuses it; never other tokens."""
    dt = np.dtype(np.uint16)
    open_part(_part(tmp_path / "model.arrow", 3, dt), dt)
    raw = _part(tmp_path / "p.arrow", 5, dt, seed=5).read_bytes()
    fast_reads = 0
    for i in range(len(raw)):
        data = pa.py_buffer(raw[:i] + bytes([raw[i] ^ 0x5A]) + raw[i + 1:])
        fast = arrow_ipc.read_part(data, dt)
        if fast is None:
            continue
        fast_reads += 1
        try:
            slow = _pyarrow_views(tmp_path, data, dt, "fix")
        except (pa.ArrowException, MixerError):
            _, offsets, values = fast  # refused by pyarrow: open_part's offset check refuses it too
            assert offsets[0] < 0 or offsets[-1] > len(values) or (offsets[1:] < offsets[:-1]).any(), i
            continue
        assert all(np.array_equal(a, b) for a, b in zip(fast, slow)), i
    assert fast_reads > len(raw) // 2  # token values, ids, the unread schema message: still read fast


def test_parts_read_or_mapped_are_read_only(tmp_path):
    """Small parts (read whole) and large ones (memory-mapped) hand out views that refuse writes:
    a write into the corpus is a ValueError, never a change to the file or a crash."""
    from mixer.formats.corpus import SMALL_PART

    for n in (3, 20_000):
        path = _part(tmp_path / f"p{n}.arrow", n, np.uint16, seed=n)
        assert (path.stat().st_size > SMALL_PART) == (n > 3)
        part = open_part(path, np.uint16)
        for a in (part.doc_ids, part.offsets, part.values):
            assert not a.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                a[0] = a[0]
