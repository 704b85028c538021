"""Arrays of a batch that the kernels read, filled a block of rows at a time by the thread that scores the
block, rather than whole on the main thread before any kernel starts.

Two conversions are deferred so: integer labels of another width cast to the kernels' int64, and per-class
columns interleaved into one rows x K array (``kernels.interleave``).  Done whole, each was a pass over the
batch on the main thread while the scoring threads waited (K = 10 in memory: 6 ms of a 62 ms run for the
labels; binary from Parquet: 31 ms of casts); a block's rows, filled just before they are scored, are
converted on every thread and are still in cache when the kernel reads them.  ``driver.score_batch`` fills
every row range before it scores it, and nothing else reads these arrays before then; the values are those
of the whole-batch conversions, so the bits are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .kernels.interleave import interleave_columns, interleaves

DEFERRED_ROWS = 1 << 16  # labels shorter than this are cast whole: nothing to share between threads


@dataclass(frozen=True)
class RowFill:
    """``destination[lo:hi]`` from ``sources``: a cast of one integer array, or the per-class columns
    interleaved (their first values at ``addresses``)."""

    destination: np.ndarray
    sources: tuple[np.ndarray, ...]
    addresses: np.ndarray | None = None  # the interleaved columns' buffers; None for a cast

    @property
    def interleaves(self) -> bool:
        """Whether this fill interleaves per-class columns (else it casts labels)."""
        return self.addresses is not None

    def fill(self, lo: int, hi: int) -> None:
        if hi <= lo:
            return
        if self.addresses is None:
            np.copyto(self.destination[lo:hi], self.sources[0][lo:hi], casting="unsafe")
        else:
            interleave_columns(self.addresses + lo * self.destination.itemsize, self.destination[lo:hi])


def cast_labels(values: np.ndarray, fills: list[RowFill] | None) -> np.ndarray:
    """``values`` as int64: at once, or (with ``fills``, for a long batch) an array that a RowFill fills."""
    if values.dtype == np.int64:
        return values
    if fills is None or len(values) < DEFERRED_ROWS:
        return values.astype(np.int64)
    destination = np.empty(len(values), dtype=np.int64)
    fills.append(RowFill(destination, (values,)))
    return destination


def stacked(columns: Sequence[np.ndarray], fills: list[RowFill] | None,
            stack: Callable[[list[np.ndarray]], np.ndarray]) -> np.ndarray:
    """The per-class columns as one rows x K array: ``stack(columns)`` at once, or (with ``fills``, for
    columns that ``kernels.interleave`` serves) an array that a RowFill fills.  Short columns are deferred
    too, unlike short labels: a kernel that reads the columns where they lie (``kernels.column_loss``) finds
    them through that RowFill, and skips it."""
    columns = list(columns)
    if fills is None or not interleaves(columns):
        return stack(columns)
    destination = np.empty((len(columns[0]), len(columns)), dtype=columns[0].dtype)
    addresses = np.array([column.ctypes.data for column in columns], dtype=np.int64)
    fills.append(RowFill(destination, tuple(columns), addresses))
    return destination


def filler(fills: Sequence[RowFill]) -> Callable[[int, int], None] | None:
    """One call that fills the rows [lo, hi) of every deferred array, or None when there are none."""
    if not fills:
        return None

    def fill(lo: int, hi: int) -> None:
        for row_fill in fills:
            row_fill.fill(lo, hi)
    return fill
