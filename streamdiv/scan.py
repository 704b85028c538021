"""scan(): evaluate() as it goes, a step after each batch (or every N rows) with two reports side by side.

A mini-batch's entropy, KL or calibration error is not the stream's: the entropy of the mean prediction of a
batch differs from that of the whole, and a batch's ECE is measured over its few rows.  Each step holds the
report of the rows since the previous step alone (``batch``) beside the report of every row so far
(``running``), so a pipeline can watch both.

The running report is fed exactly the rows ``evaluate`` is; record batches are cut at the steps' row
boundaries, and the bits do not depend on where batches are cut (compensation blocks are aligned on a row's
index in the stream), so the last running report equals ``evaluate``'s bit for bit.  The batch report comes
from a second accumulator fed the same rows and replaced by an empty one at each step: its blocks start at
the step's first row, as those of ``evaluate`` over the step's rows alone, and its bits are those.

Cost: the kernels run twice over every row (once per accumulator) and each step derives two reports;
``python benchmarks/scan.py`` measures scan over evaluate in one run.
"""

from __future__ import annotations

import contextlib
import json
import numbers
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, TextIO

from .accumulator import Accumulator
from .errors import StreamdivError
from .evaluate import (ProgressCallback, Scoring, add_chunk, check_keywords, keywords_signature, open_scoring, read_chunks,
                       warn_about)
from .plan import ColumnPlan, GaussianPlan
from .report import Report
from .sources import Chunk, Source


@dataclass(frozen=True)
class ScanStep:
    """One step of :func:`scan`.

    ``rows``: rows of the source read so far (evaluated + skipped + ignored); ``batch``: the report of the
    rows read since the previous step alone; ``running``: the report of every row so far (with
    ``accumulator=``, the rows that accumulator already held too).
    """

    rows: int
    batch: Report
    running: Report

    def to_dict(self) -> dict[str, Any]:
        """``{"rows": R, "metrics": {...}, "batch": {"rows": r, "metrics": {...}}}``: the running and the batch
        report's overall metrics as ``Report.to_dict`` writes them (infinities as "inf", NaN as null), and the
        rows of this step alone; ``streamdiv score --every N`` writes one such line per step."""
        return {"rows": self.rows, "metrics": self.running.to_dict()["metrics"],
                "batch": {"rows": self.batch.rows_read, "metrics": self.batch.to_dict()["metrics"]}}


def scan(source: Any, *, every: int | None = None, **keywords: Any) -> Iterator[ScanStep]:
    """Score ``source`` as :func:`~streamdiv.evaluate` does, yielding a :class:`ScanStep` as it goes.

    Takes every keyword of :func:`~streamdiv.evaluate`, with the same meaning (both are declared once, by
    :func:`streamdiv.evaluate.open_scoring`), and ``every``: without it, a step after each batch the source
    yields (``batch_size`` rows, or about 4 MiB of decoded columns); with ``every=N``, a step at each
    multiple of N rows read and, when the rows are not a multiple of N, a last step at the end.  The last
    step's ``running`` report equals ``evaluate()``'s bit for bit; a source of no rows yields no step.

    ``every``, the columns and the source are checked at once, before the first step; invalid rows raise
    :class:`~streamdiv.InvalidRowError` as in ``evaluate`` (with ``on_invalid="error"``), and once the last
    step is consumed the same :class:`~streamdiv.StreamdivWarning` are raised as ``evaluate`` raises.  Every
    row is scored twice (see :mod:`streamdiv.scan`).

    Example::

        for step in streamdiv.scan("preds.parquet", probs="probs", labels="label", every=100_000):
            print(step.rows, step.batch.metrics["entropy"], step.running.metrics["entropy"])
    """
    step_rows = checked_every(every)
    check_keywords("scan", keywords)
    return _scanned(open_scoring(source, **keywords), step_rows)


scan.__signature__ = keywords_signature(scan, open_scoring)  # type: ignore[attr-defined]


def checked_every(every: Any) -> int | None:
    """``every`` as a number of rows: None, or a positive whole number (a bool is refused)."""
    if every is None:
        return None
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise StreamdivError(f"every must be a positive whole number of rows (or None: a step per batch), not "
                             f"{every!r}; for instance every=100_000 (--every 100000)")
    return int(every)


def _scanned(scoring: Scoring, every: int | None) -> Iterator[ScanStep]:
    last = None
    for last in scan_steps(scoring.accumulator, scoring.source, scoring.plan, every=every,
                           batch_size=scoring.batch_size, progress=scoring.progress):
        yield last
    if last is not None or scoring.accumulator.rows:  # an empty accumulator has no report to warn about
        warn_about(last.running if last is not None else scoring.accumulator.report(), stacklevel=3)


def scan_steps(accumulator: Accumulator, source: Source, plan: ColumnPlan | GaussianPlan, *,
               every: int | None = None, batch_size: int | None = None,
               progress: ProgressCallback | None = None) -> Iterator[ScanStep]:
    """The steps of scoring ``source`` into ``accumulator`` (as :func:`streamdiv.evaluate.score_source` does),
    decoding ahead on the background thread; no warnings (the command line words its own)."""
    batch = accumulator.empty_copy()
    rows = 0
    with contextlib.closing(read_chunks(source, plan, batch_size)) as chunks:
        for chunk in chunks:
            for piece in _pieces(chunk, rows, every):
                add_chunk(accumulator, plan, piece)
                add_chunk(batch, plan, piece)
                rows += piece.batch.num_rows
                if progress is not None:
                    progress(piece.batch.num_rows, piece.batch.nbytes)
                if every is None or rows % every == 0:
                    yield ScanStep(rows, batch.report(), accumulator.report())
                    batch = accumulator.empty_copy()
    if every is not None and rows % every:
        yield ScanStep(rows, batch.report(), accumulator.report())


def _pieces(chunk: Chunk, rows_before: int, every: int | None) -> Iterator[Chunk]:
    """``chunk`` cut where the rows read reach a multiple of ``every`` (whole without it); no empty piece.
    ``rows_before`` rows were read before the chunk's first."""
    total = chunk.batch.num_rows
    start = 0
    while start < total:
        stop = total if every is None else min(total, start + every - (rows_before + start) % every)
        yield Chunk(chunk.batch.slice(start, stop - start), chunk.path, chunk.first_row + start)
        start = stop


def write_steps(steps: Iterable[ScanStep], stream: TextIO) -> None:
    """Write one line of JSON per step (:meth:`ScanStep.to_dict`) to ``stream``, flushed as it comes."""
    for step in steps:
        stream.write(json.dumps(step.to_dict(), allow_nan=False) + "\n")
        stream.flush()
