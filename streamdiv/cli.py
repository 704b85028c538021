"""The ``streamdiv`` command line: a thin layer over the Python API (no metric logic lives here).

Exit codes: 0 success; 1 a ``--fail-if`` condition held; 2 usage error; 3 bad data or unreadable input;
4 an unexpected internal error.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from typing import Any, Callable

import click
import numba

from . import __version__
from .accumulator import Accumulator
from .conditions import Condition, breaches
from .errors import StreamdivError
from .evaluate import score_source
from .formats import FORMATS, render, write_atomically
from .kernels.layout import CLASSIFICATION, GAUSSIAN
from .metrics import BINNINGS, METRIC_NAMES, METRIC_SETS, parse_base
from .plan import ColumnPlan, guess, resolve
from .progress import ProgressBar
from .report import Report
from .sources import Source, open_source
from .state import LOSS_NEEDS_LABELS

EXIT_BREACH, EXIT_DATA, EXIT_INTERNAL = 1, 3, 4
SUFFIX_FORMATS = {".json": "json", ".csv": "csv", ".prom": "prometheus", ".txt": "table"}
EXIT_CODES_HELP = ("Exit codes: 0 success, 1 a --fail-if condition held, 2 usage error, "
                   "3 bad data or unreadable input, 4 internal error.")


class StreamdivGroup(click.Group):
    """Turns streamdiv's errors into one-paragraph messages and exit codes; --debug shows tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
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


# ---- options shared between commands, defined once
def output_options(func: Callable) -> Callable:
    @click.option("--format", "fmt", type=click.Choice(FORMATS),
                  help="Output format [default: table on a terminal; else from -o's suffix, or json].")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the result to this file "
                  "atomically (temporary file + rename) instead of standard output.")
    @click.option("--fail-if", "fail_if", multiple=True, metavar="EXPR",
                  help="Exit with status 1 if METRIC OP NUMBER holds overall or in any group, "
                       "e.g. 'ece>0.05'. Repeatable.")
    @click.option("--save-state", type=click.Path(dir_okay=False),
                  help="Also save the accumulator state (mergeable later with `streamdiv merge`).")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)
    return wrapper


def _conditions(texts: tuple[str, ...], metric_set: str | None = "all", kind: str = CLASSIFICATION,
                label_free: bool = False) -> list[Condition]:
    """The --fail-if conditions, each refused unless the run computes its metric (not checked for None: the
    states that `merge` reads say what is computed)."""
    try:
        conditions = [Condition.parse(text) for text in texts]
        for condition in conditions:
            if metric_set is not None:
                condition.check_computed(metric_set, kind, label_free)
        return conditions
    except StreamdivError as error:
        raise click.BadParameter(str(error), param_hint="--fail-if") from None


def _emit(report: Report, accumulator: Accumulator, fmt: str | None, output: str | None,
          conditions: list[Condition], save_state: str | None) -> None:
    """Print or write the report, save the state, then exit 1 if a condition holds."""
    if fmt is None:
        if output:
            fmt = SUFFIX_FORMATS.get(os.path.splitext(output)[1].lower(), "json")
        else:
            fmt = "table" if sys.stdout.isatty() else "json"
    text = render(report, fmt)
    if output:
        write_atomically(output, text.encode())
    else:
        click.echo(text, nl=False)
    if save_state:
        write_atomically(save_state, accumulator.to_bytes())
    problems = breaches(report, conditions)
    for line in problems:
        click.echo(f"streamdiv: {line}", err=True)
    if problems:
        sys.exit(EXIT_BREACH)


def _score_with_progress(accumulator: Accumulator, source: Source, plan: ColumnPlan, batch_size: int | None,
                         progress: bool | None) -> None:
    """Score ``source``, with a progress line on stderr when asked for (by default: when it is a terminal)."""
    show = sys.stderr.isatty() if progress is None else progress
    bar = ProgressBar(source.total_rows) if show else None
    try:
        score_source(accumulator, source, plan, batch_size=batch_size, progress=bar)
    finally:
        if bar is not None:
            bar.close()


def _split(value: str | None) -> Any:
    """'a,b,c' -> ['a', 'b', 'c'] (per-class columns); a single name or a glob stays a string."""
    if value is None or "," not in value:
        return value
    return [part.strip() for part in value.split(",") if part.strip()]


def _label_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--probs", help="Probability column: a list column, 'p_a,p_b,...' or a glob such as 'p_*'; "
              "one float column for binary.")
@click.option("--logits", help="Logit column(s) instead of probabilities (same layouts).")
@click.option("--labels", help="Hard label column: integer class index, bool, or class name.")
@click.option("--targets", help="Soft target column(s): a full reference distribution per row.")
@click.option("--weights", help="Per-row weight column.")
@click.option("--mean", help="The Gaussian kind (a VAE's posterior), instead of a prediction and labels: the "
              "mean column(s), laid out as --probs; scored by gaussian_kl.")
@click.option("--log-variance", help="The Gaussian kind's log variance column(s), as many dimensions as --mean.")
@click.option("--prior-mean", help="The prior's mean column(s) [default: 0, the standard normal].")
@click.option("--prior-log-variance", help="The prior's log variance column(s) [default: 0, the standard normal].")
@click.option("--by", multiple=True, help="Group column; repeat for several. Every metric per group.")
@click.option("--base", default="e", show_default=True, type=click.Choice(["e", "2", "10"]),
              help="Log base: e (nats), 2 (bits), 10 (hartleys).")
@click.option("--bins", default=15, show_default=True, type=click.IntRange(1), help="Calibration bins.")
@click.option("--binning", default="uniform", show_default=True, type=click.Choice(list(BINNINGS)),
              help="Calibration bins of equal width (edges k/bins) or of equal weight (quantile: edges from the "
              "data, within the bound reported as calibration_bound).")
@click.option("--batch-size", type=click.IntRange(1),
              help="Rows per batch [default: about 4 MiB of decoded columns per batch].")
@click.option("--on-invalid", default="error", show_default=True, type=click.Choice(["error", "skip"]),
              help="Stop at the first invalid row, or skip and count invalid rows.")
@click.option("--eps", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Clip predicted probabilities to [eps, 1] inside log terms (counted in clipped_rows).")
@click.option("--ignore-label", help="Label value whose rows are left out and counted (e.g. -100).")
@click.option("--renormalize", is_flag=True, help="Rescale rows that do not sum to 1.")
@click.option("--metrics", "metric_set", default="all", show_default=True, type=click.Choice(list(METRIC_SETS)),
              help="'loss': cross-entropy, KL, perplexity, normalized entropy and row counts only; a lighter "
              "pass for hard labels against probabilities, and for binary predictions.")
@click.option("--class-names", help="Comma-separated class names (for index labels or string labels).")
@click.option("--classwise/--no-classwise", default=None,
              help="Class-wise calibration: per-class reliability, classwise_ece, the Brier decomposition "
                   "[default: on up to 100 classes].")
@click.option("--progress/--no-progress", default=None, help="Progress line on stderr [default: on a terminal].")
@click.option("--threads", type=click.IntRange(1), help="Threads for the kernels, at most NUMBA_NUM_THREADS "
              "(every core unless set) [default: that many]. Results are the same bits for any number.")
@output_options
def score(sources: tuple[str, ...], probs: str | None, logits: str | None, labels: str | None,
          targets: str | None, weights: str | None, mean: str | None, log_variance: str | None,
          prior_mean: str | None, prior_log_variance: str | None, by: tuple[str, ...], base: str, bins: int,
          binning: str, batch_size: int | None, on_invalid: str, eps: float | None, ignore_label: str | None,
          renormalize: bool, metric_set: str, class_names: str | None, classwise: bool | None,
          progress: bool | None, threads: int | None, fmt: str | None,
          output: str | None, fail_if: tuple[str, ...], save_state: str | None) -> None:
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
    """
    gaussian = {"mean": _split(mean), "log_variance": _split(log_variance), "prior_mean": _split(prior_mean),
                "prior_log_variance": _split(prior_log_variance)}
    is_gaussian = any(spec is not None for spec in gaussian.values())
    conditions = _conditions(fail_if, metric_set, GAUSSIAN if is_gaussian else CLASSIFICATION)
    if threads is not None:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    source = open_source(list(sources) if len(sources) > 1 else sources[0])
    columns = {"probs": _split(probs), "logits": _split(logits), "labels": labels, "targets": _split(targets),
               "weights": weights}
    if is_gaussian:
        columns = {role: spec for role, spec in columns.items() if spec is not None} | gaussian
    elif columns["probs"] is None and columns["logits"] is None or columns["labels"] is None and columns["targets"] is None:
        guessed = guess(source.schema, label_prefixes=False)
        taken = []
        for pair in (("probs", "logits"), ("labels", "targets")):
            if all(columns[role] is None for role in pair):
                for role in pair:
                    if role in guessed:
                        columns[role] = guessed[role]
                        taken.append(f"--{role} {guessed[role]}")
        if columns["weights"] is None and "weights" in guessed and taken:
            columns["weights"] = guessed["weights"]
            taken.append(f"--weights {guessed['weights']}")
        if taken:
            click.echo(f"streamdiv: using {' '.join(taken)} (guessed from the column names)", err=True)
    if not is_gaussian and columns["labels"] is None and columns["targets"] is None:
        if metric_set == "loss":
            raise click.BadParameter(LOSS_NEEDS_LABELS, param_hint="--metrics")
        conditions = _conditions(fail_if, metric_set, CLASSIFICATION, label_free=True)
        click.echo("streamdiv: no label column: scoring the predictions alone (prediction_entropy, "
                   "mean_confidence, the prediction distributions)", err=True)
    plan = resolve(source.schema, by=list(by), class_names=_split(class_names) if class_names else None,
                   **columns)
    accumulator = Accumulator(class_names=plan.class_names, base=parse_base(base), bins=bins, binning=binning,
                              eps=eps, renormalize=renormalize, on_invalid=on_invalid,
                              ignore_label=_label_value(ignore_label), metrics=metric_set, classwise=classwise)
    _score_with_progress(accumulator, source, plan, batch_size, progress)
    report = accumulator.report()
    if report.metrics["unnormalized_rows"]:
        click.echo(f"streamdiv: warning: {report.metrics['unnormalized_rows']:,} rows have probabilities that do "
                   f"not sum to 1 (scored as given; --renormalize rescales them)", err=True)
    for message in report.warnings:
        click.echo(f"streamdiv: warning: {message}", err=True)
    _emit(report, accumulator, fmt, output, conditions, save_state)


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
    conditions = _conditions(fail_if, None)
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
    _conditions(fail_if, report.config.metrics, report.config.kind, report.config.label_free)
    _emit(report, accumulator, fmt, output, conditions, save_state)


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

    conditions = _conditions(fail_if)
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
        _score_with_progress(accumulator, source, plan, None, progress)
        seconds = time.perf_counter() - started
        click.echo(f"streamdiv demo: scored {rows:,} rows in {seconds:.2f}s ({rows / seconds / 1e6:.1f} M rows/s). "
                   f"Score your own file with: streamdiv score FILE --probs COLUMN --labels COLUMN", err=True)
        _emit(accumulator.report(), accumulator, fmt, output, conditions, save_state)


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
    from .warmup import cache_locations, warm_up

    def show(name: str, seconds: float | None) -> None:
        if seconds is None:
            click.echo(f"compiling {name} ... ", nl=False)
        else:
            click.echo(f"{seconds:.1f} s")

    started = time.perf_counter()
    done = warm_up(progress=show)
    click.echo(f"streamdiv warmup: {len(done)} layouts in {time.perf_counter() - started:.1f} s; "
               f"cache: {', '.join(cache_locations()) or 'unknown'}")


__all__ = ["main", "METRIC_NAMES"]
