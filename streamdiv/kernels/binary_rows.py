"""The binary full pass for rows of one group: each row scored from its tile's table of logs and added to the
state in one loop, without the scored-row table between the two.

It does what ``binary._score_binary_rows`` followed by ``scored._accumulate_scored_rows_of_group`` does for
binary predictions against labels in {0, 1}, with the same operations in the same order on each slot, so it
gives the same bits (the bits fixture's binary configurations hold it to them).  What it saves is the
table: fifteen values a row written and read back, and a second loop over the tile.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .binary import (BINARY_TILE_ROWS, N_BINARY_TERMS, _binary_logs, _binary_row_status, _score_binary_rows,
                     binary_label_row_terms)
from .lanes import lane, neumaier4, pack4
from .layout import (BIN_CONFIDENCE, BIN_CONFIDENCE_OBSERVED, BIN_CONFIDENCE_SQUARES, BIN_OBSERVED, BIN_WEIGHT,
                     BIN_WEIGHT_SQUARES, CROSS_ENTROPY, CROSS_ENTROPY_SQUARES, CROSS_ENTROPY_WEIGHT, CORRECT, JS, KL,
                     BRIER, INFINITE, PREDICTION_ENTROPY, ROWS, WEIGHT, bin_count_slot, bin_sum_slot,
                     class_mass_slot)
from .primitives import _add, _neumaier, _row_weight, bin_index
from .scored import (N_SCORED, _accumulate_scored, _add_label_counts, _add_pass_counts, _add_unit_counts,
                     _counts_labels, _unit_slots)
from .status import CODE_IGNORED, OK, WEIGHT_NEGATIVE_OR_NAN


@njit(error_model="numpy")
def _binary_label_rows_of_group(pred, is_logits, labels, row_terms, weights, has_weights, status, eps, log_eps,
                                n_bins, counts, sums, g, start, stop):
    """Score the rows [start, stop) of one tile (row i's logs in column i - start of ``row_terms``), all of
    group g, and add the valid ones to g's slots in row order: the running sums of the row slots in local
    variables, the unit slots and the labels counted (see scored's unit weights)."""
    class_mass = class_mass_slot(n_bins)
    unit = _unit_slots(sums, g, n_bins, has_weights)
    counted = _counts_labels(sums, g, class_mass, 2, stop - start, unit)
    label_counts = np.zeros(2 if counted else 0, dtype=np.int64)
    rows_before, infinite_before = counts[g, ROWS], counts[g, INFINITE]
    bins_before = np.empty(n_bins, dtype=np.int64)
    for b in range(n_bins):
        bins_before[b] = counts[g, bin_count_slot(b)]
    weight, weight_c = sums[g, WEIGHT, 0], sums[g, WEIGHT, 1]
    cross_s, cross_c = sums[g, CROSS_ENTROPY, 0], sums[g, CROSS_ENTROPY, 1]
    squares_s, squares_c = sums[g, CROSS_ENTROPY_SQUARES, 0], sums[g, CROSS_ENTROPY_SQUARES, 1]
    finite_s, finite_c = sums[g, CROSS_ENTROPY_WEIGHT, 0], sums[g, CROSS_ENTROPY_WEIGHT, 1]
    prediction_s, prediction_c = sums[g, PREDICTION_ENTROPY, 0], sums[g, PREDICTION_ENTROPY, 1]
    js_s, js_c = sums[g, JS, 0], sums[g, JS, 1]
    correct_s, correct_c = sums[g, CORRECT, 0], sums[g, CORRECT, 1]
    brier_s, brier_c = sums[g, BRIER, 0], sums[g, BRIER, 1]
    # The five row chains step as two vectors of four lanes (see lanes): (H(P,Q), its square, the finite
    # weight, nothing) for finite rows, (H(Q), JS, Brier, the weight) for every valid row.  With unit weights
    # the two weight lanes are dropped at the end: those slots are counted.
    finite, finite_comp = pack4(cross_s, squares_s, finite_s, 0.0), pack4(cross_c, squares_c, finite_c, 0.0)
    every, every_comp = pack4(prediction_s, js_s, brier_s, weight), pack4(prediction_c, js_c, brier_c, weight_c)
    rows = ignored = skipped = infinite = clipped_rows = correct_rows = positives = 0
    bin_observed = np.zeros(n_bins, dtype=np.int64)
    for i in range(start, stop):
        code = status[i]  # the row preamble, written out as in every accumulation loop (see scored)
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
        code = _binary_row_status(np.float64(pred[i]), labels[i], is_logits)
        if code != OK:
            status[i] = code
            skipped += 1
            continue
        y = 1 if labels[i] == 1 else 0
        prob, cross, prediction_entropy, js, brier, clipped = binary_label_row_terms(row_terms, i - start, y, eps,
                                                                                     log_eps)
        observed = np.float64(y)
        correct = (1 if prob > 0.5 else 0) == y
        # its accumulation, as _accumulate_scored_rows_of_group adds a hard row (H(P) = 0 adds nothing)
        if counted:
            positives += y  # a sum, not a count in memory that each row of the same class waits on
        else:
            _add(sums, g, class_mass + y, w)
        rows += 1
        if cross == math.inf:
            infinite += 1
        else:
            finite, finite_comp = neumaier4(finite, finite_comp, pack4(w * cross, w * cross * cross, w, 0.0))
        every, every_comp = neumaier4(every, every_comp, pack4(w * prediction_entropy, w * js, w * brier, w))
        if correct and not unit:
            correct_s, correct_c = _neumaier(correct_s, correct_c, w)
        clipped_rows += clipped
        b = bin_index(prob, n_bins)
        counts[g, bin_count_slot(b)] += 1
        if not unit:
            _add(sums, g, bin_sum_slot(b, BIN_WEIGHT), w)
        _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE), w * prob)
        if not unit:
            _add(sums, g, bin_sum_slot(b, BIN_OBSERVED), w * observed)
        _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE_SQUARES), w * prob * prob)
        _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE_OBSERVED), w * prob * observed)
        if not unit:
            _add(sums, g, bin_sum_slot(b, BIN_WEIGHT_SQUARES), w * w)
        correct_rows += correct
        bin_observed[b] += y
    cross_s, cross_c = lane(finite, 0), lane(finite_comp, 0)
    squares_s, squares_c = lane(finite, 1), lane(finite_comp, 1)
    prediction_s, js_s, brier_s = lane(every, 0), lane(every, 1), lane(every, 2)
    prediction_c, js_c, brier_c = lane(every_comp, 0), lane(every_comp, 1), lane(every_comp, 2)
    if not unit:
        finite_s, finite_c = lane(finite, 2), lane(finite_comp, 2)
        weight, weight_c = lane(every, 3), lane(every_comp, 3)
    # a hard row's KL is its cross-entropy: the same steps on the same values
    for slot, total, compensation in ((WEIGHT, weight, weight_c), (CROSS_ENTROPY, cross_s, cross_c),
                                      (CROSS_ENTROPY_SQUARES, squares_s, squares_c),
                                      (CROSS_ENTROPY_WEIGHT, finite_s, finite_c), (KL, cross_s, cross_c),
                                      (PREDICTION_ENTROPY, prediction_s, prediction_c), (JS, js_s, js_c),
                                      (CORRECT, correct_s, correct_c), (BRIER, brier_s, brier_c)):
        sums[g, slot, 0] = total
        sums[g, slot, 1] = compensation
    _add_pass_counts(counts, g, rows, ignored, skipped, infinite, 0, 0, clipped_rows, 0)
    if unit:
        _add_unit_counts(counts, sums, g, rows_before, infinite_before, bins_before, correct_rows, bin_observed)
    if counted:
        label_counts[0], label_counts[1] = rows - positives, positives
    _add_label_counts(sums, g, class_mass, label_counts)


@njit(error_model="numpy")
def _binary_label_span(pred, is_logits, labels, weights, has_weights, group_ids, has_groups, status, eps, n_bins,
                       counts, sums, lo, hi):
    """Score the rows [lo, hi) of binary predictions against labels in {0, 1} into ``counts``/``sums``, in row
    order, tile by tile: without groups in one loop (binary_rows), with them through the scored-row table."""
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    row_terms = np.empty((N_BINARY_TERMS, BINARY_TILE_ROWS))
    scored = np.empty((N_SCORED if has_groups else 0, BINARY_TILE_ROWS))
    no_targets = np.empty((0, 2))
    for start in range(lo, hi, BINARY_TILE_ROWS):
        stop = min(start + BINARY_TILE_ROWS, hi)
        _binary_logs(pred, is_logits, labels, start, stop, row_terms)
        if not has_groups:
            _binary_label_rows_of_group(pred, is_logits, labels, row_terms, weights, has_weights, status, eps,
                                        log_eps, n_bins, counts, sums, 0, start, stop)
            continue
        _score_binary_rows(pred, is_logits, labels, eps, log_eps, start, stop, row_terms, scored)
        _accumulate_scored(scored, no_targets, False, weights, has_weights, group_ids, has_groups, status,
                           n_bins, counts, sums, start, stop)
