"""`OUT/report.html`: one self-contained page per loop run, for the person who has to decide
whether to use the weights.

    ddo_report(result, out / "report.html", cfg)         # `mixer loop ddo`
    autoscale_report(result, out / "report.html", cfg)   # `mixer loop autoscale`, `mixer demo`

The page holds the weights with their 95 % intervals per scale, the verdict and its reasons,
the held-out check, the fit plots, predicted against measured (held-out runs marked), the loss
curves of the base runs, every run with its folder, and the exact commands that reproduce it.
Images are the PNGs the loop already drew, embedded as base64 `data:` URLs and nothing on the
page is fetched from elsewhere, so the file can be mailed, archived or opened offline. Written
under a temporary name and renamed; the same runs give the same page, byte for byte.
"""
from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from mixer.core.atomic import write_bytes_atomic
from mixer.core.units import format_count
from mixer.formats.run import load_run
from mixer.solver.solutions import gain_lines, plot_path

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}.ok{color:#176317;font-weight:bold}.bad{color:#a31515;font-weight:bold}
img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
pre{background:#f5f5f5;padding:.6em;overflow-x:auto}code{font-size:.9em}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _img(path: Path, caption: str) -> str:
    """A PNG embedded as a data URL (nothing fetched), or a line saying it was not drawn."""
    path = Path(path)
    if not path.is_file():
        return f"<p>({_e(caption)}: not drawn)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _weights_table(columns: Mapping[str, Mapping[str, float]],
                   intervals: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    cols = list(columns)
    rows = ["<table><tr><th>domain</th>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>"]
    for d in next(iter(columns.values())):
        cells = []
        for c in cols:
            lo, hi = (intervals.get(c) or {}).get(d, (math.nan, math.nan))
            iv = "" if lo != lo else f" [{lo:.3f}, {hi:.3f}]"
            cells.append(f"<td>{columns[c][d]:.3f}{iv}</td>")
        rows.append(f"<tr><td>{_e(d)}</td>{''.join(cells)}</tr>")
    return "".join(rows) + "</table><p>weight [95 % interval]; no interval where the runs allow none.</p>"


def _verdict(name: str, verdict, fallback: str = "uniform (or your base mixture)") -> str:
    if verdict is None:
        return f"<p>{_e(name)}: not judged.</p>"
    cls = "ok" if verdict.supported else "bad"
    head = verdict.lines(fallback)[0].removeprefix("verdict: ").removeprefix("UNSUPPORTED: ")
    items = "".join(f"<li>{_e(r)}</li>" for r in verdict.reasons)
    return (f'<p><span class="{cls}">{_e(name)}: {_e(verdict.label)}</span>. {_e(head)}</p>'
            + (f"<ul>{items}</ul>" if items else ""))


def _held_out(name: str, check: Mapping[str, Any] | None) -> str:
    if not check or not check.get("runs"):
        return f"<p>{_e(name)}: no held-out mixtures (<code>--validate N</code> trains N).</p>"
    z = check.get("z") or [None] * len(check["runs"])
    rows = "".join(f"<tr><td>{_e(r)}</td><td>{p:.4f}</td><td>{m:.4f}</td><td>{'n/a' if s is None else f'{s:+.2f}'}</td></tr>"
                   for r, p, m, s in zip(check["runs"], check["predicted"], check["measured"], z))
    return (f"<p>{_e(name)}: mixtures trained but never fitted, predicted by the fit "
            "(relative to the base run; noise units = measured minus predicted over one run's noise).</p>"
            "<table><tr><th>held-out run</th><th>predicted</th><th>measured</th><th>noise units</th></tr>"
            f"{rows}</table>")


def _mean_loss(run_json: Path) -> float:

    losses = load_run(run_json).final_loss
    return math.fsum(losses.values()) / len(losses)


def _runs_table(runs: Mapping[str, Path], held: Mapping[str, Path], out: Path) -> str:
    rows = []
    for kind, group in (("fitted", runs), ("held out", held)):
        for name, path in group.items():
            rel = os.path.relpath(Path(path).parent.resolve(), Path(out).resolve())
            rows.append(f"<tr><td>{_e(name)}</td><td>{kind}</td><td>{_mean_loss(path):.4f}</td>"
                        f"<td><code>{_e(rel)}</code></td></tr>")
    return ("<table><tr><th>run</th><th>use</th><th>mean held-out loss (nats/token)</th><th>folder</th></tr>"
            + "".join(rows) + "</table>")


def _curves(runs: Mapping[str, Path], budget: int) -> str:
    """The base run's loss curves (first seed): how far the proxies got, per domain."""
    base = [p for n, p in runs.items() if n.rsplit("/", 1)[-1] == "base"]
    return "".join(_img(Path(p).parent / "loss_curves.png", f"loss curves of the base run at {budget:,} tokens")
                   for p in base)


def _commands(commands: Iterable[str]) -> str:
    cmds = list(commands)
    if not cmds:
        return "<p>(no command recorded: this run was started from Python)</p>"
    return "<pre>" + "\n".join(_e(c) for c in cmds) + "</pre>"


def _page(title: str, body: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{_e(title)}</h1>" + "\n".join(body) + "</body></html>\n")


def _write(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), make_parent=True)


def _settings(cfg) -> str:
    t = cfg.train
    return (f"<p>{_e(t.model)} {_e(t.preset)} proxies; factors {', '.join(f'{f:g}' for f in cfg.factors)} per "
            f"domain ({'fixed' if cfg.keep_total else 'grown'} totals); {cfg.seeds} seed(s) per run; metric: held-out "
            f"{_e(cfg.metric)} over {_e(', '.join(cfg.eval_domains) if cfg.eval_domains else 'every domain')}; "
            f"{cfg.validate} held-out mixture(s) per budget.</p>")


def _scale_sections(r, out: Path) -> list[str]:
    """One DDO scale: verdict, held-out check, fits, predicted vs measured, loss curves."""


    name = f"DDO at {r.budget_tokens:,} tokens"
    gains = "".join(f"<li>{_e(line)}</li>" for line in gain_lines(r.estimator)) if r.estimator is not None else ""
    return [f"<h2>{_e(name)}</h2>", _verdict(name, r.verdict), f"<ul>{gains}</ul>" if gains else "",
            _held_out(name, r.held_out_check),
            _img(plot_path(r.weights_path, "fits"), f"{name}: the power-law fit of every domain, with its optimum"),
            _img(plot_path(r.weights_path, "pred_vs_meas"), f"{name}: predicted against measured, held-out runs marked"),
            _curves(r.runs, r.budget_tokens),
            "<h3>runs</h3>", _runs_table(r.runs, r.held_out, out)]


def ddo_report(result, path: Path, cfg, commands: Iterable[str] | None = None) -> Path:
    """The page of one DDO sweep (`mixer.loop.sweep.DDOLoopResult`)."""
    out = Path(path).parent
    title = f"DDO mixture at {result.budget_tokens:,} tokens"
    body = [_settings(cfg), "<h2>weights</h2>",
            _weights_table({"weight": result.weights}, {"weight": result.intervals}),
            *_scale_sections(result, out), "<h2>reproduce</h2>",
            _commands(cfg.reproduce if commands is None else commands)]
    return _write(path, _page(title, body))


def autoscale_report(result, path: Path, cfg, commands: Iterable[str] | None = None,
                     title: str | None = None) -> Path:
    """The page of an AutoScale loop (`mixer.loop.autoscale.AutoScaleLoopResult`): the target's
    weights and verdict first, then every scale's DDO sweep."""

    out = Path(path).parent
    cols = {f"DDO @ {format_count(r.budget_tokens)}": r.weights for r in result.scales}
    ivs = {f"DDO @ {format_count(r.budget_tokens)}": r.intervals for r in result.scales}
    cols[f"AutoScale @ {format_count(result.target)}"] = result.weights
    ivs[f"AutoScale @ {format_count(result.target)}"] = result.intervals
    name = f"AutoScale to {result.target:,} tokens"
    body = [_settings(cfg), "<h2>weights</h2>", _weights_table(cols, ivs), "<h2>verdict</h2>",
            _verdict(name, result.verdict, *([result.recommendation.label] if result.recommendation else [])),
            *[f"<p>{_e(n)}</p>" for n in result.notes],
            *[_verdict(f"DDO at {r.budget_tokens:,} tokens", r.verdict) for r in result.scales],
            _img(plot_path(result.weights_path, "weights_vs_scale"),
                 f"{name}: predicted weights against budget; points: the measured DDO optima; hatched: extrapolated")]
    if getattr(result, "schedule_path", None) is not None:
        body += ["<h2>schedule</h2>",
                 (f"<p>{_e(str(len(result.schedule.stages)))} stages in {_e(result.schedule_path.name)}: the optimal "
                  "mixture for every point of a run up to the target (the data read by each stage's end is "
                  "AutoScale's optimum for that budget)</p>"),
                 _img(plot_path(result.schedule_path, "stages"),
                      "the schedule: each stage's weights over training tokens (stacked); dotted: measured scales")]
    if result.comparison:
        rows = "".join(f"<tr><td>{_e(k)}</td><td>{c['mean_loss']:.4f}</td><td>{c['mean_perplexity']:.2f}</td></tr>"
                       for k, c in result.comparison.items())
        body += ["<h2>trained at the target</h2><table><tr><th>mixture</th><th>mean held-out loss</th>"
                 f"<th>mean perplexity</th></tr>{rows}</table>"]
    for r in result.scales:
        body += _scale_sections(r, out)
    body += ["<h2>reproduce</h2>", _commands(cfg.reproduce if commands is None else commands)]
    return _write(path, _page(title or f"AutoScale mixture at {result.target:,} tokens", body))
