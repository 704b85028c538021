"""The multi-class span: the rows of one stretch scored tile by tile through the family's tile passes and added
from the scored-row table, or by the loss pass, or by the general per-row path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .general import _accumulate_multiclass_rows
from .logits import N_LOGIT_TERMS, _logit_tile_sums, _score_hard_logits
from .primitives import _tile_rows
from .probabilities import (N_ROW_TERMS, _entropy_terms, _label_logs, _probability_tile_sums,
                            _score_hard_probabilities)
from .scored import N_SCORED, _accumulate_scored, _store_scored
from .soft import N_VALUE_TERMS, _soft_tile_sums
from .status import LABEL_OUT_OF_RANGE


# The families that score through the scored-row table each have a *tiles* function, which scores the rows
# [lo, hi) tile by tile into the table's columns from ``at`` (one thread's share when a span of wide rows is
# scored on every thread, see blocks), and a *span* function, which scores a tile and adds it, in row order.


@njit(inline="always")
def _store_hard_row(scored, j, y, n_classes, prediction_tolerance, row):
    """Row j of the scored table for a hard label y from a family's row scores (see
    _score_hard_probabilities).  A label outside [0, K) is the row's problem, before any in its prediction."""
    code, cross, prediction_entropy, js, brier, top, confidence, total, clipped, double_softmax = row
    if y < 0 or y >= n_classes:
        code, y = LABEL_OUT_OF_RANGE, 0
    _store_scored(scored, j, code, cross, 0.0, cross, prediction_entropy, 0.0, js, brier, confidence,
                  1.0 if top == y else 0.0, top == y, y, abs(total - 1.0) > prediction_tolerance, clipped,
                  double_softmax)


@njit(inline="always")
def _probability_scratch(n_classes, tile):
    """(q log q terms, row table, row argmax) for a tile of probability rows."""
    return (np.empty(tile * n_classes), np.empty((N_ROW_TERMS, tile)), np.empty(tile, dtype=np.int64))


@njit(error_model="numpy")
def _probability_tiles(pred, labels, eps, prediction_tolerance, lo, hi, scratch, scored, at):
    """The scored terms of the rows [lo, hi) of probabilities against hard labels."""
    terms, row_terms, row_top = scratch
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    n_classes = pred.shape[1]
    tile = _tile_rows(n_classes, False)
    for start in range(lo, hi, tile):
        stop = min(start + tile, hi)
        any_bad = _entropy_terms(pred, start, stop, terms) > 0
        _label_logs(pred, labels, start, stop, row_terms)
        _probability_tile_sums(pred, labels, start, stop, terms, any_bad, prediction_tolerance, row_terms, row_top)
        for j in range(stop - start):
            _store_hard_row(scored, at + start - lo + j, labels[start + j], n_classes, prediction_tolerance,
                            _score_hard_probabilities(row_terms, row_top, j, eps, log_eps))


@njit(inline="always")
def _logit_scratch(n_classes, tile):
    """(shifted logits d, exp(d), row table, row argmax) for a tile of logit rows."""
    return (np.empty(tile * n_classes), np.empty(tile * n_classes), np.empty((N_LOGIT_TERMS, tile)),
            np.empty(tile, dtype=np.int64))


@njit(error_model="numpy")
def _logit_tiles(pred, labels, eps, prediction_tolerance, lo, hi, scratch, scored, at):
    """The scored terms of the rows [lo, hi) of logits against hard labels; ``prediction_tolerance`` is the
    row-sum tolerance of logits that look like probabilities (a logit row's softmax sums to 1)."""
    shifted, exps, row_terms, row_top = scratch
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    n_classes = pred.shape[1]
    tile = _tile_rows(n_classes, False)
    for start in range(lo, hi, tile):
        stop = min(start + tile, hi)
        _logit_tile_sums(pred, labels, start, stop, prediction_tolerance, row_terms, row_top, shifted, exps)
        for j in range(stop - start):
            _store_hard_row(scored, at + start - lo + j, labels[start + j], n_classes, prediction_tolerance,
                            _score_hard_logits(row_terms, row_top, j, eps, log_eps))


@njit(inline="always")
def _soft_scratch(n_classes, tile):
    """The VALUE_* terms (for many classes: log p, log q and log m in rows 0-2) of a tile of soft rows."""
    return np.empty((N_VALUE_TERMS, tile * n_classes))


@njit(error_model="numpy")
def _soft_tiles(pred, targets, eps, prediction_tolerance, target_tolerance, lo, hi, value_terms, scored, at):
    """The scored terms of the rows [lo, hi) of probabilities against soft targets."""
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    tile = _tile_rows(pred.shape[1], True)
    for start in range(lo, hi, tile):
        stop = min(start + tile, hi)
        _soft_tile_sums(pred, targets, start, stop, eps, log_eps, prediction_tolerance, target_tolerance,
                         scored, at + start - lo, value_terms)


@njit(error_model="numpy")
def _probability_span(pred, labels, weights, has_weights, group_ids, has_groups, status, eps,
                      prediction_tolerance, n_bins, counts, sums, lo, hi):
    """Score the rows [lo, hi) of probabilities against hard labels into ``counts``/``sums``, in row order."""
    tile = _tile_rows(pred.shape[1], False)
    scratch = _probability_scratch(pred.shape[1], tile)
    scored = np.empty((N_SCORED, tile))
    no_targets = np.empty((0, pred.shape[1]))
    for start in range(lo, hi, tile):
        stop = min(start + tile, hi)
        _probability_tiles(pred, labels, eps, prediction_tolerance, start, stop, scratch, scored, 0)
        _accumulate_scored(scored, no_targets, False, weights, has_weights, group_ids, has_groups, status, n_bins,
                           counts, sums, start, stop)


@njit(error_model="numpy")
def _logit_span(pred, labels, weights, has_weights, group_ids, has_groups, status, eps, prediction_tolerance, n_bins,
                counts, sums, lo, hi):
    """Score the rows [lo, hi) of logits against hard labels into ``counts``/``sums``, in row order."""
    tile = _tile_rows(pred.shape[1], False)
    scratch = _logit_scratch(pred.shape[1], tile)
    scored = np.empty((N_SCORED, tile))
    no_targets = np.empty((0, pred.shape[1]))
    for start in range(lo, hi, tile):
        stop = min(start + tile, hi)
        _logit_tiles(pred, labels, eps, prediction_tolerance, start, stop, scratch, scored, 0)
        _accumulate_scored(scored, no_targets, False, weights, has_weights, group_ids, has_groups, status, n_bins,
                           counts, sums, start, stop)


@njit(error_model="numpy")
def _soft_span(pred, targets, weights, has_weights, group_ids, has_groups, status, eps, prediction_tolerance,
               target_tolerance, n_bins, counts, sums, lo, hi):
    """Score the rows [lo, hi) of probabilities against soft targets into ``counts``/``sums``, in row order."""
    tile = _tile_rows(pred.shape[1], True)
    value_terms = _soft_scratch(pred.shape[1], tile)
    scored = np.empty((N_SCORED, tile))
    for start in range(lo, hi, tile):
        stop = min(start + tile, hi)
        _soft_tiles(pred, targets, eps, prediction_tolerance, target_tolerance, start, stop, value_terms, scored,
                    0)
        _accumulate_scored(scored, targets, True, weights, has_weights, group_ids, has_groups, status, n_bins,
                           counts, sums, start, stop)


@njit(error_model="numpy")
def _general_span(pred, is_logits, labels, targets, has_targets, weights, has_weights, group_ids, has_groups,
                  status, eps, renormalize, prediction_tolerance, target_tolerance, n_bins, counts, sums, lo, hi):
    """Score the rows [lo, hi) row by row (renormalized rows, soft targets with logits), in row order."""
    n_classes = pred.shape[1]
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    q = np.empty(n_classes)
    logq = np.empty(n_classes)
    p = np.empty(n_classes)
    logp = np.empty(n_classes)
    gap = np.empty(n_classes)
    tile = _tile_rows(n_classes, False)
    for start in range(lo, hi, tile):
        _accumulate_multiclass_rows(pred, is_logits, labels, targets, has_targets, weights, has_weights,
                                    group_ids, has_groups, status, eps, log_eps, renormalize,
                                    prediction_tolerance, target_tolerance, n_bins, counts, sums, start,
                                    min(start + tile, hi), q, logq, p, logp, gap)
