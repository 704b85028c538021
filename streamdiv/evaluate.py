"""evaluate(): read a source batch by batch, score every batch, and return the report.

Decoding runs ahead on a background thread (pyarrow releases the GIL while it decodes, the kernels are
``nogil``), so reading the next batch overlaps scoring the current one.
"""

from __future__ import annotations

import queue
import threading
import warnings
from typing import Any, Callable, Iterator, Sequence

import numba

from .accumulator import Accumulator, Location
from .kernels.layout import ROW_BLOCK
from .plan import ColumnPlan, GaussianPlan, resolve
from .report import Report
from .sources import Chunk, Source, open_source

PREFETCH_DEPTH = 2


class StreamdivWarning(UserWarning):
    """Something in the data deserves attention but did not stop the run (unnormalized rows, rows that look
    softmaxed twice: ``Report.warnings``)."""


ProgressCallback = Callable[[int, int], None]  # (rows done in this chunk, bytes of decoded data)


def evaluate(source: Any, *, probs: str | Sequence[str] | None = None, logits: str | Sequence[str] | None = None,
             labels: str | None = None, targets: str | Sequence[str] | None = None, weights: str | None = None,
             by: str | Sequence[str] | None = None, base: str | int = "e", bins: int = 15,
             binning: str = "uniform", eps: float | None = None, batch_size: int | None = None,
             on_invalid: str = "error",
             ignore_label: Any = None, renormalize: bool = False, class_names: Sequence[str] | None = None,
             metrics: str = "all", classwise: bool | None = None, progress: ProgressCallback | None = None,
             accumulator: Accumulator | None = None, mean: str | Sequence[str] | None = None,
             log_variance: str | Sequence[str] | None = None, prior_mean: str | Sequence[str] | None = None,
             prior_log_variance: str | Sequence[str] | None = None) -> Report:
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
    """
    opened = open_source(source)
    plan = resolve(opened.schema, probs=probs, logits=logits, labels=labels, targets=targets, weights=weights,
                   by=by, class_names=class_names, mean=mean, log_variance=log_variance, prior_mean=prior_mean,
                   prior_log_variance=prior_log_variance)
    if accumulator is None:
        accumulator = Accumulator(class_names=plan.class_names, base=base, bins=bins, binning=binning, eps=eps,
                                  renormalize=renormalize, on_invalid=on_invalid, ignore_label=ignore_label,
                                  metrics=metrics, classwise=classwise)
    score_source(accumulator, opened, plan, batch_size=batch_size, progress=progress)
    report = accumulator.report()
    unnormalized = report.metrics["unnormalized_rows"]
    if unnormalized:
        warnings.warn(f"{unnormalized} rows have probabilities that do not sum to 1 (scored as given; "
                      f"renormalize=True rescales them)", StreamdivWarning, stacklevel=2)
    for message in report.warnings:
        warnings.warn(message, StreamdivWarning, stacklevel=2)
    return report


def score_source(accumulator: Accumulator, source: Source, plan: ColumnPlan | GaussianPlan, *,
                 batch_size: int | None = None, progress: ProgressCallback | None = None) -> Accumulator:
    """Feed every batch of ``source`` through ``accumulator`` as ``plan`` says (``batch_size`` rows per batch,
    or about 4 MiB of decoded columns when None)."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    group_names = tuple(plan.by)
    column_names = plan.column_names()
    # whole row blocks, as many for each thread: blocks split between batches, or left over in a wave of
    # the parallel lanes, run on one thread (soft K=10 end to end: 0.495 s at 3 blocks a batch, 0.456 at 4)
    chunks = source.chunks(plan.columns, batch_size, multiple_of=ROW_BLOCK * max(1, numba.get_num_threads()))
    for chunk in _prefetched(chunks, PREFETCH_DEPTH):
        inputs, group_columns = plan.extract(chunk.batch)
        accumulator.add_batch(inputs, dict(zip(group_names, group_columns)),
                              Location(chunk.path, chunk.first_row, column_names), class_names=plan.class_names)
        if progress is not None:
            progress(chunk.batch.num_rows, chunk.batch.nbytes)
    return accumulator


def _prefetched(chunks: Iterator[Chunk], depth: int) -> Iterator[Chunk]:
    """Run ``chunks`` on a background thread, ``depth`` batches ahead; its errors re-raise here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        buffer.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as error:  # handed to the consumer, which re-raises it
            buffer.put(error)

    thread = threading.Thread(target=produce, name="streamdiv-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(0.05)
