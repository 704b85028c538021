"""A class-wise cell's steps: the Neumaier step on one (sum, compensation) pair of a group's row of ``sums``,
a row's q_k into class k's bin, its observed y_k, and the unit terms that rows without weights count and add
once (see the class-wise pass, :mod:`.classwise`)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .layout import (CLASS_BIN_FIELDS, CLASS_BIN_OBSERVED, CLASS_BIN_PREDICTION, CLASS_BIN_PREDICTION_OBSERVED,
                     CLASS_BIN_PREDICTION_SQUARES, CLASS_BIN_WEIGHT)
from .primitives import _neumaier, _whole, bin_index


@njit(inline="always")
def _step(cells, slot, x):
    """primitives._neumaier on cells[slot] = (sum, compensation), one group's row of ``sums``."""
    cells[slot, 0], cells[slot, 1] = _neumaier(cells[slot, 0], cells[slot, 1], x)


@njit(inline="always")
def _add_to_class_bin(row_counts, cells, count_base, sum_base, n_class_bins, k, w, q, unit):
    """Add one row's q_k to class k's class-wise bin of q_k (its observed y_k apart: _observe; with ``unit``
    its weight 1.0 apart: _add_unit_counts); the bin."""
    b = bin_index(q, n_class_bins)
    cell = k * n_class_bins + b
    row_counts[count_base + cell] += 1
    at = sum_base + cell * CLASS_BIN_FIELDS
    if not unit:
        _step(cells, at + CLASS_BIN_WEIGHT, w)
    _step(cells, at + CLASS_BIN_PREDICTION, w * q)
    _step(cells, at + CLASS_BIN_PREDICTION_SQUARES, w * q * q)
    return b


@njit(inline="always")
def _observe(cells, sum_base, n_class_bins, k, b, w, q, y, observed_rows):
    """Add y_k (> 0) of a row whose q_k is in class k's bin b (with unit weights and hard labels, y = 1 is
    counted in ``observed_rows`` instead, see _add_unit_counts)."""
    cell = k * n_class_bins + b
    at = sum_base + cell * CLASS_BIN_FIELDS
    if observed_rows.shape[0] > 0:
        observed_rows[cell] += 1
    else:
        _step(cells, at + CLASS_BIN_OBSERVED, w * y)
    _step(cells, at + CLASS_BIN_PREDICTION_OBSERVED, w * q * y)


@njit
def _unit_cells(cells, sum_base, n_cells, soft):
    """Whether rows without weights may count their class-wise cells' unit terms and add each count once:
    every weight (and, for hard labels, observed) sum of the cells a whole number, which a Neumaier step of
    1.0 keeps exact, to the same bits as the count added at once (see scored's unit weights)."""
    for cell in range(n_cells):
        at = sum_base + cell * CLASS_BIN_FIELDS
        if not _whole(cells[at + CLASS_BIN_WEIGHT, 0]):
            return False
        if not soft and not _whole(cells[at + CLASS_BIN_OBSERVED, 0]):
            return False
    return True


@njit
def _add_unit_counts(cells, row_counts, count_base, sum_base, rows_before, observed_rows):
    """Add the counted unit terms of a call: each cell's new rows to its weight, its label rows to its
    observed sum."""
    for cell in range(rows_before.shape[0]):
        at = sum_base + cell * CLASS_BIN_FIELDS
        added = row_counts[count_base + cell] - rows_before[cell]
        if added > 0:
            _step(cells, at + CLASS_BIN_WEIGHT, np.float64(added))
        if observed_rows.shape[0] > 0 and observed_rows[cell] > 0:
            _step(cells, at + CLASS_BIN_OBSERVED, np.float64(observed_rows[cell]))
