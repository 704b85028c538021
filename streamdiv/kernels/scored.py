"""The scored-row table and its accumulation: the terms one row adds to the state, for the common layouts (hard
labels with probabilities or logits, soft targets with probabilities, binary with labels), added in row order
by one call-free loop shared by those layouts.

Unit weights: rows without a weight column add 1.0 (or 0.0) to six kinds of slot.  Summed row by row with
Neumaier, a partial that holds a whole number n < 2^53 takes each such step exactly, to (n + 1, c); so counting
the rows and adding the count once gives the same bits, at a third less accumulation per row.  When a slot
holds a fraction (weighted rows earlier in the same block), the rows take the row-by-row path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .layout import (BIN_CONFIDENCE, BIN_CONFIDENCE_OBSERVED, BIN_CONFIDENCE_SQUARES, BIN_OBSERVED, BIN_WEIGHT,
                     BIN_WEIGHT_SQUARES, BRIER, CLIPPED, CORRECT, CROSS_ENTROPY, CROSS_ENTROPY_SQUARES,
                     CROSS_ENTROPY_WEIGHT, DOUBLE_SOFTMAX, ENTROPY, IGNORED, INFINITE, INFINITE_REVERSE, JS, KL,
                     PREDICTION_ENTROPY, REVERSE_KL,
                     REVERSE_KL_WEIGHT, ROWS, SKIPPED, UNNORMALIZED, WEIGHT, bin_count_slot, bin_sum_slot,
                     class_mass_slot)
from .primitives import _add, _neumaier, _reject, _row_weight, _whole, bin_index
from .runs import _next_stretch
from .status import CODE_IGNORED, OK, WEIGHT_NEGATIVE_OR_NAN

# ---- scored rows: the terms one row adds to the state, for the common layouts (hard labels with
# probabilities or logits, soft targets with probabilities, binary with labels).  A tile's scoring pass fills
# this table (``scored[column, j]`` for the tile's row j); one accumulation pass, shared by those layouts,
# then adds the valid rows in row order.
SCORED_STATUS = 0  # OK, or the problem found in the row's prediction, label or target
SCORED_CROSS = 1  # H(P,Q): +inf where a class with p > 0 has q = 0; with clipping, q >= eps
SCORED_ENTROPY = 2  # H(P): 0 for hard labels
SCORED_KL = 3  # KL(P||Q): H(P,Q) for hard labels
SCORED_PREDICTION_ENTROPY = 4  # H(Q)
SCORED_REVERSE_KL = 5  # KL(Q||P): soft targets only
SCORED_JS = 6
SCORED_BRIER = 7
SCORED_CONFIDENCE = 8  # the calibration x: max q (binary: p)
SCORED_OBSERVED = 9  # the calibration y: p at argmax q (hard labels: [argmax q = y]; binary: y)
SCORED_CORRECT = 10  # [argmax q = argmax p] (binary: [p > 0.5] = y)
SCORED_LABEL = 11  # y (soft: argmax p), the class whose mass a row with a hard label adds
SCORED_UNNORMALIZED = 12  # 1.0 where |sum q - 1| or |sum p - 1| is over its tolerance
SCORED_CLIPPED = 13  # 1.0 where eps clipping changed a term
SCORED_DOUBLE_SOFTMAX = 14  # 1.0 where the row looks softmaxed twice (probabilities) or is a distribution (logits)
N_SCORED = 15


@njit(inline="always")
def _store_scored(scored, j, code, cross, entropy, kl, prediction_entropy, reverse, js, brier, confidence,
                  observed, correct, y, unnormalized, clipped, double_softmax):
    scored[SCORED_STATUS, j] = code
    scored[SCORED_CROSS, j] = cross
    scored[SCORED_ENTROPY, j] = entropy
    scored[SCORED_KL, j] = kl
    scored[SCORED_PREDICTION_ENTROPY, j] = prediction_entropy
    scored[SCORED_REVERSE_KL, j] = reverse
    scored[SCORED_JS, j] = js
    scored[SCORED_BRIER, j] = brier
    scored[SCORED_CONFIDENCE, j] = confidence
    scored[SCORED_OBSERVED, j] = observed
    scored[SCORED_CORRECT, j] = 1.0 if correct else 0.0
    scored[SCORED_LABEL, j] = y
    scored[SCORED_UNNORMALIZED, j] = 1.0 if unnormalized else 0.0
    scored[SCORED_CLIPPED, j] = 1.0 if clipped else 0.0
    scored[SCORED_DOUBLE_SOFTMAX, j] = 1.0 if double_softmax else 0.0


@njit
def _add_row(counts, sums, g, w, cross, entropy, kl, prediction_entropy, js, correct, brier,
             confidence, observed, n_bins, unnormalized, clipped, double_softmax):
    """Add one scored row's terms (weighted by w) to group g's slots (the slots in ``sums``: see
    _accumulate_scored_rows_of_group for the faster pass over rows of one group)."""
    counts[g, ROWS] += 1
    _add(sums, g, WEIGHT, w)
    if cross == math.inf:
        counts[g, INFINITE] += 1
    else:
        _add(sums, g, CROSS_ENTROPY, w * cross)
        _add(sums, g, CROSS_ENTROPY_SQUARES, w * cross * cross)
        _add(sums, g, CROSS_ENTROPY_WEIGHT, w)
        _add(sums, g, KL, w * kl)
    if entropy != 0.0:
        _add(sums, g, ENTROPY, w * entropy)
    _add(sums, g, PREDICTION_ENTROPY, w * prediction_entropy)
    _add(sums, g, JS, w * js)
    if correct:
        _add(sums, g, CORRECT, w)
    _add(sums, g, BRIER, w * brier)
    if unnormalized:
        counts[g, UNNORMALIZED] += 1
    if clipped:
        counts[g, CLIPPED] += 1
    if double_softmax:
        counts[g, DOUBLE_SOFTMAX] += 1
    b = bin_index(confidence, n_bins)
    counts[g, bin_count_slot(b)] += 1
    _add(sums, g, bin_sum_slot(b, BIN_WEIGHT), w)
    _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE), w * confidence)
    _add(sums, g, bin_sum_slot(b, BIN_OBSERVED), w * observed)
    _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE_SQUARES), w * confidence * confidence)
    _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE_OBSERVED), w * confidence * observed)
    _add(sums, g, bin_sum_slot(b, BIN_WEIGHT_SQUARES), w * w)


@njit
def _unit_slots(sums, g, n_bins, has_weights):
    """Whether the rows of a call for one group may count their unit slots (see above): no weights, and
    every such slot of group g's partial a whole number."""
    if has_weights:
        return False
    for slot in (WEIGHT, CROSS_ENTROPY_WEIGHT, CORRECT):
        if not _whole(sums[g, slot, 0]):
            return False
    for b in range(n_bins):
        for field in (BIN_WEIGHT, BIN_OBSERVED, BIN_WEIGHT_SQUARES):
            if not _whole(sums[g, bin_sum_slot(b, field), 0]):
                return False
    return True


@njit
def _add_unit_counts(counts, sums, g, rows_before, infinite_before, bins_before, correct, bin_observed):
    """Add the unit slots' counts of one call (rows, finite rows, correct rows, rows, their squared weights and
    observed per bin)."""
    rows = counts[g, ROWS] - rows_before
    if rows == 0:
        return
    _add(sums, g, WEIGHT, np.float64(rows))
    _add(sums, g, CROSS_ENTROPY_WEIGHT, np.float64(rows - (counts[g, INFINITE] - infinite_before)))
    _add(sums, g, CORRECT, np.float64(correct))
    for b in range(bin_observed.shape[0]):
        in_bin = counts[g, bin_count_slot(b)] - bins_before[b]
        if in_bin > 0:
            _add(sums, g, bin_sum_slot(b, BIN_WEIGHT), np.float64(in_bin))
            _add(sums, g, bin_sum_slot(b, BIN_WEIGHT_SQUARES), np.float64(in_bin))
            _add(sums, g, bin_sum_slot(b, BIN_OBSERVED), np.float64(bin_observed[b]))


@njit
def _add_pass_counts(counts, g, rows, ignored, skipped, infinite, infinite_reverse, unnormalized, clipped,
                     double_softmax):
    """Add the row counts that a pass for one group kept in local variables to group g's count slots."""
    counts[g, ROWS] += rows
    counts[g, IGNORED] += ignored
    counts[g, SKIPPED] += skipped
    counts[g, INFINITE] += infinite
    counts[g, INFINITE_REVERSE] += infinite_reverse
    counts[g, UNNORMALIZED] += unnormalized
    counts[g, CLIPPED] += clipped
    counts[g, DOUBLE_SOFTMAX] += double_softmax


@njit
def _counts_labels(sums, g, class_mass, n_classes, rows, unit):
    """Whether a call for one group may count its rows' labels and add each class's count once, rather than
    add w = 1.0 to a class mass row by row (the same bits: see above): unit weights, every class mass a whole
    number, and as many rows as classes at least, so that the array of counts costs less than it saves.  A
    class mass kept in ``sums`` is a chain through memory that rows of one class wait on (binary labels)."""
    if not unit or rows < n_classes:
        return False
    for k in range(n_classes):
        if not _whole(sums[g, class_mass + k, 0]):
            return False
    return True


@njit
def _add_label_counts(sums, g, class_mass, label_counts):
    for k in range(label_counts.shape[0]):
        if label_counts[k] > 0:
            _add(sums, g, class_mass + k, np.float64(label_counts[k]))


@njit
def _add_reverse_kl(counts, sums, g, w, reverse):
    """Add a row's KL(Q||P); an infinite one is counted instead, and makes the mean infinite."""
    if reverse == math.inf:
        counts[g, INFINITE_REVERSE] += 1
    else:
        _add(sums, g, REVERSE_KL, w * reverse)
        _add(sums, g, REVERSE_KL_WEIGHT, w)


@njit(error_model="numpy")
def _accumulate_scored_rows(scored, targets, soft, weights, has_weights, group_ids, has_groups, status, n_bins,
                            counts, sums, first, start, stop):
    """The scalar pass over the rows [start, stop) of one tile (row i's terms in column i - first of
    ``scored``): adds each valid row's scored terms to its group's slots, in row order; a row with a hard
    label adds w to its class's mass, one with a soft target w p_k to each class's.  Rows of one group take
    the faster _accumulate_scored_rows_of_group.

    A small function of its own, with no call on any path of its loop.  Inside a general pass (every layout
    in one loop body, with calls on its rare paths) the K = 10 span ran 56-98 ns/row depending on unrelated
    edits, against 52 with the split: LLVM optimises a call-free loop far better."""
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
        code = int(scored[SCORED_STATUS, j])
        if code != OK:
            _reject(status, counts, g, i, code)
            continue
        if soft:
            for k in range(targets.shape[1]):
                _add(sums, g, class_mass + k, w * np.float64(targets[i, k]))
            _add_reverse_kl(counts, sums, g, w, scored[SCORED_REVERSE_KL, j])
        else:
            _add(sums, g, class_mass + int(scored[SCORED_LABEL, j]), w)
        _add_row(counts, sums, g, w, scored[SCORED_CROSS, j], scored[SCORED_ENTROPY, j], scored[SCORED_KL, j],
                 scored[SCORED_PREDICTION_ENTROPY, j], scored[SCORED_JS, j], scored[SCORED_CORRECT, j] > 0.0,
                 scored[SCORED_BRIER, j], scored[SCORED_CONFIDENCE, j], scored[SCORED_OBSERVED, j], n_bins,
                 scored[SCORED_UNNORMALIZED, j] > 0.0, scored[SCORED_CLIPPED, j] > 0.0,
                 scored[SCORED_DOUBLE_SOFTMAX, j] > 0.0)


@njit(error_model="numpy")
def _accumulate_scored_rows_of_group(scored, targets, soft, weights, has_weights, status, n_bins, counts, sums, g,
                                     first, start, stop):
    """_accumulate_scored_rows for rows all of group g (see _next_stretch), with the (sum,
    compensation) pairs and counts of the row slots in local variables for the whole call, soft rows' class
    masses in a local array, and the unit slots counted (see _unit_slots).  Kept in ``sums``, a Neumaier
    step may wait on the store of the row before (LLVM cannot tell ``sums`` from the other arrays the loop
    writes): in a standalone probe 18.8 against 14.4 ns/row.  Measured here, one thread: soft K=10 40 -> 25
    ns/row for the pass; hard and binary rows about even (their old loops were already small).  The same
    operations in the same order on each slot, so the same bits (tests/test_blocks.py checks one group
    against none, and rows reordered into runs against mixed ones)."""
    class_mass = class_mass_slot(n_bins)
    unit = not soft and _unit_slots(sums, g, n_bins, has_weights)  # soft rows observe fractions
    counted = _counts_labels(sums, g, class_mass, targets.shape[1], stop - start, unit)  # targets: (0, K) if hard
    label_counts = np.zeros(targets.shape[1] if counted else 0, dtype=np.int64)
    rows_before, infinite_before = counts[g, ROWS], counts[g, INFINITE]
    bins_before = np.empty(n_bins, dtype=np.int64)
    for b in range(n_bins):
        bins_before[b] = counts[g, bin_count_slot(b)]
    # Soft rows add to every class: their masses go to a local array.  A hard row adds to one class, in place:
    # copying every class's mass at each call cost K = 32000 logits (a call per row) 2x.
    mass = np.empty((targets.shape[1] if soft else 0, 2))
    for k in range(mass.shape[0]):
        mass[k, 0], mass[k, 1] = sums[g, class_mass + k, 0], sums[g, class_mass + k, 1]
    weight, weight_c = sums[g, WEIGHT, 0], sums[g, WEIGHT, 1]
    cross_s, cross_c = sums[g, CROSS_ENTROPY, 0], sums[g, CROSS_ENTROPY, 1]
    squares_s, squares_c = sums[g, CROSS_ENTROPY_SQUARES, 0], sums[g, CROSS_ENTROPY_SQUARES, 1]
    finite_s, finite_c = sums[g, CROSS_ENTROPY_WEIGHT, 0], sums[g, CROSS_ENTROPY_WEIGHT, 1]
    entropy_s, entropy_c = sums[g, ENTROPY, 0], sums[g, ENTROPY, 1]
    kl_s, kl_c = sums[g, KL, 0], sums[g, KL, 1]
    prediction_s, prediction_c = sums[g, PREDICTION_ENTROPY, 0], sums[g, PREDICTION_ENTROPY, 1]
    reverse_s, reverse_c = sums[g, REVERSE_KL, 0], sums[g, REVERSE_KL, 1]
    reverse_w, reverse_w_c = sums[g, REVERSE_KL_WEIGHT, 0], sums[g, REVERSE_KL_WEIGHT, 1]
    js_s, js_c = sums[g, JS, 0], sums[g, JS, 1]
    correct_s, correct_c = sums[g, CORRECT, 0], sums[g, CORRECT, 1]
    brier_s, brier_c = sums[g, BRIER, 0], sums[g, BRIER, 1]
    rows = ignored = skipped = infinite = infinite_reverse = unnormalized = clipped = double_softmax = 0
    correct_rows = 0
    bin_observed = np.zeros(n_bins, dtype=np.int64)
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
        code = int(scored[SCORED_STATUS, j])
        if code != OK:
            status[i] = code
            skipped += 1
            continue
        if soft:
            for k in range(targets.shape[1]):
                mass[k, 0], mass[k, 1] = _neumaier(mass[k, 0], mass[k, 1], w * np.float64(targets[i, k]))
            reverse = scored[SCORED_REVERSE_KL, j]
            if reverse == math.inf:
                infinite_reverse += 1
            else:
                reverse_s, reverse_c = _neumaier(reverse_s, reverse_c, w * reverse)
                reverse_w, reverse_w_c = _neumaier(reverse_w, reverse_w_c, w)
        elif counted:
            label_counts[int(scored[SCORED_LABEL, j])] += 1
        else:
            _add(sums, g, class_mass + int(scored[SCORED_LABEL, j]), w)
        rows += 1
        if not unit:
            weight, weight_c = _neumaier(weight, weight_c, w)
        cross = scored[SCORED_CROSS, j]
        if cross == math.inf:
            infinite += 1
        else:
            cross_s, cross_c = _neumaier(cross_s, cross_c, w * cross)
            squares_s, squares_c = _neumaier(squares_s, squares_c, w * cross * cross)
            if not unit:
                finite_s, finite_c = _neumaier(finite_s, finite_c, w)
            if soft:
                kl_s, kl_c = _neumaier(kl_s, kl_c, w * scored[SCORED_KL, j])
        entropy = scored[SCORED_ENTROPY, j]
        if entropy != 0.0:
            entropy_s, entropy_c = _neumaier(entropy_s, entropy_c, w * entropy)
        prediction_s, prediction_c = _neumaier(prediction_s, prediction_c, w * scored[SCORED_PREDICTION_ENTROPY, j])
        js_s, js_c = _neumaier(js_s, js_c, w * scored[SCORED_JS, j])
        correct = scored[SCORED_CORRECT, j] > 0.0
        if correct and not unit:
            correct_s, correct_c = _neumaier(correct_s, correct_c, w)
        brier_s, brier_c = _neumaier(brier_s, brier_c, w * scored[SCORED_BRIER, j])
        unnormalized += scored[SCORED_UNNORMALIZED, j] > 0.0
        clipped += scored[SCORED_CLIPPED, j] > 0.0
        double_softmax += scored[SCORED_DOUBLE_SOFTMAX, j] > 0.0
        confidence = scored[SCORED_CONFIDENCE, j]
        observed = scored[SCORED_OBSERVED, j]
        b = bin_index(confidence, n_bins)
        counts[g, bin_count_slot(b)] += 1
        if not unit:
            _add(sums, g, bin_sum_slot(b, BIN_WEIGHT), w)
        _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE), w * confidence)
        if not unit:
            _add(sums, g, bin_sum_slot(b, BIN_OBSERVED), w * observed)
        _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE_SQUARES), w * confidence * confidence)
        _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE_OBSERVED), w * confidence * observed)
        if not unit:
            _add(sums, g, bin_sum_slot(b, BIN_WEIGHT_SQUARES), w * w)
        correct_rows += correct
        bin_observed[b] += int(observed)  # used with unit slots only, where observed is 0 or 1
    for k in range(mass.shape[0]):
        sums[g, class_mass + k, 0], sums[g, class_mass + k, 1] = mass[k, 0], mass[k, 1]
    if not soft:  # a hard row's KL is its cross-entropy: the same steps on the same values (as the loss pass)
        kl_s, kl_c = cross_s, cross_c
    for slot, total, compensation in ((WEIGHT, weight, weight_c), (CROSS_ENTROPY, cross_s, cross_c),
                                      (CROSS_ENTROPY_SQUARES, squares_s, squares_c),
                                      (CROSS_ENTROPY_WEIGHT, finite_s, finite_c), (ENTROPY, entropy_s, entropy_c),
                                      (KL, kl_s, kl_c), (PREDICTION_ENTROPY, prediction_s, prediction_c),
                                      (REVERSE_KL, reverse_s, reverse_c), (REVERSE_KL_WEIGHT, reverse_w, reverse_w_c),
                                      (JS, js_s, js_c), (CORRECT, correct_s, correct_c), (BRIER, brier_s, brier_c)):
        sums[g, slot, 0] = total
        sums[g, slot, 1] = compensation
    _add_pass_counts(counts, g, rows, ignored, skipped, infinite, infinite_reverse, unnormalized, clipped,
                     double_softmax)
    if unit:
        _add_unit_counts(counts, sums, g, rows_before, infinite_before, bins_before, correct_rows, bin_observed)
    _add_label_counts(sums, g, class_mass, label_counts)


@njit
def _accumulate_scored(scored, targets, soft, weights, has_weights, group_ids, has_groups, status, n_bins,
                       counts, sums, start, stop):
    """Add the rows [start, stop) of a tile's scored table (its column 0 is row ``start``), in row order, each
    stretch by the pass that suits it (see _next_stretch)."""
    i = start
    while i < stop:
        end, one_group = _next_stretch(group_ids, has_groups, i, stop)
        if one_group:
            _accumulate_scored_rows_of_group(scored, targets, soft, weights, has_weights, status, n_bins, counts,
                                             sums, group_ids[i] if has_groups else 0, start, i, end)
        else:
            _accumulate_scored_rows(scored, targets, soft, weights, has_weights, group_ids, has_groups, status,
                                    n_bins, counts, sums, start, i, end)
        i = end
