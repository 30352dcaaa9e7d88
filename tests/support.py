"""Test-only fixtures with known answers (not installed: the wheel holds `mixer` alone).

- `ToyStream`: a toy mixture stream for the trainers. Not the mixer's sampler (that is
  `mixer.stream.sampler` / `mixer.stream.stream`, with exact per-domain budgets and no repeats)
  but the same interface, so the trainers are tested without it: an IterableDataset yielding
  {"input_ids", "domain_ids"[, "attention_mask"]} int64 [seq_len] tensors, with `state_dict()` /
  `load_state_dict()` at the exact next sequence.
- synthetic run.json files (`ddo_sweep`, `mixing_law_runs`, `write_runs`): in `ddo_sweep` the
  aggregate loss follows the additive model of §2.2 exactly,
  `L / L_base = C + sum_j (n0_j + x_j)^(-b_j)` with x_j = tokens_j / (N/m) and C chosen so the
  base run is 1; so with `keep_total=False` (Algorithm 1) each domain's points lie on
  `(n0_j + x)^(-b_j) + c_j` and the DDO optimum is `solve_ddo(n0, b, m)`.
- the browser harness (`chromium_path`, `load_in_browser`) for the HTML report's tests.
- `corrupt_copy`: a copy of a folder of files with one byte of one file flipped.

Synthetic corpora, which benchmarks and examples use too, are `mixer.formats.synthetic`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from mixer.core.atomic import write_json_atomic
from mixer.formats.corpus import load_manifest, mlm_special_ids, open_split
from mixer.solver.ddo import plan


class ToyStream(torch.utils.data.IterableDataset):
    """Sequence k comes from a domain drawn with probability `weights` (seeded by (seed, k)).
    Causal: the domain's train documents joined with EOS, read cyclically `seq_len` at a time.
    MLM (`mlm=True`): one document per sequence, [CLS] doc [SEP] + padding."""

    def __init__(self, corpus_dir: str | Path, weights: Mapping[str, float], seq_len: int, seed: int = 0,
                 mlm: bool = False, limit: int | None = None) -> None:
        manifest = load_manifest(corpus_dir)
        self.domains = manifest.domain_names
        self.p = np.array([weights.get(d, 0.0) for d in self.domains], dtype=np.float64)
        self.p /= self.p.sum()
        self.seq_len, self.seed, self.mlm, self.limit = seq_len, seed, mlm, limit
        self.special = mlm_special_ids(manifest) if mlm else None
        self.docs, self.flat = [], []
        for d in self.domains:
            split = open_split(corpus_dir, d, "train", manifest)
            docs = [split.document(k).astype(np.int64) for k in range(split.num_documents)]
            self.docs.append(docs)
            self.flat.append(np.concatenate([np.append(doc, manifest.eos_id) for doc in docs]) if docs else None)
        self.index = 0  # the next sequence
        self.cursor = [0] * len(self.domains)  # per domain: token offset (causal) or document (MLM)

    def state_dict(self) -> dict:
        return {"index": self.index, "cursor": list(self.cursor)}

    def load_state_dict(self, state: dict) -> None:
        self.index, self.cursor = int(state["index"]), list(state["cursor"])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while self.limit is None or self.index < self.limit:
            d = int(np.random.default_rng([self.seed, self.index]).choice(len(self.domains), p=self.p))
            self.index += 1
            yield self._mlm(d) if self.mlm else self._causal(d)

    def _causal(self, d: int) -> dict[str, torch.Tensor]:
        flat, L = self.flat[d], self.seq_len
        take = np.take(flat, np.arange(self.cursor[d], self.cursor[d] + L), mode="wrap")
        self.cursor[d] = (self.cursor[d] + L) % len(flat)
        return {"input_ids": torch.from_numpy(take), "domain_ids": torch.full((L,), d, dtype=torch.int64)}

    def _mlm(self, d: int) -> dict[str, torch.Tensor]:
        sp, L = self.special, self.seq_len
        doc = self.docs[d][self.cursor[d] % len(self.docs[d])][: L - 2]
        self.cursor[d] += 1
        ids = np.concatenate([[sp.cls], doc, [sp.sep], np.full(L - 2 - len(doc), sp.pad)]).astype(np.int64)
        ids = torch.from_numpy(ids)
        return {"input_ids": ids, "domain_ids": torch.full((L,), d, dtype=torch.int64),
                "attention_mask": (ids != sp.pad).long()}


# --- synthetic run.json files ------------------------------------------------------------------------

CORPUS = "c0ffee" * 10 + "abcd"


def run_json(weights: dict, budget: int, losses: dict, provenance: dict, seed: int = 0,
             corpus: str = CORPUS, history: dict | None = None) -> dict:
    tokens = {d: max(1, int(round(w * budget))) for d, w in weights.items()}
    obj = {"format_version": 1, "corpus_sha256": corpus, "budget_tokens": int(budget), "weights": weights,
           "tokens_per_domain": tokens, "final_loss": losses, "model": "synthetic", "preset": "test", "seed": seed,
           "provenance": provenance, "wall_time_s": 0.0}
    if history is not None:
        obj["loss_history"] = history
    return obj


def ddo_sweep(domains: Sequence[str], n0, b, *, budget: int = 1_000_000, factors=(0.2, 3.0),
              keep_total: bool = False, base_loss: float = 3.0, noise: float = 0.0, seeds=(0,),
              rng_seed: int = 0) -> dict[str, dict]:
    """`{name: run.json object}` for a DDO sweep; `noise` is the relative std of each loss."""
    m = len(domains)
    n0, b = np.asarray(n0, float), np.asarray(b, float)
    rng = np.random.default_rng(rng_seed)
    planned = plan(domains, budget, factors=factors, keep_total=keep_total)
    unit = budget / m

    def y_of(tokens):
        x = np.array([tokens[d] for d in domains]) / unit
        return float(np.sum((n0 + x) ** (-b)))

    base_tokens = {d: max(1, int(round(w * budget))) for d, w in planned[0].weights.items()}
    const = 1.0 - y_of(base_tokens)
    out = {}
    for pr in planned:
        tokens = {d: max(1, int(round(w * pr.budget_tokens))) for d, w in pr.weights.items()}
        y = const + y_of(tokens)
        for s in seeds:
            loss = base_loss * y * (1 + noise * rng.standard_normal()) if noise else base_loss * y
            name = pr.name if len(seeds) == 1 else f"{pr.name}-s{s}"
            out[name] = run_json(pr.weights, pr.budget_tokens, {d: loss for d in domains}, pr.provenance, seed=s)
    return out


def write_runs(folder: str | Path, runs: dict[str, dict]) -> list[Path]:
    folder = Path(folder)
    paths = []
    for name, obj in runs.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        path = folder / name / "run.json"
        write_json_atomic(path, obj)
        paths.append(path)
    return paths


def mixing_law_runs(c, k, T, n_runs: int, *, budget: int = 1_000_000, noise: float = 0.0, seed: int = 0,
                    domains: Sequence[str] | None = None) -> dict[str, dict]:
    """Random-mixture runs whose per-domain losses follow L_i(r) = c_i + k_i exp(T_i . r)."""
    c, k, T = np.asarray(c, float), np.asarray(k, float), np.asarray(T, float)
    m = T.shape[1]
    domains = list(domains or [f"d{i}" for i in range(m)])
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_runs):
        r = rng.dirichlet(np.ones(m))
        tokens = np.maximum(1, np.round(r * budget))
        r = tokens / tokens.sum()
        L = c + k * np.exp(T @ r)
        L = L * (1 + noise * rng.standard_normal(L.shape)) if noise else L
        w = {d: float(x) for d, x in zip(domains, r)}
        out[f"mix{i:03d}"] = run_json(w, budget, {d: float(v) for d, v in zip(domains, L)},
                                      {"role": "random", "domain": None, "factor": None, "total": None})
    return out


# --- a real headless browser for the HTML reports -------------------------------------------------

_PROBE = """<script>
window.__probe = {errors: []};
(function () {
  const keep = (kind) => (...args) => window.__probe.errors.push(kind + ": " + args.map(String).join(" "));
  console.error = keep("console.error");
  console.warn = keep("console.warn");
  window.addEventListener("error", (e) => window.__probe.errors.push(
    "error event: " + (e.message || (e.target && (e.target.src || e.target.href)) || "resource")), true);
  window.addEventListener("load", () => setTimeout(() => {
    const imgs = Array.from(document.images);
    const out = document.createElement("pre");
    out.id = "__probe_result";
    out.textContent = JSON.stringify({
      errors: window.__probe.errors,
      images: imgs.map((i) => ({alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,
                                naturalHeight: i.naturalHeight})),
      fetched: performance.getEntriesByType("resource").map((r) => r.name),
      title: document.title,
      text: document.body.innerText,
    });
    document.body.appendChild(out);
  }, 0));
})();
</script>"""


def chromium_path() -> str | None:
    """Debian's chromium (`apt-get install chromium`), or None where it is not installed."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def load_in_browser(page: str | Path, timeout: float = 120.0) -> dict:
    """Open an HTML file in headless chromium with a probe injected first in <head> and return
    what the probe saw once the page had loaded: {"errors": console errors and warnings and
    failed loads, "images": [{alt, complete, naturalWidth, naturalHeight}], "fetched": every
    resource the page requested (data: URLs are not requests), "title", "text"}."""
    import json
    import re
    import subprocess
    import tempfile

    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    text = Path(page).read_text(encoding="utf-8")
    head = re.search(r"<head[^>]*>", text)
    if head is None:
        raise ValueError(f"{page}: no <head>")
    with tempfile.TemporaryDirectory(prefix="mixer-browser-") as tmp:
        probed = Path(tmp) / "page.html"
        probed.write_text(text[:head.end()] + _PROBE + text[head.end():], encoding="utf-8")
        proc = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               f"--user-data-dir={tmp}/profile", "--virtual-time-budget=10000", "--dump-dom",
                               probed.as_uri()], capture_output=True, text=True, timeout=timeout)
    found = re.search(r'<pre id="__probe_result">(.*?)</pre>', proc.stdout, re.S)
    if found is None:
        raise RuntimeError(f"chromium exited {proc.returncode} without the probe's result: {proc.stderr[-2000:]}")
    import html as _html

    return json.loads(_html.unescape(found.group(1)))


def corrupt_copy(src: str | Path, dst: str | Path, victim: str, *, offset: int | None = None, xor: int = 0x40) -> Path:
    """The files of folder `src` copied into a new folder `dst`, one byte of file `victim` xor-ed
    with `xor`: at `offset` (negative: from the end), or in the middle when None."""
    dst = Path(dst)
    dst.mkdir()
    for f in Path(src).iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    data = bytearray((dst / victim).read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= xor
    (dst / victim).write_bytes(bytes(data))
    return dst
