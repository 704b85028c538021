"""The label-free pass: predictions alone, with neither labels nor targets.

For each valid row with weight w, predicted distribution q (softmax of logits; the probabilities, divided by
their sum with ``renormalize``; a binary column's two classes (1 - p, p)) and confidence c = max_k q_k
(binary: p, as the labelled binary pass bins it):

* ``rows += 1``, ``weight += w``, ``prediction_entropy += w H(Q)`` with H(Q) = -sum_k q_k log q_k (0 log 0 = 0);
* ``unnormalized`` and ``double_softmax`` counted as the full labelled pass counts them;
* in the top-label bin of c: ``count += 1``, ``weight += w``, ``confidence += w c``,
  ``confidence_squares += w c^2`` and ``weight_squares += w^2`` (``observed`` and ``confidence_observed``
  stay 0: there is nothing observed);

then the class-wise pass (``classwise``, no class-wise bins) adds ``class.prediction_mass`` and
``class.predicted_class``.  Rows are validated as the labelled passes validate them, with the same status
codes (a NaN or out-of-range probability, a NaN or +inf logit, all logits -inf, a bad weight; nulls are
marked by the columns layer).

Each row's terms come from the tile passes of the labelled family of the same layout (``probabilities``,
``logits``, ``binary``, ``general``'s per-row loads for ``renormalize``), run over the tile's own rows with
labels of 0 whose terms (q_0, the Brier sums, a JS midpoint) are not read: so H(Q), c and the counts are the
very values the labelled full pass of that layout computes, to the bit, and they are added in row order
within the blocks of ``blocks``, so the same bits for any batch size and thread count.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .binary import (BINARY_LOG_NOT_P, BINARY_LOG_P, BINARY_NOT_P, BINARY_P, BINARY_TILE_ROWS, N_BINARY_TERMS,
                     _binary_logs, _binary_row_status, binary_prediction_entropy)
from .general import _load_logits, _load_probabilities, _looks_double_softmax, _renormalize
from .layout import (BIN_CONFIDENCE, BIN_CONFIDENCE_SQUARES, BIN_WEIGHT, BIN_WEIGHT_SQUARES, DOUBLE_SOFTMAX,
                     IGNORED, PREDICTION_ENTROPY, ROWS, SKIPPED, UNNORMALIZED, WEIGHT, bin_count_slot,
                     bin_sum_slot)
from .logits import _logit_tile_sums, _score_hard_logits
from .primitives import _add, _reject, _row_weight, _tile_rows, bin_index
from .probabilities import (ROW_DOUBLE_SOFTMAX, ROW_ENTROPY, ROW_STATUS, ROW_TOP_VALUE, ROW_TOTAL, _entropy_terms,
                            _probability_tile_sums)
from .scored import (N_SCORED, SCORED_CONFIDENCE, SCORED_DOUBLE_SOFTMAX, SCORED_PREDICTION_ENTROPY, SCORED_STATUS,
                     SCORED_UNNORMALIZED)
from .status import CODE_IGNORED, OK, WEIGHT_NEGATIVE_OR_NAN
from .table import _logit_scratch, _probability_scratch


@njit(inline="always")
def _store_prediction_terms(scored, j, code, prediction_entropy, confidence, unnormalized, double_softmax):
    """Row j's terms in the scored-row table's columns that the label-free pass reads (the others unused)."""
    scored[SCORED_STATUS, j] = code
    scored[SCORED_PREDICTION_ENTROPY, j] = prediction_entropy
    scored[SCORED_CONFIDENCE, j] = confidence
    scored[SCORED_UNNORMALIZED, j] = 1.0 if unnormalized else 0.0
    scored[SCORED_DOUBLE_SOFTMAX, j] = 1.0 if double_softmax else 0.0


# ---- each layout's terms of one tile: ``rows`` are the tile's rows (a slice of the batch), so the labelled
# tile passes read their labels from a tile-sized array of zeros


@njit(error_model="numpy")
def _probability_terms(rows, is_logits, tolerance, scratch, scored):
    """Probabilities: H(Q), sum and max from _probability_tile_sums (as the hard-label tile pass)."""
    terms, row_terms, row_top, zero_labels = scratch
    n = rows.shape[0]
    any_bad = _entropy_terms(rows, 0, n, terms) > 0
    _probability_tile_sums(rows, zero_labels, 0, n, terms, any_bad, tolerance, row_terms, row_top)
    for j in range(n):
        _store_prediction_terms(scored, j, row_terms[ROW_STATUS, j], row_terms[ROW_ENTROPY, j],
                                row_terms[ROW_TOP_VALUE, j], abs(row_terms[ROW_TOTAL, j] - 1.0) > tolerance,
                                row_terms[ROW_DOUBLE_SOFTMAX, j] > 0.0)


@njit(error_model="numpy")
def _logit_terms(rows, is_logits, tolerance, scratch, scored):
    """Logits: H(Q) = log(1 + s) - W/(1 + s) and max q = 1/(1 + s), as _score_hard_logits gives them."""
    shifted, exps, row_terms, row_top, zero_labels = scratch
    _logit_tile_sums(rows, zero_labels, 0, rows.shape[0], tolerance, row_terms, row_top, shifted, exps)
    for j in range(rows.shape[0]):
        code, _, prediction_entropy, _, _, _, confidence, _, _, double_softmax = _score_hard_logits(
            row_terms, row_top, j, 0.0, -math.inf)
        _store_prediction_terms(scored, j, code, prediction_entropy, confidence, False, double_softmax)


@njit(error_model="numpy")
def _row_terms(rows, is_logits, tolerance, scratch, scored):
    """Row by row (``renormalize``), as general._accumulate_multiclass_rows loads a row: q and log q in
    float64, the row divided by its sum, H(Q) summed over the classes with q > 0 in class order."""
    q, logq = scratch
    for j in range(rows.shape[0]):
        if is_logits:
            code, total, top = _load_logits(rows[j], q, logq)
        else:
            code, total, top = _load_probabilities(rows[j], q, logq)
        if code != OK:
            _store_prediction_terms(scored, j, code, 0.0, 0.0, False, False)
            continue
        unnormalized = abs(total - 1.0) > tolerance
        double_softmax = _looks_double_softmax(rows[j], is_logits, tolerance)
        _renormalize(q, logq, total)
        prediction_entropy = 0.0
        for k in range(q.shape[0]):
            if q[k] > 0.0:
                prediction_entropy -= q[k] * logq[k]
        _store_prediction_terms(scored, j, code, prediction_entropy, q[top], unnormalized, double_softmax)


@njit(error_model="numpy")
def _binary_terms(values, is_logits, tolerance, scratch, scored):
    """One binary column: p, 1 - p and their logs from _binary_logs, c = p (never unnormalized, one column)."""
    row_terms, zero_labels = scratch
    _binary_logs(values, is_logits, zero_labels, 0, values.shape[0], row_terms)
    for j in range(values.shape[0]):
        prob = row_terms[BINARY_P, j]
        prediction_entropy = binary_prediction_entropy(prob, row_terms[BINARY_NOT_P, j], row_terms[BINARY_LOG_P, j],
                                                       row_terms[BINARY_LOG_NOT_P, j])
        _store_prediction_terms(scored, j, _binary_row_status(np.float64(values[j]), 0, is_logits),
                                prediction_entropy, prob, False, False)


# ---- the accumulation, and the span of each layout


@njit(error_model="numpy")
def _accumulate_predictions(scored, weights, has_weights, group_ids, has_groups, status, n_bins, counts, sums,
                            start, stop):
    """Add each valid row of [start, stop) (row i's terms in column i - start of ``scored``) to its group's
    slots, in row order."""
    for i in range(start, stop):
        # The row preamble written out, as in every row loop (see _accumulate_multiclass_rows): here too, the
        # same lines behind an inline helper returning the weight measured slower, binary 24 -> 50 ns/row.
        g = group_ids[i] if has_groups else 0
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
        j = i - start
        code = int(scored[SCORED_STATUS, j])
        if code != OK:
            _reject(status, counts, g, i, code)
            continue
        counts[g, ROWS] += 1
        _add(sums, g, WEIGHT, w)
        _add(sums, g, PREDICTION_ENTROPY, w * scored[SCORED_PREDICTION_ENTROPY, j])
        if scored[SCORED_UNNORMALIZED, j] > 0.0:
            counts[g, UNNORMALIZED] += 1
        if scored[SCORED_DOUBLE_SOFTMAX, j] > 0.0:
            counts[g, DOUBLE_SOFTMAX] += 1
        confidence = scored[SCORED_CONFIDENCE, j]
        b = bin_index(confidence, n_bins)
        counts[g, bin_count_slot(b)] += 1
        _add(sums, g, bin_sum_slot(b, BIN_WEIGHT), w)
        _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE), w * confidence)
        _add(sums, g, bin_sum_slot(b, BIN_CONFIDENCE_SQUARES), w * confidence * confidence)
        _add(sums, g, bin_sum_slot(b, BIN_WEIGHT_SQUARES), w * w)


def _label_free_span(terms_of):
    """The span of one layout: its rows [lo, hi) scored tile by tile with ``terms_of`` (one of the *_terms
    above) and added into a block partial.  Made per layout, each calling its own terms as a constant (a
    function passed as an argument would keep the kernels out of numba's cache)."""

    @njit(error_model="numpy")
    def span(scratch, tile, batch, settings, partial, lo, hi):
        scored = np.empty((N_SCORED, tile))
        for start in range(lo, hi, tile):
            stop = min(start + tile, hi)
            terms_of(batch.pred[start:stop], settings.is_logits, settings.prediction_tolerance, scratch, scored)
            _accumulate_predictions(scored, batch.weights, batch.weights.shape[0] > 0, batch.group_ids,
                                    batch.group_ids.shape[0] > 0, batch.status, settings.n_bins, partial.counts,
                                    partial.sums, start, stop)

    return span


_probability_span = _label_free_span(_probability_terms)
_logit_span = _label_free_span(_logit_terms)
_row_span = _label_free_span(_row_terms)
_binary_span = _label_free_span(_binary_terms)


@njit(inline="always")
def label_free_probability_span(batch, settings, partial, lo, hi):
    """The label-free pass over the rows [lo, hi) of rows x K probabilities."""
    tile = _tile_rows(batch.pred.shape[1], False)
    terms, row_terms, row_top = _probability_scratch(batch.pred.shape[1], tile)
    scratch = (terms, row_terms, row_top, np.zeros(tile, dtype=np.int64))
    _probability_span(scratch, tile, batch, settings, partial, lo, hi)


@njit(inline="always")
def label_free_logit_span(batch, settings, partial, lo, hi):
    """The label-free pass over the rows [lo, hi) of rows x K logits."""
    tile = _tile_rows(batch.pred.shape[1], False)
    shifted, exps, row_terms, row_top = _logit_scratch(batch.pred.shape[1], tile)
    scratch = (shifted, exps, row_terms, row_top, np.zeros(tile, dtype=np.int64))
    _logit_span(scratch, tile, batch, settings, partial, lo, hi)


@njit(inline="always")
def label_free_row_span(batch, settings, partial, lo, hi):
    """The label-free pass over the rows [lo, hi) of rows x K predictions, row by row (``renormalize``)."""
    scratch = (np.empty(batch.pred.shape[1]), np.empty(batch.pred.shape[1]))
    _row_span(scratch, _tile_rows(batch.pred.shape[1], False), batch, settings, partial, lo, hi)


@njit(inline="always")
def label_free_binary_span(batch, settings, partial, lo, hi):
    """The label-free pass over the rows [lo, hi) of one binary column (a probability or a logit per row)."""
    scratch = (np.empty((N_BINARY_TERMS, BINARY_TILE_ROWS)), np.zeros(BINARY_TILE_ROWS, dtype=np.int64))
    _binary_span(scratch, BINARY_TILE_ROWS, batch, settings, partial, lo, hi)
