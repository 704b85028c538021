"""The ``streamdiv`` command line: a thin layer over the Python API (no metric logic lives here).

Exit codes: 0 success; 1 a ``--fail-if`` condition held; 2 usage error; 3 bad data or unreadable input;
4 an unexpected internal error.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import click
from click.core import ParameterSource

from . import __version__
from .accumulator import Accumulator
from .checkpoint import Every
from .cli_checkpoint import checkpoint_options, start_checkpoint
from .cli_dask import DASK_OPTION, dask_source, score_on_dask
from .cli_plot import plot_command
from .cli_options import (Scoring, emit, input_kind, open_scoring, output_options, parse_conditions,
                          score_with_progress, scoring_options)
from .drift_report import COMPARED_NAMES, DEFAULT_SMOOTHING, DRIFT_NAMES, drift, saved_state
from .drift_formats import render_drift
from .errors import StreamdivError
from .evaluate import score_source
from .metrics import METRIC_NAMES, parse_base
from .plan import guess, resolve
from .sources import open_source

EXIT_DATA, EXIT_INTERNAL = 3, 4  # EXIT_BREACH (1) is cli_options'
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT: a scheduler tells an interrupted job from a breach (1)
EXIT_CODES_HELP = ("Exit codes: 0 success, 1 a --fail-if condition held, 2 usage error, "
                   "3 bad data or unreadable input, 4 internal error, 130 interrupted (Ctrl-C).")


class StreamdivGroup(click.Group):
    """Turns streamdiv's errors into one-paragraph messages and exit codes; --debug shows tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except (KeyboardInterrupt, click.Abort):
            if ctx.params.get("debug"):
                raise
            click.echo("streamdiv: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (StreamdivError, OSError) as error:
            if ctx.params.get("debug"):
                raise
            click.echo(f"streamdiv: error: {error}", err=True)
            ctx.exit(EXIT_DATA)
        except Exception as error:  # a bug: say so plainly, keep the traceback for --debug
            if ctx.params.get("debug"):
                raise
            click.echo(f"streamdiv: internal error: {type(error).__name__}: {error} "
                       f"(run with --debug for the traceback, and please report it)", err=True)
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=StreamdivGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES_HELP)
@click.version_option(__version__, "--version", prog_name="streamdiv")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def main(debug: bool) -> None:
    """Score model predictions against labels: cross-entropy, KL, entropy and calibration, in one pass.

    \b
    Example:
        streamdiv demo
        streamdiv score preds/*.parquet --probs probs --labels label --by region
    """


@main.command()
@click.argument("sources", nargs=-1, required=True)
@scoring_options
@click.option("--every", type=click.IntRange(1), metavar="N", help="Every N rows, one JSON line on stdout: the rows "
              "so far, the running metrics and those of these N rows alone, e.g. --every 1000000 | jq .metrics.ece; "
              "then the report as usual (with -o, the lines still go to stdout).")
@DASK_OPTION
@checkpoint_options
@output_options
def score(sources: tuple[str, ...], every: int | None, dask_address: str | None, checkpoint: str | None,
          checkpoint_every: Every, resume: bool, fmt: str | None, output: str | None, fail_if: tuple[str, ...],
          save_state: str | None, **options: Any) -> None:
    """Score prediction files (Parquet, Arrow, CSV; '-' reads an Arrow IPC stream from stdin).

    Columns not named are guessed from their names and types (see `streamdiv inspect`; a label column only
    by its exact name); the guess is printed on stderr.  Without labels or targets it scores the
    predictions alone: prediction_entropy, mean_confidence and the prediction distributions.

    With --mean and --log-variance (and optionally --prior-mean, --prior-log-variance) it scores a VAE's
    Gaussian posterior against its prior instead: gaussian_kl, the mean over rows of
    KL(N(mean, diag var) || prior).

    \b
    Example:
        streamdiv score preds.parquet --probs probs --labels label --by region \\
            --fail-if 'ece>0.05' --format prometheus -o /var/lib/node_exporter/streamdiv.prom
        streamdiv score latents.parquet --mean mu --log-variance logvar --fail-if 'gaussian_kl>40'
        streamdiv score week.parquet --probs probs --labels label --time ts --window 1d --format csv
        streamdiv score preds.parquet --probs probs --labels label --every 1000000 -o report.json
        streamdiv score 's3://bucket/preds/*.parquet' --probs probs --labels label --dask tcp://10.0.0.5:8786
        streamdiv score big/ --probs probs --labels label --checkpoint big.ckpt --resume -o report.json
    """
    conditions = parse_conditions(fail_if, options["metric_set"], input_kind(options))
    scoring = open_scoring(sources, options, dask_source(sources, dask_address, every))
    if scoring.label_free:
        conditions = parse_conditions(fail_if, options["metric_set"], label_free=True)
    checkpointer = start_checkpoint(scoring, checkpoint, checkpoint_every, resume,
                                    {"--every": every is not None, "--dask": dask_address is not None})
    if dask_address is not None:
        score_on_dask(sources, scoring, dask_address, options["threads"])
    else:
        score_with_progress(scoring, every, checkpointer)
    try:
        emit(scoring.accumulator.report(), scoring.accumulator.to_bytes, fmt, output, conditions, save_state)
    except SystemExit:  # a --fail-if breach, once the report is out: the run is complete
        if checkpointer is not None:
            checkpointer.finish()
        raise
    if checkpointer is not None:
        checkpointer.finish()


@main.command()
@click.argument("states", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--base", default="e", show_default=True, type=click.Choice(["e", "2", "10"]), help="Log base.")
@output_options
def merge(states: tuple[str, ...], base: str, fmt: str | None, output: str | None, fail_if: tuple[str, ...],
          save_state: str | None) -> None:
    """Combine saved states (from --save-state) into one result, equal to scoring all the data at once.

    \b
    Example:
        streamdiv merge hourly/*.state --save-state daily.state --fail-if 'kl_divergence>=0.2'
    """
    conditions = parse_conditions(fail_if, None)
    accumulator = None  # the first state's settings (bins, eps, metric set) are the ones the others must share
    for path in states:
        with open(path, "rb") as handle:
            try:
                state = Accumulator.from_bytes(handle.read(), base=parse_base(base))
                accumulator = state if accumulator is None else accumulator.merge(state)
            except StreamdivError as error:
                raise StreamdivError(f"{path}: {error}") from error
    assert accumulator is not None  # click requires at least one state
    report = accumulator.report()
    parse_conditions(fail_if, report.config.metrics, report.config.kind, report.config.label_free)
    emit(report, accumulator.to_bytes, fmt, output, conditions, save_state)


@main.command("drift")
@click.argument("current", nargs=-1, required=True)
@click.option("--reference", required=True, metavar="REF", help="The reference: a state file written by "
              "--save-state (labels or not), or data scored with the same options as CURRENT.")
@click.option("--smoothing", type=click.FloatRange(0), default=DEFAULT_SMOOTHING, show_default=True,
              help="Pseudo-weight added to every bin of a distribution that has an empty bin (0: none, and a "
              "figure is inf where one side has weight the other lacks).")
@scoring_options
@output_options
def drift_command(current: tuple[str, ...], reference: str, smoothing: float, fmt: str | None, output: str | None,
                  fail_if: tuple[str, ...], save_state: str | None, **options: Any) -> None:
    """Compare predictions with a reference: PSI, JS and KL of the predicted classes, the mean prediction and
    the confidence histogram, and each metric's change (NAME.reference, .current, .change, .relative_change).

    Each current group and window is compared with the reference group of the same --by key when the
    reference was grouped by the same columns, else with the whole reference; --save-state saves the current
    side. With a reference state, --bins and --binning default to its own.

    \b
    Example:
        streamdiv score october.parquet --probs probs --labels label --save-state reference.state
        streamdiv drift --reference reference.state today.parquet --probs probs --time ts --window 1d \\
            --fail-if 'confidence_psi>0.2' --fail-if 'ece.change>0.02'
    """
    conditions = parse_conditions(fail_if, None, names=DRIFT_NAMES + COMPARED_NAMES)
    stored = saved_state(reference)
    context = click.get_current_context()
    for name in ("bins", "binning"):
        if stored is not None and context.get_parameter_source(name) is ParameterSource.DEFAULT:
            options[name] = getattr(stored.config, name)
    if stored is None:
        reference_side = open_scoring(reference, options)
        score_with_progress(reference_side)
    current_side = open_scoring(current, options)
    score_with_progress(current_side)
    report = drift(reference if stored is not None else reference_side.accumulator, current_side.accumulator,
                   smoothing=smoothing, base=options["base"])
    emit(report, current_side.accumulator.to_bytes, fmt, output, conditions, save_state, render_drift)


@main.command()
@click.argument("source")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def inspect(source: str, fmt: str) -> None:
    """Show a source's columns, its row count (from metadata, without a scan) and the guessed column roles.

    \b
    Example:
        streamdiv inspect preds.parquet
    """
    opened = open_source(source)
    guessed = guess(opened.schema)
    roles = {name: role for role, name in guessed.items() if isinstance(name, str)}
    if fmt == "json":
        import json
        click.echo(json.dumps({"files": len(opened.parts), "rows": opened.total_rows, "bytes": opened.total_bytes,
                               "columns": [{"name": f.name, "type": str(f.type)} for f in opened.schema],
                               "guess": guessed}, indent=2))
        return
    rows = "unknown (needs a scan)" if opened.total_rows is None else f"{opened.total_rows:,}"
    size = "" if opened.total_bytes is None else f", {opened.total_bytes / 2 ** 20:,.1f} MiB"
    click.echo(f"{len(opened.parts)} file(s), {rows} rows{size}\n")
    width = max(len(f.name) for f in opened.schema)
    for f in opened.schema:
        role = roles.get(f.name, "")
        if not role:
            role = next((r for r, n in guessed.items() if isinstance(n, str) and "*" in n
                         and f.name.startswith(n.rstrip("*"))), "")
        click.echo(f"  {f.name.ljust(width)}  {str(f.type):40s}  {role}".rstrip())
    if guessed:
        flags = " ".join(f"--{role} '{name}'" for role, name in guessed.items())
        click.echo(f"\nstreamdiv score {source} {flags}")
    else:
        click.echo("\nno column looks like predictions; name them with --probs/--logits and --labels/--targets")


@main.command()
@click.option("--rows", default=2_000_000, show_default=True, type=click.IntRange(1), help="Rows to make.")
@click.option("--classes", default=10, show_default=True, type=click.IntRange(2), help="Number of classes.")
@click.option("--keep", type=click.Path(dir_okay=False), help="Keep the generated Parquet file here.")
@click.option("--progress/--no-progress", default=None, help="Progress line on stderr [default: on a terminal].")
@output_options
def demo(rows: int, classes: int, keep: str | None, progress: bool | None, fmt: str | None, output: str | None,
         fail_if: tuple[str, ...], save_state: str | None) -> None:
    """Make a synthetic prediction file with a known miscalibration and score it, grouped by region.

    The model is calibrated in 'eu', overconfident in 'us' (temperature 0.6) and underconfident in 'apac'
    (temperature 1.6); the report shows it in ece and the per-region table.

    \b
    Example:
        streamdiv demo --rows 5000000 --keep demo.parquet
    """
    from .synthetic import write_predictions

    conditions = parse_conditions(fail_if)
    with tempfile.TemporaryDirectory(prefix="streamdiv-demo-") as scratch:
        path = keep or os.path.join(scratch, "demo.parquet")
        started = time.perf_counter()
        write_predictions(path, rows, classes)
        click.echo(f"streamdiv demo: wrote {rows:,} synthetic predictions ({classes} classes) to {path} in "
                   f"{time.perf_counter() - started:.1f}s; scoring it...", err=True)
        source = open_source(path)
        plan = resolve(source.schema, probs="probs", labels="label", by=["region"])
        started = time.perf_counter()
        warm_up = next(iter(source.chunks(plan.columns, 100))).batch  # compiles the kernels, or loads the cache
        score_source(Accumulator(), open_source(warm_up), plan, batch_size=100)
        compile_seconds = time.perf_counter() - started
        if compile_seconds > 1.0:
            click.echo(f"streamdiv demo: compiled the kernels in {compile_seconds:.1f}s (once: later runs load "
                       f"them from numba's cache)", err=True)
        accumulator = Accumulator()
        started = time.perf_counter()
        score_with_progress(Scoring(source, plan, accumulator, None, progress))
        seconds = time.perf_counter() - started
        click.echo(f"streamdiv demo: scored {rows:,} rows in {seconds:.2f}s ({rows / seconds / 1e6:.1f} M rows/s). "
                   f"Score your own file with: streamdiv score FILE --probs COLUMN --labels COLUMN", err=True)
        emit(accumulator.report(), accumulator.to_bytes, fmt, output, conditions, save_state)


@main.command()
def warmup() -> None:
    """Compile the kernels for every input layout now, into numba's cache, so that no later run compiles.

    For container images and CI: run it once where the cache will be read from (NUMBA_CACHE_DIR if set,
    else next to the installed package, or a per-user directory if that is not writable).  With a warm
    cache it only loads the kernels.

    \b
    Example:
        NUMBA_CACHE_DIR=/opt/streamdiv-cache streamdiv warmup
    """
    from .warmup import PARQUET_STEP, cache_locations, warm_up

    def show(name: str, seconds: float | None) -> None:
        if seconds is None:
            click.echo(f"compiling {name} ... ", nl=False)
        else:
            click.echo(f"{seconds:.1f} s")

    started = time.perf_counter()
    done = warm_up(progress=show)
    click.echo(f"streamdiv warmup: {len(done) - 1} layouts and the {PARQUET_STEP} in "
               f"{time.perf_counter() - started:.1f} s; "
               f"cache: {', '.join(cache_locations()) or 'unknown'}")


main.add_command(plot_command)

__all__ = ["main", "METRIC_NAMES"]
