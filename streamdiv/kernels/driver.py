"""The kernels' Python side: the bundles they take, the lanes of blocks that run at once, and the one call
that scores a batch into a state's arrays (``score_batch``), choosing the entry point of its input family.

Parallelism is Python threads over ``nogil`` kernels: the full blocks of a batch are scored at once, one per
lane, each into its own block partial, and added into the totals in block order; so the bits do not depend
on the thread count.  The kernels themselves are serial, so each family compiles once, without numba's
parallel machinery, and no OpenMP runtime is started (which also keeps fork()ed children safe).
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import numba
import numpy as np

from . import blocks
from .layout import ROW_BLOCK
from .scored import N_SCORED


class Batch(NamedTuple):
    """One batch's arrays as the kernels read them; an absent input is an empty array of the present one's type."""

    pred: np.ndarray  # rows x K probabilities or logits; 1-D for one binary column
    labels: np.ndarray  # int64 class indices (empty with soft targets)
    targets: np.ndarray  # rows x K soft targets (1-D binary), or empty
    weights: np.ndarray  # float64, or empty (unit weights)
    group_ids: np.ndarray  # int64 group of each row, or empty (one group, id 0)
    status: np.ndarray  # uint8 per row: read, and written where the kernel finds a problem
    # int64 addresses of the per-class columns whose values pred's rows are, for a family that reads them
    # there (pred then left unfilled); else empty
    pred_columns: np.ndarray


class GaussianBatch(NamedTuple):
    """One batch of the Gaussian kind: rows x dimensions arrays of one dtype; an absent prior column is an
    empty (0, 0) array of that dtype (the standard normal's mean 0 or log variance 0)."""

    mean: np.ndarray
    log_variance: np.ndarray
    prior_mean: np.ndarray
    prior_log_variance: np.ndarray
    weights: np.ndarray  # float64, or empty (unit weights)
    group_ids: np.ndarray  # int64 group of each row, or empty (one group, id 0)
    status: np.ndarray  # uint8 per row: read, and written where the kernel finds a problem


class Settings(NamedTuple):
    is_logits: bool
    eps: float  # 0.0: no clipping
    renormalize: bool
    prediction_tolerance: float
    target_tolerance: float
    n_bins: int  # top-label bins
    class_bins: int  # class-wise bins per class: 0 with class-wise calibration off


class Partial(NamedTuple):
    """A block partial: counts, sums, the groups marked as in the block, and the list of them (count in
    touched[0])."""

    counts: np.ndarray
    sums: np.ndarray
    marks: np.ndarray
    touched: np.ndarray


class Family(NamedTuple):
    span: Callable  # the entry point scoring the rows of one block into a partial
    score_rows: Callable | None  # scoring alone into a scored table, for wide rows on every thread
    reads_columns: bool = False  # reads per-class columns where they lie (Batch.pred_columns), not pred


def family_for(*, binary: bool, is_logits: bool, soft: bool, renormalize: bool, loss_only: bool,
               label_free: bool = False, per_class: bool = False) -> Family:
    """The entry point that serves a layout (hard labels, soft targets, logits, binary, loss alone; with
    ``label_free``, the predictions alone, for which no loss pass exists; with ``per_class``, predictions
    held one column per class, which the loss of probabilities reads where they lie)."""
    if label_free:
        if loss_only:
            raise ValueError("the loss pass needs labels or targets")
        if binary:
            return Family(blocks.label_free_binary, None)
        if renormalize:
            return Family(blocks.label_free_rows, None)
        return Family(blocks.label_free_logits if is_logits else blocks.label_free_probabilities, None)
    if binary:
        if soft:
            return Family(blocks.binary_soft, None)
        return Family(blocks.binary_labels_loss if loss_only else blocks.binary_labels, None)
    if renormalize or (soft and is_logits):
        return Family(blocks.row_by_row, None)
    if soft:
        return Family(blocks.soft_probabilities, blocks.score_soft_probabilities)
    if is_logits:
        return Family(blocks.hard_logits, blocks.score_hard_logits)
    if loss_only:
        if per_class:
            return Family(blocks.hard_columns_loss, None, reads_columns=True)
        return Family(blocks.hard_probabilities_loss, None)
    return Family(blocks.hard_probabilities, blocks.score_hard_probabilities)


GAUSSIAN_FAMILY = Family(blocks.gaussian_kl, None)  # the Gaussian kind's one family, for any settings


def new_partial(capacity: int, n_count_slots: int, n_sum_slots: int) -> Partial:
    return Partial(np.zeros((capacity, n_count_slots), dtype=np.int64), np.zeros((capacity, n_sum_slots, 2)),
                   np.zeros(capacity, dtype=np.uint8), np.zeros(ROW_BLOCK + 1, dtype=np.int64))


class Lanes:
    """One block partial per lane, for the full blocks of a batch scored at once.

    Lanes cost (groups x slots) of memory each, so there are fewer of them, or none (every block then runs
    on the calling thread), when there are many groups; the result is the same bits either way."""

    BUDGET_BYTES = 64 << 20
    # Blocks per wave: the threads wait for each other at the end of a wave, so a wave holds a whole batch of a
    # million rows (64 blocks of 16,384) within BUDGET_BYTES of lanes; with 16 a wave, the waits cost 3 % of the
    # in-memory K = 10 loss metrics on 2 threads (timed alternately with 64 in one process, on the same arrays)
    MAX_LANES = 64

    def __init__(self, capacity: int, n_count_slots: int, n_sum_slots: int, lanes: int):
        self.partials = [new_partial(capacity, n_count_slots, n_sum_slots) for _ in range(lanes)]
        self.shape = (lanes, capacity, n_count_slots, n_sum_slots)

    @classmethod
    def count_for(cls, capacity: int, n_count_slots: int, n_sum_slots: int, n_rows: int) -> int:
        threads = scoring_threads()
        if threads < 2 or n_rows < 2 * ROW_BLOCK:
            return 0
        per_lane = capacity * (n_count_slots + 2 * n_sum_slots + 1) * 8
        lanes = min(cls.MAX_LANES, max(threads, n_rows // ROW_BLOCK), cls.BUDGET_BYTES // per_lane)
        return lanes if lanes >= 2 else 0


def scoring_threads() -> int:
    """Threads that score a batch: numba's thread count (NUMBA_NUM_THREADS, ``numba.set_num_threads``)."""
    return max(1, numba.get_num_threads())


# A span shorter than a block is scored on every thread when it holds at least this many values: about 0.5 ms
# of work on one thread, against the tens of microseconds that handing work to a thread costs.
PARALLEL_SCORING_VALUES = 1 << 18

_pool: tuple[int, int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _run_on_threads(task: Callable[[int], None], n_tasks: int, threads: int) -> None:
    """Run task(0) ... task(n_tasks - 1) on ``threads`` threads (this one among them), each thread claiming
    the next task as it becomes free: a thread that something else preempts holds up one task only."""
    global _pool
    helpers = min(threads, n_tasks) - 1
    claims = itertools.count()

    def work() -> None:
        for j in iter(claims.__next__, None):
            if j >= n_tasks:
                return
            task(j)

    if helpers <= 0:
        work()
        return
    with _pool_lock:  # a pool per process (a fork()ed child gets its own) and per thread count
        if _pool is None or _pool[:2] != (os.getpid(), helpers):
            _pool = (os.getpid(), helpers, ThreadPoolExecutor(helpers, thread_name_prefix="streamdiv"))
        pool = _pool[2]
    futures = [pool.submit(work) for _ in range(helpers)]
    work()
    for future in futures:
        future.result()


def score_batch(family: Family, batch: Batch, settings: Settings, counts: np.ndarray, sums: np.ndarray,
                open_block: Partial, lanes: Lanes | None, first_row: int,
                fill: Callable[[int, int], None] | None = None) -> None:
    """Score every row of ``batch`` (whose first row is row ``first_row`` of the stream) into the totals
    (``counts``, ``sums``) and the open block.  Rows before the batch's first full block and after its last go
    into the open block, closed into the totals where a block ends; the full blocks are scored at once on the
    lanes, in waves, and closed in block order.  ``fill(lo, hi)``, when given, fills the batch's deferred
    arrays (``streamdiv.row_fills``) for the rows [lo, hi), on the thread that scores them, just before."""
    fill = fill if fill is not None else _nothing_to_fill
    n_rows = batch.status.shape[0]
    threads = scoring_threads()
    n_lanes = len(lanes.partials) if lanes is not None else 0
    head = min(n_rows, (ROW_BLOCK - first_row % ROW_BLOCK) % ROW_BLOCK)
    full = (n_rows - head) // ROW_BLOCK
    if n_lanes < 2 or full < 2:
        head, full = n_rows, 0
    _score_serially(family, batch, settings, counts, sums, open_block, first_row, 0, head, threads, fill)
    for wave in range(0, full, max(n_lanes, 1)):
        width = min(n_lanes, full - wave)
        starts = [head + (wave + j) * ROW_BLOCK for j in range(width)]

        def block(j: int) -> None:
            fill(starts[j], starts[j] + ROW_BLOCK)
            family.span(batch, settings, lanes.partials[j], starts[j], starts[j] + ROW_BLOCK)

        _run_on_threads(block, width, threads)
        for j in range(width):  # in block order
            blocks.close_block(counts, sums, lanes.partials[j])
    _score_serially(family, batch, settings, counts, sums, open_block, first_row, head + full * ROW_BLOCK, n_rows,
                    threads, fill)


def _nothing_to_fill(lo: int, hi: int) -> None:
    return None


def _score_serially(family: Family, batch: Batch, settings: Settings, counts: np.ndarray, sums: np.ndarray,
                    open_block: Partial, first_row: int, lo: int, hi: int, threads: int,
                    fill: Callable[[int, int], None]) -> None:
    """Rows [lo, hi) into the open block, a block's worth at most at a time, closing each block that ends."""
    while lo < hi:
        stop = min(hi, lo + ROW_BLOCK - (first_row + lo) % ROW_BLOCK)
        if (family.score_rows is not None and threads > 1
                and (stop - lo) * batch.pred.shape[1] >= PARALLEL_SCORING_VALUES):
            _score_wide_rows(family, batch, settings, open_block, lo, stop, threads, fill)
        else:
            fill(lo, stop)
            family.span(batch, settings, open_block, lo, stop)
        if (first_row + stop) % ROW_BLOCK == 0:
            blocks.close_block(counts, sums, open_block)
        lo = stop


def _score_wide_rows(family: Family, batch: Batch, settings: Settings, open_block: Partial, lo: int, stop: int,
                     threads: int, fill: Callable[[int, int], None]) -> None:
    """A span of wide rows, shorter than a block: its rows are scored on every thread, each into its own
    columns of one table, then added in row order on this thread.  Wide batches (K = 1000: 1048 rows of 4 MiB)
    never hold a full block, so they would otherwise run on one."""
    scored = np.empty((N_SCORED, stop - lo))
    share = -(-(stop - lo) // (threads * 64)) * 64  # whole tiles of 64 rows

    def part(j: int) -> None:
        start = min(stop, lo + j * share)
        fill(start, min(stop, start + share))
        family.score_rows(batch, settings, start, min(stop, start + share), scored, start - lo)

    _run_on_threads(part, threads, threads)
    blocks.add_scored(batch, settings, scored, open_block, lo, stop)
