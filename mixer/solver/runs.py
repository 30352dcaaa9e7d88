"""Runs as the solver sees them: run.json files (read by `mixer.formats.run`, their one reader)
turned into the points the solver fits.

The aggregate of a run is the mean over domains of its held-out metric: perplexity
(`exp(final_loss)`, the paper's choice: "perplexity is adopted as the loss metric") or the
cross-entropy `final_loss` itself (`metric="loss"`). `METRICS` names them. On top of the format's own
checks the solver needs a positive budget and positive tokens for every domain (a domain with
no tokens has no point on its curve). Every problem is one `MixerError` line naming the file
and the fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from mixer.core.errors import MixerError, listed
from mixer.formats.run import load_run

ROLES = ("base", "perturbed")
METRICS = ("perplexity", "loss")


@dataclass(frozen=True)
class Run:
    path: str
    corpus_sha256: str
    budget_tokens: int
    weights: dict[str, float]
    tokens_per_domain: dict[str, int]
    final_loss: dict[str, float]
    model: str = ""
    preset: str = ""
    seed: int = 0
    role: str | None = None
    domain: str | None = None
    factor: float | None = None
    total: str | None = None
    loss_history: dict[str, list[float]] | None = field(default=None, repr=False)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted(self.final_loss))

    @property
    def aggregate_loss(self) -> float:
        return math.fsum(self.final_loss.values()) / len(self.final_loss)

    def aggregate(self, metric: str = "loss", domains: Sequence[str] | None = None) -> float:
        """Mean over `domains` (None: all) of the held-out `metric` ("loss" or "perplexity")."""
        values = self.metric(metric)
        names = list(values) if domains is None else list(domains)
        return math.fsum(values[d] for d in names) / len(names)

    def metric(self, metric: str = "loss") -> dict[str, float]:
        """Per-domain held-out `metric`: cross-entropy, or perplexity = exp(cross-entropy)."""
        if metric == "loss":
            return dict(self.final_loss)
        if metric == "perplexity":
            return {d: math.exp(min(v, 700.0)) for d, v in self.final_loss.items()}
        raise ValueError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")


def read_run(path: str | Path) -> Run:
    """One run.json through the format's reader, plus the solver's own requirements."""
    rec = load_run(path)
    path = Path(path)
    if rec.budget_tokens <= 0:
        raise MixerError(f"{path}: budget_tokens is {rec.budget_tokens}; it must be positive")
    for name in rec.final_loss:
        n = rec.tokens_per_domain.get(name)
        if n is None:
            raise MixerError(f"{path}: tokens_per_domain has no entry for domain {name!r}")
        if not n > 0:
            raise MixerError(f"{path}: tokens_per_domain of domain {name!r} is {n!r}; it must be positive")
    prov = rec.provenance
    factor = prov.get("factor")
    return Run(path=str(path), corpus_sha256=rec.corpus_sha256, budget_tokens=rec.budget_tokens,
               weights={str(k): float(v) for k, v in rec.weights.items()},
               tokens_per_domain={str(k): int(rec.tokens_per_domain[k]) for k in rec.final_loss},
               final_loss={str(k): float(v) for k, v in rec.final_loss.items()},
               model=rec.model, preset=rec.preset, seed=rec.seed,
               role=prov.get("role"), domain=prov.get("domain"),
               factor=float(factor) if factor is not None else None, total=prov.get("total"),
               loss_history=rec.loss_history or None)


def expand_paths(paths: Iterable[str | Path], name: str = "run.json") -> list[Path]:
    """Files as given; folders searched recursively for `name`."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob(name))
            if not found:
                raise MixerError(f"{p}: no {name} under this folder; pass the run files or their folder")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise MixerError(f"no {name} files given; pass run files or folders holding them")
    return out


def read_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Read every run; all must come from one corpus and cover the same domains."""
    runs = [read_run(p) for p in expand_paths(paths)]
    first = runs[0]
    for run in runs[1:]:
        if run.corpus_sha256 != first.corpus_sha256:
            raise MixerError(f"{run.path}: corpus {run.corpus_sha256[:12]} differs from {first.path} "
                             f"({first.corpus_sha256[:12]}); solve runs of one corpus together")
        if set(run.final_loss) != set(first.final_loss):
            odd = sorted(set(run.final_loss) ^ set(first.final_loss))[0]
            raise MixerError(f"{run.path}: domain {odd!r} is in one of {run.path}, {first.path} but not the other; "
                             "all runs must report the same domains")
    return runs


@dataclass(frozen=True)
class DDOData:
    """Runs grouped for DDO: the base run(s) and each domain's perturbed runs."""
    domains: tuple[str, ...]
    base: tuple[Run, ...]
    perturbed: dict[str, tuple[Run, ...]]
    budget_tokens: int
    factors: tuple[float, ...]
    metric: str = "loss"  # what y is: "loss" (cross-entropy) or "perplexity", averaged over domains
    eval_domains: tuple[str, ...] | None = None  # the held-out domains y averages (None: all of them)
    seed_offsets: Mapping[int, float] | None = None  # per seed, metric units, taken off each run (`block_seeds`)
    seed_dof: int = 0  # offsets estimated from these runs: degrees of freedom the noise estimate loses

    def y(self, run: Run) -> float:
        """The aggregate the fits see: mean `metric` over the evaluation domains, less its seed's offset."""
        value = run.aggregate(self.metric, self.eval_domains)
        return value - self.seed_offsets.get(run.seed, 0.0) if self.seed_offsets else value

    @property
    def base_loss(self) -> float:
        return float(np.mean([self.y(r) for r in self.base]))

    def runs(self) -> tuple[Run, ...]:
        """Base run(s) first, then each domain's perturbed runs in domain order."""
        return self.base + tuple(r for d in self.domains for r in self.perturbed[d])

    def mixtures(self) -> list[list[Run]]:
        """The runs grouped by planned mixture (role, domain, factor): a group's runs differ only
        in their seeds."""
        out: dict[tuple, list[Run]] = {}
        for r in self.runs():
            out.setdefault((r.role, r.domain, r.factor), []).append(r)
        return list(out.values())

    def points(self, units: str = "authors") -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per domain `(x, y)`: that domain's tokens and the aggregate loss, base run first.

        authors: x = tokens / (N/m), y = metric / base metric;  raw: tokens and metric as they are.
        """
        unit_x, unit_y = self.units(units)
        out = {}
        for d in self.domains:
            runs = self.base + self.perturbed[d]
            out[d] = (np.array([r.tokens_per_domain[d] for r in runs], float) / unit_x,
                      np.array([self.y(r) for r in runs]) / unit_y)
        return out

    def units(self, units: str) -> tuple[float, float]:
        if units == "authors":
            return self.budget_tokens / len(self.domains), self.base_loss
        if units == "raw":
            return 1.0, 1.0
        raise ValueError(f"units {units!r}: expected 'authors' or 'raw'")


def group_ddo(runs: list[Run], metric: str = "loss", eval_domains: Sequence[str] | None = None,
              seed_blocks: bool = True) -> DDOData:
    """Check that the runs form a DDO sweep (one budget, every domain perturbed by every factor).
    Several runs of one (domain, factor), or several base runs, are seed repeats. `eval_domains`:
    the held-out domains whose mean metric is optimised (None: every domain). `seed_blocks`: each
    seed's offset shared by all its runs is taken off (`block_seeds`)."""
    if metric not in METRICS:
        raise MixerError(f"--metric {metric!r}: choose one of {', '.join(METRICS)}")
    base = tuple(r for r in runs if r.role == "base")
    if not base:
        raise MixerError(f"{runs[0].path}: no run has provenance role 'base'; DDO needs the base run's run.json")
    budget = base[0].budget_tokens
    for r in base[1:]:
        if r.budget_tokens != budget:
            raise MixerError(f"{r.path}: budget {r.budget_tokens} differs from base run {base[0].path} ({budget}); "
                             "solve one scale at a time")
    domains = base[0].domains
    perturbed: dict[str, list[Run]] = {d: [] for d in domains}
    for r in runs:
        if r.role == "base":
            continue
        if r.role != "perturbed":
            raise MixerError(f"{r.path}: provenance role {r.role!r}; DDO reads 'base' and 'perturbed' runs only")
        if r.domain not in perturbed:
            raise MixerError(f"{r.path}: perturbed domain {r.domain!r} is not a domain of the base run")
        if r.factor is None or not r.factor > 0:
            raise MixerError(f"{r.path}: provenance factor {r.factor!r}; expected a positive number")
        if r.total == "grown":
            # From the planned mixture, not the realised tokens: a trainer that stops at whole
            # batches realises a little less, which at small budgets is more than the tolerance.
            implied = r.budget_tokens * (1 - r.weights.get(r.domain, 0.0) * (1 - 1 / r.factor))
            if abs(implied - budget) > 0.01 * budget:
                raise MixerError(f"{r.path}: grown run implies a base budget of {implied:.0f}, not {budget}; "
                                 "runs of different budgets are mixed")
        elif r.budget_tokens != budget:
            raise MixerError(f"{r.path}: budget {r.budget_tokens} differs from the base run's {budget}; "
                             "runs of different budgets are mixed (or set provenance total 'grown')")
        perturbed[r.domain].append(r)
    factors = sorted({r.factor for rs in perturbed.values() for r in rs})
    if not factors:
        raise MixerError(f"{base[0].path}: no perturbed runs given; DDO needs each domain's perturbed run.json files")
    for d, rs in perturbed.items():
        have = {r.factor for r in rs}
        for f in factors:
            if f not in have:
                raise MixerError(f"{base[0].path}: domain {d!r} has no perturbed run with factor {f:g} (others do); "
                                 f"train it or drop the factor-{f:g} runs")
    if eval_domains is not None:
        eval_domains = tuple(dict.fromkeys(eval_domains))
        unknown = [d for d in eval_domains if d not in domains]
        if unknown or not eval_domains:
            raise MixerError(f"--eval-domains: {unknown[0]!r} is not a domain of the runs ({listed(domains)})"
                             if unknown else "--eval-domains: name at least one domain")
    data = DDOData(domains=domains, base=base, perturbed={d: tuple(rs) for d, rs in perturbed.items()},
                   budget_tokens=budget, factors=tuple(factors), metric=metric, eval_domains=eval_domains)
    return block_seeds(data) if seed_blocks else data


def block_seeds(data: DDOData) -> DDOData:
    """Seeds as blocks: `data` with each seed's shared offset taken off its runs.

    The loop trains every planned mixture with the same seeds (model initialisation and data
    order), so a seed that lands lower does so in every run it trains: on the CPU controls
    (`bench.controls`) seed 1 was lower than seed 0 in 19 of 19 mixtures, by 6 % of the
    perplexity on average (sd 4 % over the mixtures). Left in, that shared part is counted as
    run-to-run noise: it inflates the noise, and with it every interval, although it moves every
    mixture alike and cancels in the comparisons that decide the weights.
    The classic remedy for common random numbers is a two-way additive model, y = mixture +
    seed, fitted by least squares over the groups run with two or more seeds; each seed's
    offset (centred on the runs' mean, so the base level is kept) is taken off, and the noise
    loses one degree of freedom per offset (`seed_dof`). Additive in the metric: a seed that
    shifts the loss by a fixed amount scales the perplexity by a fixed factor, but across the few
    percent one sweep spans the two differ by a fraction of the noise. Returned unchanged when
    there is nothing to estimate: fewer than two seeds repeated, seeds not linked through shared
    mixtures, or too few runs left to measure the noise."""
    repeated = [g for g in data.mixtures() if len({r.seed for r in g}) >= 2]
    seeds = sorted({r.seed for g in repeated for r in g})
    if len(seeds) < 2 or sum(len(g) - 1 for g in repeated) - (len(seeds) - 1) < 1:
        return data
    runs = [r for g in repeated for r in g]
    X = np.zeros((len(runs), len(repeated) + len(seeds) - 1))
    row = 0
    for k, g in enumerate(repeated):
        for r in g:
            X[row, k] = 1.0
            if r.seed != seeds[0]:
                X[row, len(repeated) + seeds.index(r.seed) - 1] = 1.0
            row += 1
    if np.linalg.matrix_rank(X) < X.shape[1]:
        return data
    y = np.array([r.aggregate(data.metric, data.eval_domains) for r in runs])
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    offset = dict(zip(seeds, np.concatenate([[0.0], coef[len(repeated):]]).tolist()))
    centre = float(np.mean([offset.get(r.seed, 0.0) for r in data.runs()]))
    return replace(data, seed_offsets={s: v - centre for s, v in offset.items()}, seed_dof=len(seeds) - 1)


def mixture_table(runs: list[Run]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """`(domains, W (runs x domains) realised token shares, L (runs x domains) held-out losses)`."""
    domains = runs[0].domains
    tokens = np.array([[r.tokens_per_domain[d] for d in domains] for r in runs], float)
    W = tokens / tokens.sum(axis=1, keepdims=True)
    L = np.array([[r.final_loss[d] for d in domains] for r in runs])
    return domains, W, L
