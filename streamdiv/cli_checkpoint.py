"""The command line's ``--checkpoint``, ``--checkpoint-every`` and ``--resume``: a long ``streamdiv score`` that
survives being killed, through :class:`streamdiv.checkpoint.Checkpointer`."""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import click

from .checkpoint import DEFAULT_EVERY, Checkpointer, Every
from .cli_options import Scoring
from .errors import CheckpointError


def _every(ctx: click.Context, param: click.Parameter, value: str) -> Every:
    try:
        return Every.parse(value)
    except CheckpointError as error:
        raise click.BadParameter(str(error), param_hint="--checkpoint-every") from None


def checkpoint_options(func: Callable) -> Callable:
    """--checkpoint, --checkpoint-every and --resume."""
    @click.option("--checkpoint", type=click.Path(dir_okay=False), metavar="PATH",
                  help="Write the state and the position in the files to PATH atomically, every "
                       "--checkpoint-every and on Ctrl-C, so that --resume continues a killed run with the same "
                       "result; removed when the run finishes.")
    @click.option("--checkpoint-every", default=DEFAULT_EVERY, show_default=True, metavar="N|DURATION",
                  callback=_every, help="Checkpoint every N batches, or every DURATION (30s, 5min, 1h).")
    @click.option("--resume", is_flag=True, help="Continue from --checkpoint's file (from the beginning when "
                  "there is none yet); refused when the files or the options changed since it was written.")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)
    return wrapper


def start_checkpoint(scoring: Scoring, path: str | None, every: Every, resume: bool,
                     conflicts: dict[str, bool]) -> Checkpointer | None:
    """The checkpointer of ``scoring`` at ``path`` (None without one), resumed when asked for, saying on stderr
    where the scan starts; ``conflicts`` names the options that do not go with a checkpoint, each with
    whether it was given."""
    if path is None:
        if resume:
            raise click.UsageError("--resume continues from a checkpoint: name it with --checkpoint PATH")
        return None
    for option, given in conflicts.items():
        if given:
            raise click.UsageError(f"--checkpoint does not go with {option}")
    checkpointer = Checkpointer(path, scoring.source, scoring.plan, scoring.accumulator, every)
    if not resume:
        if checkpointer.exists():
            click.echo(f"streamdiv: {path} holds the checkpoint of an earlier run: starting over (add --resume to "
                       f"continue it)", err=True)
        return checkpointer
    if checkpointer.resume():
        part, row = checkpointer.position
        name = os.path.basename(scoring.source.parts[part].name)
        click.echo(f"streamdiv: resuming from {path}: {scoring.accumulator.rows:,} rows done, at row {row:,} of "
                   f"{name}", err=True)
    else:
        click.echo(f"streamdiv: no checkpoint at {path} yet: starting from the beginning", err=True)
    return checkpointer
