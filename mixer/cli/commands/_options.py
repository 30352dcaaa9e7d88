"""Options shared across commands, defined once so their names and meanings cannot drift apart:
`--quiet` (no progress bars), `--workers` (processes), `--threads` (threads per process),
`--max-epochs` (the repetition cap), and the trainer options every `mixer loop` sub-command
takes."""
from __future__ import annotations

import click

from mixer.loop.defaults import DEFAULTS


def quiet_option():
    return click.option("--quiet", is_flag=True, help="No progress bars.")


def max_epochs_option():
    """`--max-epochs F`: at most F passes over any domain's data (OLMo's max repetition factor);
    1 (the default) samples without replacement; `inf` lets a domain repeat without a cap.
    `--allow-repeat` is kept as a hidden alias of `--max-epochs inf`."""
    def decorate(fn):
        fn = click.option("--allow-repeat", is_flag=True, hidden=True, help="Alias of --max-epochs inf.")(fn)
        return click.option("--max-epochs", type=float, default=1.0, show_default=True, metavar="F",
                            help="At most F passes over any domain's data (1: no repetition; inf: no cap); "
                                 "further epochs are fresh permutations.")(fn)
    return decorate


def repetition(max_epochs: float, allow_repeat: bool) -> tuple[bool, float | None]:
    """(allow_repeat, max_repeat) for the sampler's `PlanConfig` from `--max-epochs`/`--allow-repeat`."""
    import math

    from mixer.core.errors import MixerError

    if allow_repeat:
        max_epochs = math.inf
    if not max_epochs >= 1:
        raise MixerError(f"--max-epochs {max_epochs!r}: must be at least 1 (one pass over each domain)")
    return max_epochs > 1, (None if math.isinf(max_epochs) else max_epochs) if max_epochs > 1 else None


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
