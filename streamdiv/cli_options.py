"""The command line's shared pieces: options defined once (the columns and settings that ``score`` and ``drift``
read, the output options of every command) and what they become: a source scored into an accumulator,
``--fail-if`` conditions, and a result written out.  The CLI uses the public API only.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

import click
import numba

from .accumulator import Accumulator
from .checkpoint import Checkpointer
from .conditions import Condition, breaches
from .errors import StreamdivError
from .evaluate import resolve_columns, score_source
from .formats import FORMATS, render, write_atomically
from .kernels.layout import CLASSIFICATION, GAUSSIAN
from .metrics import BINNINGS, METRIC_NAMES, METRIC_SETS, parse_base
from .plan import ColumnPlan, GaussianPlan, guess
from .progress import ProgressBar
from .scan import scan_steps, write_steps
from .sources import Source, open_source
from .state import LOSS_NEEDS_LABELS
from .windows import Window

EXIT_BREACH = 1
SUFFIX_FORMATS = {".json": "json", ".csv": "csv", ".prom": "prometheus", ".txt": "table", ".html": "html",
                  ".htm": "html"}


def output_options(func: Callable) -> Callable:
    """--format, -o, --fail-if and --save-state."""
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


def _window(text: str | None) -> str | None:
    """--window's value, refused as a usage error when it is not a width streamdiv reads."""
    if text is None:
        return None
    try:
        return Window.parse(text).text
    except StreamdivError as error:
        raise click.BadParameter(str(error), param_hint="--window") from None


# Which columns to read and how to score them: `score`'s options, and `drift`'s for both of its sides.
SCORING_OPTIONS = (
    click.option("--probs", help="Probability column: a list column, 'p_a,p_b,...' or a glob such as 'p_*'; "
                 "one float column for binary."),
    click.option("--logits", help="Logit column(s) instead of probabilities (same layouts)."),
    click.option("--labels", help="Hard label column: integer class index, bool, or class name."),
    click.option("--targets", help="Soft target column(s): a full reference distribution per row."),
    click.option("--weights", help="Per-row weight column."),
    click.option("--mean", help="The Gaussian kind (a VAE's posterior), instead of a prediction and labels: the "
                 "mean column(s), laid out as --probs; scored by gaussian_kl."),
    click.option("--log-variance", help="The Gaussian kind's log variance column(s), as many dimensions as --mean."),
    click.option("--prior-mean", help="The prior's mean column(s) [default: 0, the standard normal]."),
    click.option("--prior-log-variance", help="The prior's log variance column(s) [default: 0, the standard normal]."),
    click.option("--by", multiple=True, help="Group column; repeat for several. Every metric per group."),
    click.option("--time", "time_column", metavar="COLUMN", help="Timestamp or date column for --window."),
    click.option("--window", metavar="DURATION", callback=lambda ctx, param, value: _window(value),
                    help="Time windows of this width (Ns, Nmin, Nh, Nd, Nw; e.g. 1d), "
                 "aligned on the Unix epoch in UTC (weeks start on Monday): one more group key, 'window'."),
    click.option("--base", default="e", show_default=True, type=click.Choice(["e", "2", "10"]),
                 help="Log base: e (nats), 2 (bits), 10 (hartleys)."),
    click.option("--bins", default=15, show_default=True, type=click.IntRange(1), help="Calibration bins."),
    click.option("--binning", default="uniform", show_default=True, type=click.Choice(list(BINNINGS)),
                 help="Calibration bins of equal width (edges k/bins) or of equal weight (quantile: edges from the "
                 "data, within the bound reported as calibration_bound)."),
    click.option("--batch-size", type=click.IntRange(1),
                 help="Rows per batch [default: about 4 MiB of decoded columns per batch]."),
    click.option("--on-invalid", default="error", show_default=True, type=click.Choice(["error", "skip"]),
                 help="Stop at the first invalid row, or skip and count invalid rows."),
    click.option("--eps", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                 help="Clip predicted probabilities to [eps, 1] inside log terms (counted in clipped_rows)."),
    click.option("--ignore-label", help="Label value whose rows are left out and counted (e.g. -100)."),
    click.option("--renormalize", is_flag=True, help="Rescale rows that do not sum to 1."),
    click.option("--metrics", "metric_set", default="all", show_default=True, type=click.Choice(list(METRIC_SETS)),
                 help="'loss': cross-entropy, KL, perplexity, normalized entropy and row counts only; a lighter "
                 "pass for hard labels against probabilities, and for binary predictions."),
    click.option("--class-names", help="Comma-separated class names (for index labels or string labels)."),
    click.option("--classwise/--no-classwise", default=None,
                 help="Class-wise calibration: per-class reliability, classwise_ece, the Brier decomposition "
                      "[default: on up to 100 classes]."),
    click.option("--progress/--no-progress", default=None, help="Progress line on stderr [default: on a terminal]."),
    click.option("--threads", type=click.IntRange(1), help="Threads for the kernels, at most NUMBA_NUM_THREADS "
                 "(every core unless set) [default: that many]. Results are the same bits for any number."),
)


def scoring_options(func: Callable) -> Callable:
    """Every option of SCORING_OPTIONS, in that order in --help."""
    for option in reversed(SCORING_OPTIONS):
        func = option(func)
    return func


@dataclass
class Scoring:
    """A source to score as the options say: its column plan and the accumulator to feed."""

    source: Source
    plan: ColumnPlan | GaussianPlan
    accumulator: Accumulator
    batch_size: int | None
    progress: bool | None
    label_free: bool = False  # neither labels nor targets: the predictions scored alone


def open_scoring(sources: tuple[str, ...] | str, options: dict[str, Any], source: Source | None = None) -> Scoring:
    """The source(s) opened (or ``source``, already open) and their columns resolved from SCORING_OPTIONS'
    values (``options``): columns not named are guessed from their names (the guess said on stderr), and the
    accumulator made."""
    if (options["time_column"] is None) != (options["window"] is None):
        raise click.UsageError("--time and --window go together: the time column, and the windows' width")
    if options["threads"] is not None:
        numba.set_num_threads(min(options["threads"], numba.config.NUMBA_NUM_THREADS))
    if source is None:
        source = open_source(sources if isinstance(sources, str) else list(sources) if len(sources) > 1 else sources[0])
    columns = _columns(source, options)
    label_free = input_kind(options) == CLASSIFICATION and columns["labels"] is None and columns["targets"] is None
    if label_free:
        if options["metric_set"] == "loss":
            raise click.BadParameter(LOSS_NEEDS_LABELS, param_hint="--metrics")
        click.echo("streamdiv: no label column: scoring the predictions alone (prediction_entropy, "
                   "mean_confidence, the prediction distributions)", err=True)
    plan = resolve_columns(source, by=list(options["by"]), time=options["time_column"],
                           class_names=_split(options["class_names"]) if options["class_names"] else None, **columns)
    accumulator = Accumulator(class_names=plan.class_names, base=parse_base(options["base"]), bins=options["bins"],
                              binning=options["binning"], eps=options["eps"], renormalize=options["renormalize"],
                              on_invalid=options["on_invalid"], ignore_label=_label_value(options["ignore_label"]),
                              metrics=options["metric_set"], classwise=options["classwise"], window=options["window"])
    return Scoring(source, plan, accumulator, options["batch_size"], options["progress"], label_free)


def input_kind(options: dict[str, Any]) -> str:
    """The kind of input the options name: the Gaussian kind's columns, or predictions."""
    gaussian = ("mean", "log_variance", "prior_mean", "prior_log_variance")
    return GAUSSIAN if any(options[role] is not None for role in gaussian) else CLASSIFICATION


def _columns(source: Source, options: dict[str, Any]) -> dict[str, Any]:
    """The column roles for plan.resolve: as named, the Gaussian kind's alone, or with the unnamed guessed."""
    gaussian = {role: _split(options[role]) for role in ("mean", "log_variance", "prior_mean", "prior_log_variance")}
    columns = {"probs": _split(options["probs"]), "logits": _split(options["logits"]), "labels": options["labels"],
               "targets": _split(options["targets"]), "weights": options["weights"]}
    if input_kind(options) == GAUSSIAN:
        return {role: spec for role, spec in columns.items() if spec is not None} | gaussian
    named = [any(columns[role] is not None for role in pair) for pair in (("probs", "logits"), ("labels", "targets"))]
    if all(named):
        return columns
    guessed = guess(source.schema, label_prefixes=False)  # a label column by its exact name only
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
    return columns


def score_with_progress(scoring: Scoring, every: int | None = None, checkpoint: Checkpointer | None = None) -> None:
    """Score the source, with a progress line on stderr when asked for (by default: when it is a terminal), and
    with ``every`` a JSON line on stdout every that many rows (or with ``checkpoint`` written as it says);
    then say on stderr what deserves attention."""
    show = sys.stderr.isatty() if scoring.progress is None else scoring.progress
    bar = ProgressBar(scoring.source.total_rows) if show else None
    try:
        if every is None:
            score_source(scoring.accumulator, scoring.source, scoring.plan, batch_size=scoring.batch_size,
                         progress=bar, checkpoint=checkpoint)
        else:
            write_steps(scan_steps(scoring.accumulator, scoring.source, scoring.plan, every=every,
                                   batch_size=scoring.batch_size, progress=bar), sys.stdout)
    finally:
        if bar is not None:
            bar.close()
    say_warnings(scoring.accumulator.report())


def say_warnings(report: Any) -> None:
    """Say on stderr what in ``report`` deserves attention (unnormalized rows, ``report.warnings``)."""
    if report.metrics["unnormalized_rows"]:
        click.echo(f"streamdiv: warning: {report.metrics['unnormalized_rows']:,} rows have probabilities that do "
                   f"not sum to 1 (scored as given; --renormalize rescales them)", err=True)
    for message in report.warnings:
        click.echo(f"streamdiv: warning: {message}", err=True)


def parse_conditions(texts: tuple[str, ...], metric_set: str | None = "all", kind: str = CLASSIFICATION,
                     label_free: bool = False, names: tuple[str, ...] = METRIC_NAMES) -> list[Condition]:
    """The --fail-if conditions over ``names``, each refused unless the run computes its metric (not checked
    when ``metric_set`` is None: the states that `merge` reads, or both sides of `drift`, say what is
    computed)."""
    try:
        conditions = [Condition.parse(text, names) for text in texts]
        for condition in conditions:
            if metric_set is not None:
                condition.check_computed(metric_set, kind, label_free)
        return conditions
    except StreamdivError as error:
        raise click.BadParameter(str(error), param_hint="--fail-if") from None


def emit(report: Any, state_bytes: Callable[[], bytes], fmt: str | None, output: str | None,
         conditions: list[Condition], save_state: str | None,
         renderer: Callable[[Any, str], str] = render) -> None:
    """Print or write the report, save the state, then exit 1 if a condition holds."""
    if fmt is None:
        if output:
            fmt = SUFFIX_FORMATS.get(os.path.splitext(output)[1].lower(), "json")
        else:
            fmt = "table" if sys.stdout.isatty() else "json"
    try:
        problems = breaches(report, conditions)
    except StreamdivError as error:
        raise click.BadParameter(str(error), param_hint="--fail-if") from None
    text = renderer(report, fmt)
    if output:
        write_atomically(output, text.encode())
    else:
        click.echo(text, nl=False)
    if save_state:
        write_atomically(save_state, state_bytes())
    for line in problems:
        click.echo(f"streamdiv: {line}", err=True)
    if problems:
        sys.exit(EXIT_BREACH)


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
