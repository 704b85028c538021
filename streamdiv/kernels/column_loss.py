"""The loss alone (``metrics="loss"``) for probabilities held one column per class, read where the columns
lie: no rows x K copy of them first.

The columns are found by their buffers' addresses (``columns[k]`` is the address of class k's first value, of
``pred``'s dtype), so one compiled function serves every K.  ``pred`` itself is the rows x K array the
columns would be interleaved into (``kernels.interleave``): this pass reads its shape and dtype, never its
values.  A tile's loss table is built column by column, each column's values of the tile read once, in order,
in a loop over rows that vectorises; a row's sum still adds its values in class order, so the table, and
the accumulation that ``loss`` runs on it, are those of ``loss._loss_tile_terms`` on the stacked rows, to the
bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elementary import fast_log
from .interleave import _pointer_like
from .loss import _accumulate_loss
from .primitives import _tile_rows
from .probabilities import N_ROW_TERMS, ROW_LOG_Q_LABEL, ROW_Q_LABEL, ROW_STATUS, ROW_TOTAL
from .status import LABEL_OUT_OF_RANGE, OK, PREDICTION_NAN, PREDICTION_OUT_OF_RANGE


@njit(error_model="numpy")
def _column_loss_terms(columns, pred, labels, start, stop, row_terms):
    """Row table columns ROW_STATUS, ROW_TOTAL, ROW_Q_LABEL and ROW_LOG_Q_LABEL for the rows [start, stop),
    as _loss_tile_terms gives them: the status a label outside [0, K) before a problem in the prediction (a
    NaN anywhere before a value outside [0, 1]); q_y of such a label is q_0."""
    n_classes = pred.shape[1]
    n = stop - start
    totals = row_terms[ROW_TOTAL]
    q_label = row_terms[ROW_Q_LABEL]
    for j in range(n):
        totals[j] = 0.0
        y = labels[start + j]
        row_terms[ROW_STATUS, j] = LABEL_OUT_OF_RANGE if (y < 0 or y >= n_classes) else OK
    bad = 0
    for k in range(n_classes):  # writes one array only, so that it vectorises
        column = _pointer_like(columns[k], pred)
        for j in range(n):
            v = np.float64(column[start + j])
            bad += 0 if (v >= 0.0 and v <= 1.0) else 1
            totals[j] += v
    for j in range(n):  # one value a row, from the label's column
        y = labels[start + j]
        y = y if (y >= 0 and y < n_classes) else 0
        q_label[j] = np.float64(_pointer_like(columns[y], pred)[start + j])
    if bad:  # rare: which rows, and which problem
        for j in range(n):
            if row_terms[ROW_STATUS, j] == OK:
                row_terms[ROW_STATUS, j] = _row_problem(columns, pred, start + j)
    log_qy = row_terms[ROW_LOG_Q_LABEL]
    for j in range(n):
        v = q_label[j]
        log_qy[j] = fast_log(v) if v > 0.0 else -math.inf


@njit
def _row_problem(columns, pred, i):
    """Row i's status from its values: PREDICTION_NAN if one is NaN, else PREDICTION_OUT_OF_RANGE if one lies
    outside [0, 1], else OK."""
    code = OK
    for k in range(pred.shape[1]):
        v = np.float64(_pointer_like(columns[k], pred)[i])
        if v != v:
            return PREDICTION_NAN
        if not (v >= 0.0 and v <= 1.0):
            code = PREDICTION_OUT_OF_RANGE
    return code


@njit(error_model="numpy")
def column_loss_span(columns, pred, labels, weights, has_weights, group_ids, has_groups, status, eps,
                     prediction_tolerance, n_bins, counts, sums, lo, hi):
    """The loss alone for the rows [lo, hi) of hard labels against per-class columns, in row order: the
    accumulation of loss._loss_span."""
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    tile = _tile_rows(pred.shape[1], False)
    row_terms = np.empty((N_ROW_TERMS, tile))
    for start in range(lo, hi, tile):
        stop = min(start + tile, hi)
        _column_loss_terms(columns, pred, labels, start, stop, row_terms)
        _accumulate_loss(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps,
                         prediction_tolerance, n_bins, pred.shape[1], counts, sums, row_terms, start, stop)
