"""Options every `mixer loop` sub-command shares: the trainer's seeds, learning rate, eval size,
repetition and threads (one definition, so the loops cannot drift apart)."""
from __future__ import annotations

import click

from mixer.loop.defaults import DEFAULTS


def trainer_options() -> list:
    return [
        click.option("--seed", type=int, default=0, show_default=True, help="Model init, dropout, masks."),
        click.option("--data-seed", type=int, default=0, show_default=True,
                     help="Sampler seed (the same for every run of a sweep)."),
        click.option("--lr", type=float, default=None, help="Peak learning rate (default: the preset's)."),
        click.option("--eval-seqs", type=int, default=DEFAULTS.eval_seqs, show_default=True,
                     help="Held-out sequences per domain."),
        click.option("--allow-repeat", is_flag=True, help="Let small domains repeat (fresh order each epoch)."),
        click.option("--threads", type=int, default=1, show_default=True, help="Torch CPU threads per run."),
    ]
