"""numba's cache of a kernel must not outlive a change to a kernel it calls in another file.

numba stamps a cached function with its own file's hash, but the code it keeps has its callees
compiled in: `blend.blend_items` kept the old `blend_lanes.wide_pass` after that file alone
changed (seen in this repository: the old pass ran until the cache was deleted). `mixer.kernels._jit`
stamps every kernel's cache with all kernel sources."""
import shutil
import subprocess
import sys
from pathlib import Path

import mixer
from mixer.kernels import _jit
from mixer.kernels import sources_digest

RUN = """
import hashlib, numpy as np
from mixer.kernels.blend import blend_items
from mixer.kernels.targets import largest_remainder
w = np.random.default_rng(7).dirichlet(np.ones(7))
n = 33_333
d, p = np.empty(n, np.int32), np.empty(n, np.int64)
blend_items(w, largest_remainder(w, n), d, p)
print(int(d.max()), hashlib.sha256(d.tobytes() + p.tobytes()).hexdigest())
"""


def test_every_kernel_cache_is_stamped_with_all_kernel_sources():
    from mixer.kernels.blend import blend_items

    assert _jit.INSTALLED
    blend_items.py_func  # (a dispatcher)
    locator = blend_items._cache._impl.locator
    assert isinstance(locator, _jit._Stamped) and locator.get_source_stamp()[1] == sources_digest()


def test_a_callee_changed_in_another_file_is_compiled_in_again(tmp_path):
    """A copy of the package: run blend_items (its cache filled), change only blend_lanes.py so
    the 32-lane pass writes every domain id plus 100, run again: the new pass runs."""
    pkg = tmp_path / "mixer"
    shutil.copytree(Path(mixer.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.nbi", "*.nbc"))

    def run() -> list[str]:
        out = subprocess.run([sys.executable, "-c", RUN], cwd=tmp_path, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()

    first = run()
    assert first[0] == "6" and run() == first  # (the second run reads the cache)
    lanes = pkg / "kernels" / "blend_lanes.py"
    source = lanes.read_text()
    old = "out_dom[np.uint64(at + u)] = staged[0][q, u]"
    assert old in source
    lanes.write_text(source.replace(old, "out_dom[np.uint64(at + u)] = staged[0][q, u] + 100"))
    changed = run()
    assert changed[0] == "106" and changed[1] != first[1]
