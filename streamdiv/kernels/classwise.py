"""The class-wise pass: each valid row's predicted distribution, class by class, into the class masses and the
class-wise calibration bins.

It runs over a span after the family's own pass has scored it, so it reads the rows that pass accepted
(status OK) and nothing else, and adds them in row order into the same block partial: the block contract
holds for its slots as for every other.  For each row with weight w, predicted q and target P (a hard label
y: P_k = [k = y]), and each class k:

* ``class.prediction_mass[k] += w q_k``, and, for soft targets, ``class.target_squares[k] += w P_k^2``;
* ``class.predicted_class[a] += w`` for the row's predicted class a: the argmax of the row as given (logits or
  probabilities, before any softmax or renormalization), the first maximum on ties, as the families' passes
  take it for the ``correct`` slot (a binary column: a = 1 where p > 0.5, p as ``binary.binary_top_class``
  reads it);
* with class-wise bins, in class k's bin b of q_k (edges k/M, as the top-label bins):
  ``count += 1``, ``weight += w``, ``prediction += w q_k``, ``prediction_squares += w q_k^2`` and, where
  P_k > 0, ``observed += w P_k``, ``prediction_observed += w q_k P_k``.

q is the prediction as the model gave it: softmax of logits, the row divided by its sum with
``renormalize``, never clipped by ``eps`` (calibration is about the probabilities themselves).  One binary
column has two classes, (1 - p, p), and class-wise bins for the positive class only, whose y is the label
(or target t).  The label-free pass (``predictions``) runs it too, with neither labels nor targets and no
class-wise bins.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elementary import fast_exp, float_bits
from .binary import binary_top_class
from .classwise_cells import _add_to_class_bin, _add_unit_counts, _observe, _step, _unit_cells
from .lanes import lane, neumaier4, pack4
from .layout import (BIN_CONFIDENCE, BIN_CONFIDENCE_OBSERVED, BIN_CONFIDENCE_SQUARES, BIN_OBSERVED, BIN_WEIGHT,
                     CLASS_BIN_FIELDS, CLASS_BIN_OBSERVED, CLASS_BIN_PREDICTION, CLASS_BIN_PREDICTION_OBSERVED,
                     CLASS_BIN_PREDICTION_SQUARES, CLASS_BIN_WEIGHT, bin_count_slot, bin_sum_slot,
                     class_bin_count_slot, class_bin_sum_slot, predicted_class_slot, prediction_mass_slot,
                     target_squares_slot)
from .primitives import _add, _argmax, _neumaier, _row_weight, _whole, bin_index
from .status import OK


@njit(inline="always")
def _swap_masses(sums, held, g, prediction_mass, mass, mass_error):
    """Write the local prediction masses back to group ``held`` (none when -1) and load group g's (none when
    -1)."""
    for k in range(mass.shape[0]):
        if held >= 0:
            sums[held, prediction_mass + k, 0], sums[held, prediction_mass + k, 1] = mass[k], mass_error[k]
        if g >= 0:
            mass[k], mass_error[k] = sums[g, prediction_mass + k, 0], sums[g, prediction_mass + k, 1]


@njit(inline="always")
def _row_distribution(pred, i, is_logits, renormalize, q):
    """Row i's predicted distribution into q: softmax of logits, or the probabilities (divided by their sum
    with renormalize)."""
    n_classes = pred.shape[1]
    if is_logits:
        top = -math.inf
        for k in range(n_classes):
            top = max(top, np.float64(pred[i, k]))
        for k in range(n_classes):  # a loop of its own, without the sum, so that it vectorises
            q[k] = fast_exp(np.float64(pred[i, k]) - top)
        total = 0.0
        for k in range(n_classes):
            total += q[k]
        for k in range(n_classes):
            q[k] /= total
        return
    total = 0.0
    for k in range(n_classes):
        q[k] = np.float64(pred[i, k])
        total += q[k]
    if renormalize and total > 0.0:
        for k in range(n_classes):
            q[k] /= total


@njit(error_model="numpy")
def _classwise_multiclass(pred, is_logits, renormalize, labels, targets, weights, group_ids, status, n_bins,
                          n_class_bins, counts, sums, lo, hi):
    """The class-wise pass over the rows [lo, hi) of rows x K predictions."""
    n_classes = pred.shape[1]
    has_weights, has_groups, soft = weights.shape[0] > 0, group_ids.shape[0] > 0, targets.shape[0] > 0
    prediction_mass = prediction_mass_slot(n_bins, n_classes)
    target_squares = target_squares_slot(n_bins, n_classes)
    predicted_class = predicted_class_slot(n_bins, n_classes)
    count_base = class_bin_count_slot(n_bins, n_class_bins, 0, 0)
    sum_base = class_bin_sum_slot(n_bins, n_classes, n_class_bins, 0, 0, 0)
    q = np.empty(n_classes)
    # Rows of one group keep its prediction masses in two local arrays, a loop over classes that vectorises
    # (in ``sums`` each step waits on a store the compiler cannot tell apart from the others).
    mass, mass_error = np.empty(n_classes), np.empty(n_classes)
    held = -1  # the group whose masses the local arrays hold
    n_cells = n_classes * n_class_bins
    # Rows of one group without weights count their cells' unit terms (see _unit_cells).
    unit = not has_weights and not has_groups and n_cells > 0 and _unit_cells(sums[0], sum_base, n_cells, soft)
    if unit and not soft and not is_logits and not renormalize:
        _classwise_hard_unit(pred, labels, status, n_bins, n_class_bins, counts[0], sums[0], lo, hi)
        return
    rows_before = counts[0, count_base: count_base + n_cells].copy() if unit else np.empty(0, dtype=np.int64)
    observed_rows = np.zeros(n_cells if unit and not soft else 0, dtype=np.int64)
    for i in range(lo, hi):
        if status[i] != OK:
            continue
        g = group_ids[i] if has_groups else 0
        cells, row_counts = sums[g], counts[g]
        if g != held:
            _swap_masses(sums, held, g, prediction_mass, mass, mass_error)
            held = g
        w = _row_weight(weights, has_weights, i)
        _row_distribution(pred, i, is_logits, renormalize, q)
        for k in range(n_classes):
            mass[k], mass_error[k] = _neumaier(mass[k], mass_error[k], w * q[k])
        top, _ = _argmax(pred[i])
        _step(cells, predicted_class + top, w)
        if soft:
            for k in range(n_classes):
                target = np.float64(targets[i, k])
                if target != 0.0:
                    _step(cells, target_squares + k, w * target * target)
        if n_class_bins == 0:
            continue
        if soft:
            for k in range(n_classes):
                b = _add_to_class_bin(row_counts, cells, count_base, sum_base, n_class_bins, k, w, q[k], unit)
                target = np.float64(targets[i, k])
                if target != 0.0:
                    _observe(cells, sum_base, n_class_bins, k, b, w, q[k], target, observed_rows)
        else:
            label = labels[i]
            for k in range(n_classes):
                b = _add_to_class_bin(row_counts, cells, count_base, sum_base, n_class_bins, k, w, q[k], unit)
                if k == label:
                    _observe(cells, sum_base, n_class_bins, k, b, w, q[k], 1.0, observed_rows)
    _swap_masses(sums, held, -1, prediction_mass, mass, mass_error)
    if unit:
        _add_unit_counts(sums[0], counts[0], count_base, sum_base, rows_before, observed_rows)


@njit(error_model="numpy")
def _classwise_hard_unit(pred, labels, status, n_bins, n_class_bins, row_counts, cells, lo, hi):
    """_classwise_multiclass for hard labels against probabilities as given, with unit weights in one group
    (its ``unit``), in a loop of its own: the same steps in the same order, so the same bits, without the
    tests of the input's kind, the groups and the weights inside the loop, whose paths for other inputs
    (softmax's exp, renormalizing, soft targets) slowed it even where not taken.  ``NUMBA_NUM_THREADS=1
    benchmarks/kernel.py --only "hard K=10" --statistic min --repeats 3``, the full report: 202, 195 -> 162,
    158 ns/row (a /tmp probe of the class-wise pass alone: 122 -> 93)."""
    n_classes = pred.shape[1]
    prediction_mass = prediction_mass_slot(n_bins, n_classes)
    predicted_class = predicted_class_slot(n_bins, n_classes)
    count_base = class_bin_count_slot(n_bins, n_class_bins, 0, 0)
    sum_base = class_bin_sum_slot(n_bins, n_classes, n_class_bins, 0, 0, 0)
    mass, mass_error = np.empty(n_classes), np.empty(n_classes)
    for k in range(n_classes):
        mass[k], mass_error[k] = cells[prediction_mass + k, 0], cells[prediction_mass + k, 1]
    n_cells = n_classes * n_class_bins
    rows_before = row_counts[count_base: count_base + n_cells].copy()
    observed_rows = np.zeros(n_cells, dtype=np.int64)
    for i in range(lo, hi):
        if status[i] != OK:
            continue
        for k in range(n_classes):
            mass[k], mass_error[k] = _neumaier(mass[k], mass_error[k], 1.0 * np.float64(pred[i, k]))
        top, _ = _argmax(pred[i])
        _step(cells, predicted_class + top, 1.0)
        label = labels[i]
        for k in range(n_classes):  # _add_to_class_bin and _observe for w = 1, written out: 104 -> 93 ns/row
            q = np.float64(pred[i, k])
            cell = k * n_class_bins + bin_index(q, n_class_bins)
            row_counts[count_base + cell] += 1
            at = sum_base + cell * CLASS_BIN_FIELDS
            _step(cells, at + CLASS_BIN_PREDICTION, 1.0 * q)
            _step(cells, at + CLASS_BIN_PREDICTION_SQUARES, 1.0 * q * q)
            if k == label:
                observed_rows[cell] += 1
                _step(cells, at + CLASS_BIN_PREDICTION_OBSERVED, 1.0 * q * 1.0)
    for k in range(n_classes):
        cells[prediction_mass + k, 0], cells[prediction_mass + k, 1] = mass[k], mass_error[k]
    _add_unit_counts(cells, row_counts, count_base, sum_base, rows_before, observed_rows)


@njit(error_model="numpy")
def _classwise_binary(pred, is_logits, labels, targets, weights, group_ids, status, n_bins, n_class_bins, counts,
                      sums, lo, hi):
    """The class-wise pass over the rows [lo, hi) of one positive-class probability (or logit) per row."""
    has_weights, has_groups, soft = weights.shape[0] > 0, group_ids.shape[0] > 0, targets.shape[0] > 0
    prediction_mass = prediction_mass_slot(n_bins, 2)
    target_squares = target_squares_slot(n_bins, 2)
    predicted_class = predicted_class_slot(n_bins, 2)
    if _binary_unit_rows(sums[0], predicted_class, class_bin_sum_slot(n_bins, 2, n_class_bins, 0, 0, 0),
                         n_class_bins, has_weights, has_groups, soft):
        _classwise_binary_unit(pred, is_logits, labels, status, n_bins, n_class_bins, counts[0], sums[0], lo, hi)
        return
    no_rows = np.zeros(0, dtype=np.int64)  # no counted observed rows: each y is added as it comes
    for i in range(lo, hi):
        if status[i] != OK:
            continue
        g = group_ids[i] if has_groups else 0
        w = _row_weight(weights, has_weights, i)
        p = np.float64(pred[i])
        if is_logits:
            p = 1.0 / (1.0 + math.exp(-p)) if p >= 0.0 else math.exp(p) / (1.0 + math.exp(p))
        _add(sums, g, prediction_mass, w * (1.0 - p))
        _add(sums, g, prediction_mass + 1, w * p)
        _add(sums, g, predicted_class + binary_top_class(pred[i], is_logits, soft), w)
        if soft:
            y = np.float64(targets[i])
            if y != 1.0:
                _add(sums, g, target_squares, w * (1.0 - y) * (1.0 - y))
            if y != 0.0:
                _add(sums, g, target_squares + 1, w * y * y)
        if n_class_bins > 0:
            y = np.float64(targets[i]) if soft else np.float64(labels[i])
            count_base = class_bin_count_slot(n_bins, n_class_bins, 0, 0)
            sum_base = class_bin_sum_slot(n_bins, 2, n_class_bins, 0, 0, 0)
            b = _add_to_class_bin(counts[g], sums[g], count_base, sum_base, n_class_bins, 0, w, p, False)
            if y != 0.0:
                _observe(sums[g], sum_base, n_class_bins, 0, b, w, p, y, no_rows)


@njit
def _binary_unit_rows(cells, predicted_class, sum_base, n_class_bins, has_weights, has_groups, soft):
    """Whether a binary call may take _classwise_binary_unit: hard labels, neither weights nor groups, and every
    unit-term sum (the two predicted-class sums, the class-wise bins' weights and observed) a whole number."""
    if has_weights or has_groups or soft:
        return False
    if not (_whole(cells[predicted_class, 0]) and _whole(cells[predicted_class + 1, 0])):
        return False
    return _unit_cells(cells, sum_base, n_class_bins, False)


@njit(inline="always")
def _binary_unit_rows_of(pred, is_logits, labels, status, n_class_bins, row_counts, cells, count_base, sum_base,
                         observed_rows, masses, masses_comp, lo, hi):
    """The row loop of _classwise_binary_unit for one kind of input (``is_logits`` a constant where it is
    inlined): the two prediction masses, 1 - p and p, stepped as two lanes of one vector (see lanes).
    Returns the masses and the rows predicted positive and counted."""
    predicted_positive = predicted_rows = 0
    for i in range(lo, hi):
        if status[i] != OK:
            continue
        p = np.float64(pred[i])
        if is_logits:
            p = 1.0 / (1.0 + math.exp(-p)) if p >= 0.0 else math.exp(p) / (1.0 + math.exp(p))
        masses, masses_comp = neumaier4(masses, masses_comp, pack4(1.0 - p, p, 0.0, 0.0))
        predicted_positive += binary_top_class(pred[i], is_logits, False)
        predicted_rows += 1
        if n_class_bins > 0:
            b = _add_to_class_bin(row_counts, cells, count_base, sum_base, n_class_bins, 0, 1.0, p, True)
            if labels[i] != 0:
                _observe(cells, sum_base, n_class_bins, 0, b, 1.0, p, 1.0, observed_rows)
    return masses, masses_comp, predicted_positive, predicted_rows


@njit(error_model="numpy")
def _classwise_binary_unit(pred, is_logits, labels, status, n_bins, n_class_bins, row_counts, cells, lo, hi):
    """_classwise_binary for hard labels with unit weights in one group: the two prediction masses in local
    (sum, compensation) pairs for the call, the predicted class and the bins' weight and observed terms
    counted and added once (see _unit_cells), so the loop keeps three compensated sums in memory a row
    (a bin's prediction, its square, and where y = 1 its prediction observed) where the general loop keeps
    eight.  The same steps in the same order on each slot: the same bits."""
    prediction_mass = prediction_mass_slot(n_bins, 2)
    predicted_class = predicted_class_slot(n_bins, 2)
    count_base = class_bin_count_slot(n_bins, n_class_bins, 0, 0)
    sum_base = class_bin_sum_slot(n_bins, 2, n_class_bins, 0, 0, 0)
    masses = pack4(cells[prediction_mass, 0], cells[prediction_mass + 1, 0], 0.0, 0.0)
    masses_comp = pack4(cells[prediction_mass, 1], cells[prediction_mass + 1, 1], 0.0, 0.0)
    rows_before = row_counts[count_base: count_base + n_class_bins].copy()
    observed_rows = np.zeros(n_class_bins, dtype=np.int64)
    # One loop per input kind: with the test of is_logits inside the loop, whose logit path calls exp, the
    # loop took 8.2 ns/row on probabilities; with a loop of their own, 3.35 (a /tmp probe, one thread).
    if is_logits:
        masses, masses_comp, predicted_positive, predicted_rows = _binary_unit_rows_of(
            pred, True, labels, status, n_class_bins, row_counts, cells, count_base, sum_base, observed_rows,
            masses, masses_comp, lo, hi)
    else:
        masses, masses_comp, predicted_positive, predicted_rows = _binary_unit_rows_of(
            pred, False, labels, status, n_class_bins, row_counts, cells, count_base, sum_base, observed_rows,
            masses, masses_comp, lo, hi)
    negative, negative_error = lane(masses, 0), lane(masses_comp, 0)
    positive, positive_error = lane(masses, 1), lane(masses_comp, 1)
    cells[prediction_mass, 0], cells[prediction_mass, 1] = negative, negative_error
    cells[prediction_mass + 1, 0], cells[prediction_mass + 1, 1] = positive, positive_error
    if predicted_rows > predicted_positive:
        _step(cells, predicted_class, np.float64(predicted_rows - predicted_positive))
    if predicted_positive > 0:
        _step(cells, predicted_class + 1, np.float64(predicted_positive))
    _add_unit_counts(cells, row_counts, count_base, sum_base, rows_before, observed_rows)


@njit(inline="always")
def classwise_multiclass_span(batch, settings, partial, lo, hi):
    """The class-wise pass over the rows [lo, hi) of rows x K predictions already scored into ``partial``."""
    _classwise_multiclass(batch.pred, settings.is_logits, settings.renormalize, batch.labels, batch.targets,
                          batch.weights, batch.group_ids, batch.status, settings.n_bins, settings.class_bins,
                          partial.counts, partial.sums, lo, hi)


@njit(inline="always")
def classwise_binary_span(batch, settings, partial, lo, hi, bins_follow):
    """The class-wise pass over the rows [lo, hi) of one binary column already scored into ``partial``; with
    ``bins_follow`` (binary_bins_follow, asked before that scoring) its bins are copied, not computed."""
    _classwise_binary(batch.pred, settings.is_logits, batch.labels, batch.targets, batch.weights, batch.group_ids,
                      batch.status, settings.n_bins, 0 if bins_follow else settings.class_bins, partial.counts,
                      partial.sums, lo, hi)
    if bins_follow:
        _follow_top_label_bins(partial.counts[0], partial.sums[0], settings.n_bins, True)


@njit(inline="always")
def binary_bins_follow(batch, settings, partial):
    """Whether a binary span's class-wise bins (those of the positive class) may be copied from its top-label
    bins once the family's pass has scored it: probabilities (not logits), hard labels, neither weights nor
    groups, as many class-wise bins as top-label bins, and the two sets of cells equal now, to the bit.  Then
    every row the pass accepts adds the same values to both, in the same order (its confidence is q_1 = p,
    its observed y; a row with y = 0 adds 0.0 to the top-label observed sums, which leaves them as they are),
    so they are still equal after it.  That saves the class-wise pass its bins: 12.5 -> 2 ns/row."""
    if (settings.is_logits or batch.targets.shape[0] > 0 or batch.weights.shape[0] > 0
            or batch.group_ids.shape[0] > 0 or settings.class_bins != settings.n_bins):
        return False
    return _follow_top_label_bins(partial.counts[0], partial.sums[0], settings.n_bins, False)


# (top-label bin field, class-wise bin field) pairs that a binary row fills with the same values
_FOLLOWED_FIELDS = ((BIN_WEIGHT, CLASS_BIN_WEIGHT), (BIN_CONFIDENCE, CLASS_BIN_PREDICTION),
                    (BIN_CONFIDENCE_SQUARES, CLASS_BIN_PREDICTION_SQUARES), (BIN_OBSERVED, CLASS_BIN_OBSERVED),
                    (BIN_CONFIDENCE_OBSERVED, CLASS_BIN_PREDICTION_OBSERVED))


@njit
def _follow_top_label_bins(row_counts, cells, n_bins, copy):
    """With ``copy``, set the positive class's class-wise bins to the top-label bins (of one group's row of
    ``counts`` and ``sums``); without, whether they are equal already, bit for bit."""
    count_base = class_bin_count_slot(n_bins, n_bins, 0, 0)
    sum_base = class_bin_sum_slot(n_bins, 2, n_bins, 0, 0, 0)
    for b in range(n_bins):
        if copy:
            row_counts[count_base + b] = row_counts[bin_count_slot(b)]
        elif row_counts[count_base + b] != row_counts[bin_count_slot(b)]:
            return False
        for top_field, class_field in _FOLLOWED_FIELDS:
            at = sum_base + b * CLASS_BIN_FIELDS + class_field
            for part in range(2):
                value = cells[bin_sum_slot(b, top_field), part]
                if copy:
                    cells[at, part] = value
                elif float_bits(cells[at, part]) != float_bits(value):
                    return False
    return True
