"""`mixer demo`: the main job on the bundled corpus."""
from __future__ import annotations

from pathlib import Path

import click

from mixer.cli.commands._options import LocalPath, quiet_option, ray_option


@click.command("demo")
@click.option("--out", default="work/demo", show_default=True, type=LocalPath(path_type=Path),
              help="Folder for the corpus, shards, runs and report.")
@click.option("--cache", type=LocalPath(path_type=Path), default=None, help="Download cache for the corpus packages.")
@click.option("--quick", is_flag=True, help="Reduced size (CI): fewer documents, smaller budgets.")
@click.option("--seed", default=0, show_default=True, help="Seed of the corpus split, sampler and models.")
@click.option("--workers", default=2, show_default=True, help="Processes for preparing the corpus (and threads writing shards).")
@click.option("--tokenizer", default="train", show_default=True,
              help="train: a 2,048-id BPE fitted on the corpus (fast tiny proxies); gpt2: OpenAI's 50,257 ids.")
@ray_option("the proxy runs")
@quiet_option()
def command(out, cache, quick, seed, workers, tokenizer, ray, quiet):
    """Bundled corpus → prepare → DDO at two small scales → AutoScale → shards at the target."""
    from rich.console import Console

    from mixer.cli.commands._options import print_whole, weights_table
    from mixer.cli.commands.loop import print_verdict
    from mixer.loop.demo import DemoConfig, run_demo
    from mixer.prepare.pipeline import summary_table

    console = Console(width=max(Console().width, 120))
    result = run_demo(DemoConfig(out=out, cache=cache, quick=quick, seed=seed, workers=workers, tokenizer=tokenizer,
                                 ray=ray, progress=not quiet),
                      on_prepared=lambda prep: print_whole(console, summary_table(prep)))  # before the proxies' bars
    console.print(weights_table("mixture weights [95 % interval]: DDO at two small scales, AutoScale at the target",
                                result.weights, result.intervals))
    console.print(f"{result.runs_trained} proxy runs trained now (finished runs are cached)")
    for name, v in result.scale_verdicts.items():
        console.print(f"{name}: {v.label}", soft_wrap=True)
    print_verdict(console, result.verdict)
    for name, path in result.steps.items():
        console.print(f"{name}: {path}", soft_wrap=True)
    for path in result.plots:
        console.print(f"plot: {path}", soft_wrap=True)
    console.print("reproduce, step by step:")
    for cmd in result.commands:
        console.print(f"  {cmd}", soft_wrap=True, markup=False, highlight=False)
    console.print(f"next: mixer train --model gpt2 --preset tiny --shards {result.shards} "
                  f"--out {Path(out) / 'target-run'}", soft_wrap=True, markup=False, highlight=False)
