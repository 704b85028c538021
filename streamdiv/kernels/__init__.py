"""The kernels: pure ``@njit`` passes that validate a batch's rows and add them to the state's arrays.

The package imports numpy, numba and math only; it knows nothing of Arrow, files or groups' names.  The
rooms, from the bottom up:

* ``layout``: the slot table (every count, sum, per-bin and per-class slot, its merge rule and the metric
  sets that fill it) and every offset into the state; the only kernel module that state, metrics and report
  import, with ``status``.
* ``status``: the per-row status codes and what each says of a row (no numba).
* ``elementary``: a vectorisable log, log1p and exp (no SVML here), and float/bit casts.
* ``primitives``: the compensated add, the calibration bin of a confidence, argmax, a row's weight.
* ``lanes``: four compensated sums stepped as one vector of four float64 lanes, each with its scalar chain's
  bits.
* ``gaussian``: the Gaussian kind's pass (a VAE's posterior against its prior), rows of its own slot table.
* ``probabilities``, ``logits``, ``soft``, ``binary``: one input family each: the *tile passes* that compute
  each row's terms of a tile of rows (a few hundred to a few thousand) into a row table, vectorised across
  rows, then score the tile's rows into the scored-row table.
* ``scored``: the scored-row table and the call-free loops that add its valid rows to the state, in row order.
* ``loss``: the loss metrics alone (``metrics="loss"``): one log per row, the loss slots only.
* ``column_loss``: the loss metrics of probabilities held one column per class, read where the columns lie.
* ``runs``: stretches of rows of one group, added with their running sums in local variables.
* ``classwise``: the class-wise pass, run after a family's pass over the same rows: each accepted row's
  predicted distribution into the class masses and the class-wise calibration bins; ``classwise_cells``,
  the steps of one class-wise cell.
* ``general``: the per-row path for renormalized rows and soft targets with logits.
* ``predictions``: the label-free pass (predictions alone, neither labels nor targets), on the families'
  tile passes.
* ``table``: the multi-class span: which family's tile passes score a stretch of rows.
* ``blocks``: the 16,384-row compensation blocks, their lanes, and the cached entry points.

Every sum is accumulated row by row with Neumaier's compensated summation inside fixed blocks of the stream
(``blocks.ROW_BLOCK`` rows, aligned on the row's index in the stream), and the blocks' partials are added in
block order; so a result does not depend on how the stream was cut into batches nor on how many threads ran
the blocks, to the bit.  Accumulators must never be compiled with ``fastmath``: ``reassoc`` deletes the
compensation.

What the measurements taught, each written where it applies:

* a loop small and free of calls on every path, rare ones included: the same lines inside one large loop
  body ran 1.5-2x slower;
* for rows of one group (no groups, or a run of a sorted group column), the running (sum, compensation)
  pairs in local variables, not in ``sums``: LLVM cannot tell ``sums`` from the other arrays the loop
  writes, so each step waited on a store;
* one loop per value of a flag (``is_logits``, bad values present), not a test inside a loop that should
  vectorise: LLVM does not take the test out, and the loop then does not vectorise; the same holds for a
  scalar loop of running sums whose path for another input calls a function (the class-wise passes);
* several running (sum, compensation) pairs of one row as the lanes of one vector (``lanes``): LLVM does
  not pack independent scalar chains itself;
* for rows of a few classes, per-value terms in flat loops, not a vectorised loop per row, which spends its
  time in horizontal sums and its scalar remainder.

Adding a per-row statistic touches these places, and no others:

1. ``layout``: one ``Slot`` in SUM_SLOTS (or COUNT_SLOTS, or BIN_FIELD_SLOTS) and its position constant;
2. the family's scoring of a row, if the statistic needs a new per-row term: a column of the scored table
   (``scored.SCORED_*``) and where each family fills it (``_store_scored``'s callers);
3. the accumulation: ``scored._add_row`` and ``scored._accumulate_scored_rows_of_group`` (and the per-row
   paths of ``general`` and ``binary`` that call ``_add_row``);
4. ``metrics``: the ``Metric`` that reads it, with its ``reads``.
Merging, saving, loading and the state's header follow from the layout.
"""

from __future__ import annotations

import os

from .numba_cache import guard_sources

# Every source of the package stamps every cached kernel: a change to any one module recompiles the kernels of
# all of them, where numba alone checks only the defining file (numba issue #1833).  It runs before the first
# @njit(cache=True) of the package (numba picks a function's cache stamp when it is decorated): importing any
# module of the package runs this first.
KERNEL_SOURCE_DIRECTORIES: tuple[str, ...] = (os.path.dirname(os.path.abspath(__file__)),)
guard_sources(KERNEL_SOURCE_DIRECTORIES)
