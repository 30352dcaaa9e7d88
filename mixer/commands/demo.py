"""`mixer demo`: the main job on the bundled corpus."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", default="work/demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--cache", type=click.Path(path_type=Path), default=None, help="Download cache for the corpus packages.")
@click.option("--quick", is_flag=True, help="Reduced size (CI): fewer documents, smaller budgets.")
@click.option("--seed", default=0, show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(out, cache, quick, seed, workers, quiet):
    """Bundled corpus → prepare → mixture, printing each step's summary."""
    from rich.console import Console

    from mixer.demo import DemoConfig, run_demo
    from mixer.prepare import summary_table

    result = run_demo(DemoConfig(out=out, cache=cache, quick=quick, seed=seed, workers=workers, progress=not quiet))
    console = Console(width=max(Console().width, 120))
    console.print(summary_table(result.prepare))
    console.print(f"corpus: {result.corpus}")
    for name, path in result.steps.items():
        console.print(f"{name}: {path}")
