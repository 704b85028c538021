"""evaluate(): read a source batch by batch, score every batch, and return the report.

Decoding runs ahead on a background thread (pyarrow releases the GIL while it decodes, the kernels are
``nogil``), so reading the next batch overlaps scoring the current one.
"""

from __future__ import annotations

import difflib
import inspect
import os
import warnings
from typing import Any, Callable, Iterator, NamedTuple, ParamSpec, Sequence, TypeVar

import numba

from .accumulator import Accumulator, Location
from .ahead import Ahead
from .checkpoint import DEFAULT_EVERY, Checkpointer, DeferredInterrupts
from .errors import ColumnTypeError, MissingColumnError, SchemaError, StreamdivError
from .kernels.layout import ROW_BLOCK
from .plan import ColumnPlan, GaussianPlan, resolve
from .report import Report
from .sources import Chunk, Source, open_source

PREFETCH_DEPTH = 2


class StreamdivWarning(UserWarning):
    """Something in the data deserves attention but did not stop the run (unnormalized rows, rows that look
    softmaxed twice: ``Report.warnings``)."""


ProgressCallback = Callable[[int, int], None]  # (rows done in this chunk, bytes of decoded data)


class Scoring(NamedTuple):
    """What :func:`evaluate` and :func:`streamdiv.scan` start from: the opened source, its column plan, the
    accumulator to feed, and how to read (``batch_size``) and report progress (``progress``)."""

    source: Source
    plan: ColumnPlan | GaussianPlan
    accumulator: Accumulator
    batch_size: int | None
    progress: ProgressCallback | None


def open_scoring(source: Any, *, probs: str | Sequence[str] | None = None,
                 logits: str | Sequence[str] | None = None, labels: str | None = None,
                 targets: str | Sequence[str] | None = None, weights: str | None = None,
                 by: str | Sequence[str] | None = None, base: str | int = "e", bins: int = 15,
                 binning: str = "uniform", eps: float | None = None, batch_size: int | None = None,
                 on_invalid: str = "error", ignore_label: Any = None, renormalize: bool = False,
                 class_names: Sequence[str] | None = None, metrics: str = "all", classwise: bool | None = None,
                 progress: ProgressCallback | None = None, accumulator: Accumulator | None = None,
                 mean: str | Sequence[str] | None = None, log_variance: str | Sequence[str] | None = None,
                 prior_mean: str | Sequence[str] | None = None,
                 prior_log_variance: str | Sequence[str] | None = None, time: str | None = None,
                 window: str | None = None) -> Scoring:
    """Open ``source``, check the columns named against it and make the accumulator (or take ``accumulator``).

    This signature is the one declaration of the keywords that :func:`evaluate` and :func:`streamdiv.scan`
    take (``takes_keywords_of`` gives it to both); :func:`evaluate`'s docstring says what each means."""
    windowed = window is not None or (accumulator is not None and accumulator.window is not None)
    if (time is None) == windowed:
        raise StreamdivError("time windows need both time= (the time column) and window= (a width such as '1d')")
    opened = open_source(source)
    plan = resolve_columns(opened, probs=probs, logits=logits, labels=labels, targets=targets, weights=weights,
                           by=by, class_names=class_names, mean=mean, log_variance=log_variance,
                           prior_mean=prior_mean, prior_log_variance=prior_log_variance, time=time)
    if accumulator is None:
        accumulator = Accumulator(class_names=plan.class_names, base=base, bins=bins, binning=binning, eps=eps,
                                  renormalize=renormalize, on_invalid=on_invalid, ignore_label=ignore_label,
                                  metrics=metrics, classwise=classwise, window=window)
    return Scoring(opened, plan, accumulator, batch_size, progress)


def check_keywords(caller: str, keywords: dict[str, Any]) -> None:
    """Refuse a keyword that :func:`open_scoring` does not take, naming the function the user called (not
    open_scoring) and the nearest keyword it does take."""
    known = [name for name, parameter in inspect.signature(open_scoring).parameters.items()
             if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
    for name in keywords:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}{hint}")


Keywords = ParamSpec("Keywords")
Result = TypeVar("Result")


def keywords_signature(function: Callable[..., Any], template: Callable[..., Any]) -> inspect.Signature:
    """``template``'s signature with ``function``'s return annotation, and ``function``'s own keyword-only
    parameters placed before ``template``'s: what help(), ``inspect`` and editors show for a function written
    as ``def function(source, *, own=..., **keywords)`` that forwards ``keywords`` to ``template``."""
    own = inspect.signature(function)
    shared = list(inspect.signature(template).parameters.values())
    extra = [p for p in own.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    positional = [p for p in shared if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    keyword_only = [p for p in shared if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return own.replace(parameters=positional + extra + keyword_only, return_annotation=own.return_annotation)


def takes_keywords_of(template: Callable[Keywords, Any]) -> Callable[[Callable[..., Result]],
                                                                   Callable[Keywords, Result]]:
    """Declare the decorated function as taking ``template``'s parameters: type checkers see them (a
    ``ParamSpec``), and so do help() and ``inspect`` (its ``__signature__``); the function itself is returned
    unwrapped."""
    def declare(function: Callable[..., Result]) -> Callable[Keywords, Result]:
        function.__signature__ = keywords_signature(function, template)  # type: ignore[attr-defined]
        return function
    return declare


@takes_keywords_of(open_scoring)
def evaluate(source: Any, *, checkpoint: str | os.PathLike | None = None, checkpoint_every: str | int = DEFAULT_EVERY,
             resume: bool = False, **keywords: Any) -> Report:
    """Score predictions against labels or soft targets in one streaming pass; with neither, the predictions
    alone (prediction_entropy, mean_confidence and ``Report.distributions``; every label metric None).

    ``source`` is a path, glob, directory, list of paths, ``"-"`` (Arrow IPC on stdin), a pyarrow Table,
    RecordBatch, RecordBatchReader or Dataset, an ``__arrow_c_stream__`` producer, a binary file object or a
    dict of numpy arrays.  ``probs``/``logits``/``targets`` name a list column, per-class columns (a list of
    names or a glob such as ``"p_*"``) or, for the binary layout, one probability column.

    Returns a :class:`~streamdiv.Report`; cross_entropy = entropy + kl_divergence, in the unit of ``base``.
    ``accumulator`` continues an existing accumulator (for instance one restored with ``from_bytes``).

    The Gaussian kind: ``mean`` and ``log_variance`` (instead of a prediction and labels) name a VAE's
    posterior per row, a list column, per-dimension columns or a glob, and ``prior_mean`` and
    ``prior_log_variance`` optionally its prior (by default the standard normal).  The metric
    ``gaussian_kl`` is then the weighted mean over rows of
    KL(N(m, diag s^2) || N(m0, diag s0^2)) = 1/2 sum_d [log(s0^2/s^2) + (s^2 + (m - m0)^2)/s0^2 - 1], in the
    unit of ``base``; ``rows``, ``weight``, ``skipped_rows`` and ``infinite_rows`` count as for predictions.
    ``batch_size`` is rows per batch; by default each batch holds about 4 MiB of decoded columns.
    ``binning="quantile"`` makes the ``bins`` calibration bins hold equal weight (their edges come from the
    data), ``"uniform"`` gives them edges k/bins.  ``metrics="loss"`` computes the loss metrics only (cross-entropy, its standard error, KL, perplexity,
    normalized entropy and the row counts; the others are None), which for hard labels against probabilities,
    and for binary predictions against labels, is a lighter pass.  ``classwise`` keeps class-wise calibration
    bins (``report.classes``, ``classwise_ece``, the Brier decomposition): by default on up to 100 classes.

    Time windows: ``time`` names a timestamp or date column and ``window`` a width (``"1d"``; ``Ns``,
    ``Nmin``, ``Nh``, ``Nd``, ``Nw``): each window [start, start + width), aligned on the Unix epoch in UTC
    (weeks on Monday 1970-01-05), is one more group key, ``window``, valued by its start as an ISO-8601 UTC
    string; ``report.series(metric, **group)`` gives a metric window by window (:mod:`streamdiv.windows`).
    With an ``accumulator``, its window is the one used: ``time`` alone names the column.
    :func:`streamdiv.scan` takes the same keywords (both are declared once, by :func:`open_scoring`).

    Checkpoints (files only): ``checkpoint`` is a path where the state and the position in the source are
    written atomically every ``checkpoint_every`` (a number of batches, or ``"30s"``, ``"5min"``, ``"1h"``)
    and on KeyboardInterrupt; ``resume=True`` continues from it (from the beginning when none is there yet),
    refusing one written for other files or options (:class:`~streamdiv.errors.CheckpointError`).  The
    report is the same bits as one uninterrupted pass; a finished scan removes its checkpoint.
    """
    check_keywords("evaluate", keywords)
    scoring = open_scoring(source, **keywords)
    checkpointer = None
    if checkpoint is not None:
        checkpointer = Checkpointer(checkpoint, scoring.source, scoring.plan, scoring.accumulator,
                                    checkpoint_every)
        if resume:
            checkpointer.resume()
    elif resume:
        raise StreamdivError("resume=True continues from a checkpoint: name it with checkpoint=")
    score_source(scoring.accumulator, scoring.source, scoring.plan, batch_size=scoring.batch_size,
                 progress=scoring.progress, checkpoint=checkpointer)
    if checkpointer is not None:
        checkpointer.finish()
    report = scoring.accumulator.report()
    warn_about(report, stacklevel=3)
    return report


def warn_about(report: Report, stacklevel: int) -> None:
    """Raise a StreamdivWarning for each thing in ``report`` that deserves attention: unnormalized rows, then
    ``report.warnings`` (``stacklevel`` as :func:`warnings.warn` counts it from here)."""
    unnormalized = report.metrics["unnormalized_rows"]
    if unnormalized:
        warnings.warn(f"{unnormalized} rows have probabilities that do not sum to 1 (scored as given; "
                      f"renormalize=True rescales them)", StreamdivWarning, stacklevel=stacklevel)
    for message in report.warnings:
        warnings.warn(message, StreamdivWarning, stacklevel=stacklevel)


def score_source(accumulator: Accumulator, source: Source, plan: ColumnPlan | GaussianPlan, *,
                 batch_size: int | None = None, progress: ProgressCallback | None = None,
                 checkpoint: Checkpointer | None = None) -> Accumulator:
    """Feed every batch of ``source`` through ``accumulator`` as ``plan`` says (``batch_size`` rows per batch,
    or about 4 MiB of decoded columns when None).  With a ``checkpoint``, the scan starts at its position
    (once resumed), moves it after every batch and writes it as often as it says, and on Ctrl-C too."""
    if checkpoint is None:
        for chunk in read_chunks(source, plan, batch_size):
            add_chunk(accumulator, plan, chunk)
            if progress is not None:
                progress(chunk.batch.num_rows, chunk.batch.nbytes)
        return accumulator
    if progress is not None and accumulator.rows:
        progress(accumulator.rows, 0)
    with DeferredInterrupts() as interrupts:
        try:
            for chunk in read_chunks(source, plan, batch_size, checkpoint.position):
                with interrupts.held():
                    add_chunk(accumulator, plan, chunk)
                    checkpoint.advance(chunk)
                if progress is not None:
                    progress(chunk.batch.num_rows, chunk.batch.nbytes)
        except KeyboardInterrupt:
            with interrupts.held():
                checkpoint.save()
            raise
    return accumulator


def read_chunks(source: Source, plan: ColumnPlan | GaussianPlan, batch_size: int | None,
                start: tuple[int, int] = (0, 0)) -> Iterator[Chunk]:
    """The batches of ``plan``'s columns of ``source`` (``batch_size`` rows each, or about 4 MiB of decoded
    columns when None) from ``start`` (part index, rows of it already read) on, decoded PREFETCH_DEPTH
    batches ahead on a background thread."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    # whole row blocks, as many for each thread: blocks split between batches, or left over in a wave of
    # the parallel lanes, run on one thread (soft K=10 end to end: 0.495 s at 3 blocks a batch, 0.456 at 4)
    chunks = source.chunks(plan.columns, batch_size, multiple_of=ROW_BLOCK * max(1, numba.get_num_threads()),
                           start=start)
    return _prefetched(chunks, PREFETCH_DEPTH)


def resolve_columns(source: Source, **columns: Any) -> ColumnPlan | GaussianPlan:
    """:func:`streamdiv.plan.resolve` against the source's schema (its first file's); a column missing there
    is refused naming that file."""
    try:
        return resolve(source.schema, **columns)
    except MissingColumnError as error:
        raise MissingColumnError(f"{source.parts[0].name}: {error}") from None


def add_chunk(accumulator: Accumulator, plan: ColumnPlan | GaussianPlan, chunk: Chunk) -> None:
    """Score one batch of a source into ``accumulator``; an error names the chunk's file, rows and columns."""
    inputs, group_columns = plan.extract(chunk.batch)
    try:
        accumulator.add_batch(inputs, dict(zip(tuple(plan.by), group_columns)),
                              Location(chunk.path, chunk.first_row, plan.column_names()),
                              class_names=plan.class_names)
    except ColumnTypeError as error:  # raised where neither the file nor the column's name is known
        role = "prediction" if error.role in ("probs", "logits") else error.role
        column = plan.column_names().get(role, error.role)
        row = f"row {chunk.first_row + error.row}, " if error.row is not None else ""
        raise SchemaError(f"{chunk.path}: {row}column {column!r}: {error}") from None


def _prefetched(chunks: Iterator[Chunk], depth: int) -> Iterator[Chunk]:
    """Run ``chunks`` on a background thread, ``depth`` batches ahead, from the first batch asked for (a
    generator, so that one never read starts no thread); its errors re-raise here."""
    yield from Ahead(lambda: chunks, depth)
