"""Shared fixtures."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: a second thread costs more in synchronisation than it gains (and thrashes on a
    loaded machine). Restored afterwards so other test modules keep torch's default."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def browser():
    """`support.load_in_browser` with Debian's chromium. Skipped where chromium is not
    installed, except under MIXER_REQUIRE_BROWSER=1 (set by .ci/run), where that is a failure."""
    import os

    from support import chromium_path, load_in_browser

    if chromium_path() is None:
        if os.environ.get("MIXER_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed and MIXER_REQUIRE_BROWSER=1 (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return load_in_browser


@pytest.fixture
def fresh_layouts(monkeypatch, tmp_path):
    """No Arrow layout learned, in this process or in the cache of earlier ones
    (`mixer.formats.arrow.layout_cache`): the cache is a folder of the test's own."""
    from mixer.formats.arrow import ipc

    monkeypatch.setattr(ipc, "_LAYOUTS", {})
    monkeypatch.setattr(ipc, "_TRIES", {})
    monkeypatch.setattr(ipc, "_LOOKED_UP", set())
    monkeypatch.setattr(ipc, "_FROM_CACHE", set())
    monkeypatch.setenv("MIXER_CACHE", str(tmp_path / "layout-cache"))
