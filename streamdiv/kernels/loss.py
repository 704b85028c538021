"""The loss alone: cross-entropy of hard labels against probabilities, for ``metrics="loss"``.

The same sums as the full pass for the slots the loss metrics read (weight, cross-entropy, its squares and
finite weight, KL = cross-entropy, class masses), added in the same order, so the same bits; no prediction
entropy, argmax, Brier, bins or double-softmax count, hence no log per value: one flat range check, each row's
sum, and one log per row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elementary import fast_log
from .lanes import lane, neumaier4, pack4
from .layout import (CLIPPED, CROSS_ENTROPY, CROSS_ENTROPY_SQUARES, CROSS_ENTROPY_WEIGHT, IGNORED, INFINITE, KL,
                     ROWS, SKIPPED, UNNORMALIZED, WEIGHT, class_mass_slot)
from .primitives import _add, _first_problem, _neumaier, _reject, _row_weight, _tile_rows
from .probabilities import (N_ROW_TERMS, ROW_LOG_Q_LABEL, ROW_Q_LABEL, ROW_STATUS, ROW_TOTAL,
                            _gather_label_probabilities)
from .runs import _next_stretch
from .scored import _add_label_counts, _add_pass_counts, _counts_labels, _unit_slots
from .status import (CODE_IGNORED, LABEL_OUT_OF_RANGE, OK, PREDICTION_NAN, PREDICTION_OUT_OF_RANGE,
                     WEIGHT_NEGATIVE_OR_NAN)

@njit(error_model="numpy")
def _loss_tile_terms(pred, labels, start, stop, row_terms):
    """Row table columns ROW_STATUS, ROW_TOTAL, ROW_Q_LABEL and ROW_LOG_Q_LABEL for the rows [start, stop):
    a flat range check of every value (vectorised), each row's sum in class order, then q_y and log q_y.
    The status is the row's verdict, as the full pass gives it: a label outside [0, K) before any problem in
    the prediction."""
    n_classes = pred.shape[1]
    flat = pred[start:stop].reshape(-1)
    bad = 0
    for f in range(flat.shape[0]):
        v = np.float64(flat[f])
        bad += 0 if (v >= 0.0 and v <= 1.0) else 1
    for i in range(start, stop):
        total = 0.0
        for k in range(n_classes):
            total += np.float64(pred[i, k])
        row_terms[ROW_TOTAL, i - start] = total
        y = labels[i]
        row_terms[ROW_STATUS, i - start] = LABEL_OUT_OF_RANGE if (y < 0 or y >= n_classes) else OK
    if bad:  # rare: which rows, and which problem (a loop of its own)
        for i in range(start, stop):
            if row_terms[ROW_STATUS, i - start] != OK:
                continue
            for k in range(n_classes):
                v = np.float64(pred[i, k])
                if not (v >= 0.0 and v <= 1.0):
                    row_terms[ROW_STATUS, i - start] = _first_problem(pred[i], PREDICTION_NAN,
                                                                      PREDICTION_OUT_OF_RANGE)
                    break
    _gather_label_probabilities(pred, labels, start, stop, row_terms)
    q_label = row_terms[ROW_Q_LABEL]
    log_qy = row_terms[ROW_LOG_Q_LABEL]
    for j in range(stop - start):  # without _label_logs' JS midpoints, which the loss does not read: 1 ns/row
        v = q_label[j]
        log_qy[j] = fast_log(v) if v > 0.0 else -math.inf


@njit(error_model="numpy")
def _accumulate_loss_rows(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps,
                          prediction_tolerance, n_bins, counts, sums, row_terms, first, start, stop):
    """Add the rows [start, stop) of a loss tile's row table (row i in column i - first) in row order:
    H(P,Q) = -log q_y (q_y clipped to eps when clipping), its square, the weights, KL = H(P,Q), and the
    label's class mass."""
    class_mass = class_mass_slot(n_bins)
    for i in range(start, stop):
        g = group_ids[i] if has_groups else 0  # the row preamble, written out: see _accumulate_multiclass_rows
        code = status[i]
        if code == CODE_IGNORED:
            counts[g, IGNORED] += 1
            continue
        if code != OK:
            counts[g, SKIPPED] += 1
            continue
        w = _row_weight(weights, has_weights, i)
        if w < 0.0:
            _reject(status, counts, g, i, WEIGHT_NEGATIVE_OR_NAN)
            continue
        j = i - first
        code = int(row_terms[ROW_STATUS, j])
        if code != OK:
            _reject(status, counts, g, i, code)
            continue
        clipped = row_terms[ROW_Q_LABEL, j] < eps
        cross = -log_eps if clipped else -row_terms[ROW_LOG_Q_LABEL, j]
        _add(sums, g, class_mass + labels[i], w)
        counts[g, ROWS] += 1
        _add(sums, g, WEIGHT, w)
        if cross == math.inf:
            counts[g, INFINITE] += 1
        else:
            _add(sums, g, CROSS_ENTROPY, w * cross)
            _add(sums, g, CROSS_ENTROPY_SQUARES, w * cross * cross)
            _add(sums, g, CROSS_ENTROPY_WEIGHT, w)
            _add(sums, g, KL, w * cross)
        counts[g, UNNORMALIZED] += abs(row_terms[ROW_TOTAL, j] - 1.0) > prediction_tolerance
        counts[g, CLIPPED] += clipped


@njit(error_model="numpy")
def _accumulate_loss_rows_of_group(labels, weights, has_weights, status, eps, log_eps, prediction_tolerance,
                                   n_bins, n_classes, counts, sums, g, row_terms, first, start, stop):
    """_accumulate_loss_rows for rows all of group g (see _next_stretch), with the running (sum,
    compensation) pairs in local variables (see _accumulate_scored_rows_of_group): 13.8 -> 11.8 ns/row at K =
    10 on one thread.  KL takes the cross-entropy's pair at the end: the same steps on the same values, so the
    same bits.  Unit weights and labels are counted, as in _accumulate_scored_rows_of_group
    (benchmarks/kernel.py, one thread: binary 10.4 -> 9.0 ns/row, K = 10 11.7 -> 9.7)."""
    class_mass = class_mass_slot(n_bins)
    unit = _unit_slots(sums, g, n_bins, has_weights)  # the slots it does not fill hold 0: whole
    counted = _counts_labels(sums, g, class_mass, n_classes, stop - start, unit)
    if counted and _all_valid(status, row_terms, first, start, stop):
        _accumulate_valid_unit_rows(labels, eps, log_eps, prediction_tolerance, class_mass, n_classes, counts,
                                    sums, g, row_terms, first, start, stop)
        return
    label_counts = np.zeros(n_classes if counted else 0, dtype=np.int64)
    weight, weight_c = sums[g, WEIGHT, 0], sums[g, WEIGHT, 1]
    cross_s, cross_c = sums[g, CROSS_ENTROPY, 0], sums[g, CROSS_ENTROPY, 1]
    squares_s, squares_c = sums[g, CROSS_ENTROPY_SQUARES, 0], sums[g, CROSS_ENTROPY_SQUARES, 1]
    finite_s, finite_c = sums[g, CROSS_ENTROPY_WEIGHT, 0], sums[g, CROSS_ENTROPY_WEIGHT, 1]
    rows = ignored = skipped = infinite = unnormalized = clipped_rows = 0
    for i in range(start, stop):
        code = status[i]
        if code == CODE_IGNORED:
            ignored += 1
            continue
        if code != OK:
            skipped += 1
            continue
        w = _row_weight(weights, has_weights, i)
        if w < 0.0:
            status[i] = WEIGHT_NEGATIVE_OR_NAN
            skipped += 1
            continue
        j = i - first
        code = int(row_terms[ROW_STATUS, j])
        if code != OK:
            status[i] = code
            skipped += 1
            continue
        clipped = row_terms[ROW_Q_LABEL, j] < eps
        cross = -log_eps if clipped else -row_terms[ROW_LOG_Q_LABEL, j]
        if counted:
            label_counts[labels[i]] += 1
        else:
            _add(sums, g, class_mass + labels[i], w)
        rows += 1
        if not unit:
            weight, weight_c = _neumaier(weight, weight_c, w)
        if cross == math.inf:
            infinite += 1
        else:
            cross_s, cross_c = _neumaier(cross_s, cross_c, w * cross)
            squares_s, squares_c = _neumaier(squares_s, squares_c, w * cross * cross)
            if not unit:
                finite_s, finite_c = _neumaier(finite_s, finite_c, w)
        unnormalized += abs(row_terms[ROW_TOTAL, j] - 1.0) > prediction_tolerance
        clipped_rows += clipped
    for slot, total, compensation in ((WEIGHT, weight, weight_c), (CROSS_ENTROPY, cross_s, cross_c),
                                      (CROSS_ENTROPY_SQUARES, squares_s, squares_c),
                                      (CROSS_ENTROPY_WEIGHT, finite_s, finite_c), (KL, cross_s, cross_c)):
        sums[g, slot, 0] = total
        sums[g, slot, 1] = compensation
    if unit and rows:
        _add(sums, g, WEIGHT, np.float64(rows))
        _add(sums, g, CROSS_ENTROPY_WEIGHT, np.float64(rows - infinite))
    _add_label_counts(sums, g, class_mass, label_counts)
    _add_pass_counts(counts, g, rows, ignored, skipped, infinite, 0, unnormalized, clipped_rows, 0)


@njit(error_model="numpy")
def _all_valid(status, row_terms, first, start, stop):
    """Whether every row of [start, stop) is valid: no problem found before the kernel (status) nor in its
    loss table (ROW_STATUS).  Two flat loops that vectorise."""
    bad = 0
    for i in range(start, stop):
        bad += status[i] != OK
    for j in range(start - first, stop - first):
        bad += row_terms[ROW_STATUS, j] != OK
    return bad == 0


@njit(error_model="numpy")
def _accumulate_valid_unit_rows(labels, eps, log_eps, prediction_tolerance, class_mass, n_classes, counts, sums,
                                g, row_terms, first, start, stop):
    """_accumulate_loss_rows_of_group for rows that are all valid, with unit weights and counted labels: the
    same additions in the same order, so the same bits, but every count (clipped, infinite, unnormalized,
    each class's labels) is taken in a loop of its own that vectorises, leaving the row loop the two
    compensated chains, H(P,Q) and its square, alone, stepped as two lanes of one vector (see lanes).
    ``NUMBA_NUM_THREADS=1 benchmarks/kernel.py --only loss --statistic min``: the count loops of their own took
    binary 11.7, 11.8 -> 11.1, 11.5 ns/row (K = 10 unchanged); the lanes, in four runs alternating with the
    scalar chains (``--repeats 9``), were faster in each, by 0.1-0.9 ns/row (K = 10 at 18.5-19.7 ns/row)."""
    lo, hi = start - first, stop - first
    q_label, log_qy, total = row_terms[ROW_Q_LABEL], row_terms[ROW_LOG_Q_LABEL], row_terms[ROW_TOTAL]
    infinite = unnormalized = clipped_rows = 0
    for j in range(lo, hi):
        clipped = q_label[j] < eps
        clipped_rows += clipped
        infinite += (not clipped) and log_qy[j] == -math.inf
        unnormalized += abs(total[j] - 1.0) > prediction_tolerance
    # H(P,Q) and its square step as two lanes of one vector (see lanes)
    chains = pack4(sums[g, CROSS_ENTROPY, 0], sums[g, CROSS_ENTROPY_SQUARES, 0], 0.0, 0.0)
    chains_comp = pack4(sums[g, CROSS_ENTROPY, 1], sums[g, CROSS_ENTROPY_SQUARES, 1], 0.0, 0.0)
    for j in range(lo, hi):
        cross = -log_eps if q_label[j] < eps else -log_qy[j]
        if cross != math.inf:
            chains, chains_comp = neumaier4(chains, chains_comp, pack4(cross, cross * cross, 0.0, 0.0))
    cross_s, cross_c = lane(chains, 0), lane(chains_comp, 0)
    squares_s, squares_c = lane(chains, 1), lane(chains_comp, 1)
    for slot, running, compensation in ((CROSS_ENTROPY, cross_s, cross_c),
                                        (CROSS_ENTROPY_SQUARES, squares_s, squares_c), (KL, cross_s, cross_c)):
        sums[g, slot, 0] = running
        sums[g, slot, 1] = compensation
    label_counts = np.zeros(n_classes, dtype=np.int64)
    if n_classes == 2:  # one sum, not a count in memory that each row of the same class waits on
        ones = 0
        for i in range(start, stop):
            ones += labels[i]
        label_counts[0], label_counts[1] = stop - start - ones, ones
    else:
        for i in range(start, stop):
            label_counts[labels[i]] += 1
    rows = stop - start
    _add(sums, g, WEIGHT, np.float64(rows))
    _add(sums, g, CROSS_ENTROPY_WEIGHT, np.float64(rows - infinite))
    _add_label_counts(sums, g, class_mass, label_counts)
    _add_pass_counts(counts, g, rows, 0, 0, infinite, 0, unnormalized, clipped_rows, 0)


@njit
def _accumulate_loss(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps, prediction_tolerance,
                     n_bins, n_classes, counts, sums, row_terms, start, stop):
    """Add the rows [start, stop) of a loss table (its column 0 is row ``start``), in row order, each stretch
    by the pass that suits it (see _next_stretch)."""
    i = start
    while i < stop:
        end, one_group = _next_stretch(group_ids, has_groups, i, stop)
        if one_group:
            _accumulate_loss_rows_of_group(labels, weights, has_weights, status, eps, log_eps, prediction_tolerance,
                                           n_bins, n_classes, counts, sums, group_ids[i] if has_groups else 0, row_terms,
                                           start, i, end)
        else:
            _accumulate_loss_rows(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps,
                                  prediction_tolerance, n_bins, counts, sums, row_terms, start, i, end)
        i = end


@njit(error_model="numpy")
def _loss_span(pred, labels, weights, has_weights, group_ids, has_groups, status, eps, prediction_tolerance,
               n_bins, counts, sums, lo, hi):
    """The loss alone for the rows [lo, hi) of hard labels against probabilities, in row order."""
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    tile = _tile_rows(pred.shape[1], False)
    row_terms = np.empty((N_ROW_TERMS, tile))
    for start in range(lo, hi, tile):
        stop = min(start + tile, hi)
        _loss_tile_terms(pred, labels, start, stop, row_terms)
        _accumulate_loss(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps,
                         prediction_tolerance, n_bins, pred.shape[1], counts, sums, row_terms, start, stop)
