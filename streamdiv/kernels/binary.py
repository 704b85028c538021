"""Binary predictions: one positive-class probability (or logit) per row against labels in {0, 1} or soft
targets t in [0, 1]; the full pass through the scored-row table, the loss pass, and the per-row soft path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elementary import fast_exp, fast_log, fast_log1p
from .general import _soft_row
from .layout import IGNORED, SKIPPED, class_mass_slot
from .loss import _accumulate_loss
from .primitives import LN2, _add, _reject, _row_weight
from .probabilities import N_ROW_TERMS, ROW_DOUBLE_SOFTMAX, ROW_LOG_Q_LABEL, ROW_Q_LABEL, ROW_STATUS, ROW_TOTAL
from .scored import _add_reverse_kl, _add_row, _store_scored
from .status import (CODE_IGNORED, LABEL_OUT_OF_RANGE, LOGIT_NAN_OR_POSITIVE_INFINITY, OK, PREDICTION_NAN,
                     PREDICTION_OUT_OF_RANGE, TARGET_NAN, TARGET_OUT_OF_RANGE, WEIGHT_NEGATIVE_OR_NAN)

@njit(error_model="numpy")
def _binary_loss_terms(pred, is_logits, labels, start, stop, row_terms):
    """The loss table (as _loss_tile_terms) of the rows [start, stop) of binary predictions: q_y = p for y =
    1 and 1 - p otherwise, and log q_y, with the bits of _binary_logs' logs; the status as _binary_row_status
    gives it (a problem in the prediction before one in the label).  Branch-free, so that the loop
    vectorises; ROW_TOTAL and ROW_DOUBLE_SOFTMAX are the caller's, filled once a span."""
    if is_logits:
        for j in range(stop - start):
            v = np.float64(pred[start + j])
            y = labels[start + j]
            tail = fast_log1p(fast_exp(-abs(v)))
            log_qy = -(max(-v, 0.0) + tail) if y == 1 else -(max(v, 0.0) + tail)
            row_terms[ROW_LOG_Q_LABEL, j] = log_qy
            row_terms[ROW_Q_LABEL, j] = fast_exp(log_qy)
            row_terms[ROW_STATUS, j] = _binary_row_status(v, y, True)
    else:
        for j in range(stop - start):
            v = np.float64(pred[start + j])
            y = labels[start + j]
            # one log a row: log q_y = fast_log(p) for y = 1, and fast_log1p(-p) for y = 0, which is
            # fast_log(1 - p) corrected by ((1 - p) - 1 + p) / (1 - p): the same operations, so the same bits
            q = v if y == 1 else 1.0 - v
            log_q = fast_log(q) if q > 0.0 else -math.inf
            corrected = -v if q == 1.0 else log_q - ((q - 1.0) + v) / q
            row_terms[ROW_Q_LABEL, j] = q
            row_terms[ROW_LOG_Q_LABEL, j] = log_q if (y == 1 or not q > 0.0) else corrected
            row_terms[ROW_STATUS, j] = _binary_row_status(v, y, False)


BINARY_LOSS_TILE_ROWS = 2048  # rows of a binary loss table: 64 KiB of the four columns it fills


@njit(error_model="numpy")
def _binary_loss_span(pred, is_logits, labels, weights, has_weights, group_ids, has_groups, status, eps, n_bins,
                      counts, sums, lo, hi):
    """The loss alone for the rows [lo, hi) of binary predictions against labels in {0, 1}, in row order:
    the accumulation of _loss_span, on the binary loss table."""
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    row_terms = np.empty((N_ROW_TERMS, BINARY_LOSS_TILE_ROWS))
    row_terms[ROW_TOTAL] = 1.0  # never unnormalized: the two classes' masses are p and 1 - p
    row_terms[ROW_DOUBLE_SOFTMAX] = 0.0  # one column: K >= 3 leaves it out
    for start in range(lo, hi, BINARY_LOSS_TILE_ROWS):
        stop = min(start + BINARY_LOSS_TILE_ROWS, hi)
        _binary_loss_terms(pred, is_logits, labels, start, stop, row_terms)
        _accumulate_loss(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps, 1.0, n_bins,
                         2, counts, sums, row_terms, start, stop)


@njit
def _binary_prediction(x, is_logits):
    """(status, p, log p, log(1-p)) for a positive-class probability, or a logit z (log-odds):
    log p = -softplus(-z), log(1-p) = -softplus(z), with softplus(t) = max(t, 0) + log1p(exp(-|t|))."""
    v = np.float64(x)
    if is_logits:
        if v != v or v == math.inf:
            return LOGIT_NAN_OR_POSITIVE_INFINITY, 0.0, 0.0, 0.0
        if v == -math.inf:
            return OK, 0.0, -math.inf, 0.0
        tail = math.log1p(math.exp(-abs(v)))
        log_p = -(max(-v, 0.0) + tail)
        log_not_p = -(max(v, 0.0) + tail)
        return OK, math.exp(log_p), log_p, log_not_p
    if v != v:
        return PREDICTION_NAN, 0.0, 0.0, 0.0
    if v < 0.0 or v > 1.0:
        return PREDICTION_OUT_OF_RANGE, 0.0, 0.0, 0.0
    log_p = math.log(v) if v > 0.0 else -math.inf
    log_not_p = math.log1p(-v) if v < 1.0 else -math.inf
    return OK, v, log_p, log_not_p


BINARY_TILE_ROWS = 256  # rows whose logs are computed together, vectorised across rows, before the scalar accumulation
# Columns of a binary tile's row table (``row_terms[column, j]`` for the tile's row j)
BINARY_P = 0  # p, the positive-class probability
BINARY_NOT_P = 1  # 1 - p (from a logit: exp(log(1 - p)), accurate where p is close to 1)
BINARY_LOG_P = 2
BINARY_LOG_NOT_P = 3
BINARY_LOG_MIDPOINT = 4  # log m_y, the label's JS midpoint: log((1 + p)/2) for y = 1, log((2 - p)/2) else
N_BINARY_TERMS = 5


@njit(error_model="numpy")
def _binary_logs(pred, is_logits, labels, start, stop, row_terms):
    """For rows [start, stop): p, 1 - p, their logs and the log of the label's JS midpoint, branch-free so
    that the loop vectorises.  Rows with bad values get garbage here and are rejected by the scalar pass.

    One loop per layout, not a test inside one loop: LLVM does not take a flag's test out of the loop, and
    the loop then does not vectorise (4.5 -> 11.5 ns/row)."""
    if is_logits:
        for j in range(stop - start):
            log_p, log_not_p = _fast_logit_logs(np.float64(pred[start + j]))
            _store_binary_terms(row_terms, j, fast_exp(log_p), fast_exp(log_not_p), log_p, log_not_p,
                                labels[start + j] == 1)
    else:
        for j in range(stop - start):
            v = np.float64(pred[start + j])
            log_p = fast_log(v) if v > 0.0 else -math.inf
            log_not_p = fast_log1p(-v) if v < 1.0 else -math.inf
            _store_binary_terms(row_terms, j, v, 1.0 - v, log_p, log_not_p, labels[start + j] == 1)


@njit(inline="always")
def _fast_logit_logs(v):
    """(log p, log(1 - p)) of a logit v with the vectorisable fast_log1p and fast_exp: -softplus(-v) and
    -softplus(v), softplus(t) = max(t, 0) + log1p(exp(-|t|))."""
    tail = fast_log1p(fast_exp(-abs(v)))
    return -(max(-v, 0.0) + tail), -(max(v, 0.0) + tail)


@njit(inline="always")
def binary_prediction_entropy(prob, other, log_p, log_not_p):
    """H(Q) of the two classes (1 - p, p), from p, 1 - p and their logs (0 log 0 = 0)."""
    return -(prob * log_p if prob > 0.0 else 0.0) - (other * log_not_p if other > 0.0 else 0.0)


@njit(inline="always")
def binary_top_class(x, is_logits, soft):
    """The predicted class of a binary row, 1 where p > 0.5 (else 0), p as the pass of its family reads it for
    the ``correct`` slot: the probability itself; from a logit, exp of _fast_logit_logs' log p (labels, and
    the label-free pass) or _binary_prediction's p (soft targets).  A logit of 0 is class 0."""
    v = np.float64(x)
    if not is_logits:
        return 1 if v > 0.5 else 0
    p = _binary_prediction(v, True)[1] if soft else fast_exp(_fast_logit_logs(v)[0])
    return 1 if p > 0.5 else 0


@njit(inline="always")
def _store_binary_terms(row_terms, j, prob, other, log_p, log_not_p, positive):
    """The row's terms; of the two JS midpoints only the label's: log((1 + p)/2) = log1p(p) - ln 2 for y =
    1, log((2 - p)/2) = log1p(-p/2) - 0 otherwise, the argument chosen before the one log1p (a third fewer
    logs per row than taking both)."""
    row_terms[BINARY_P, j] = prob
    row_terms[BINARY_NOT_P, j] = other
    row_terms[BINARY_LOG_P, j] = log_p
    row_terms[BINARY_LOG_NOT_P, j] = log_not_p
    row_terms[BINARY_LOG_MIDPOINT, j] = fast_log1p(prob if positive else -0.5 * prob) - (LN2 if positive else 0.0)


@njit(inline="always")
def _binary_row_status(v, y, is_logits):
    """The status of a binary row: a problem in the prediction v (a NaN or +inf logit; a NaN probability,
    then one outside [0, 1]) before one in the label y (not 0 or 1).  Selects, not branches: a loop that
    calls it with a constant ``is_logits`` still vectorises."""
    label_code = OK if (y == 0 or y == 1) else LABEL_OUT_OF_RANGE
    if is_logits:
        return LOGIT_NAN_OR_POSITIVE_INFINITY if (v != v or v == math.inf) else label_code
    range_code = label_code if (v >= 0.0 and v <= 1.0) else PREDICTION_OUT_OF_RANGE
    return PREDICTION_NAN if v != v else range_code


@njit(inline="always")
def binary_label_row_terms(row_terms, j, y, eps, log_eps):
    """A binary row's scored terms from row j of its tile's table of logs, y in {0, 1}: (p, H(P,Q) (with
    eps clipping), H(Q), JS, Brier, whether eps clipped q_y)."""
    prob = row_terms[BINARY_P, j]
    other = row_terms[BINARY_NOT_P, j]
    log_p = row_terms[BINARY_LOG_P, j]
    log_not_p = row_terms[BINARY_LOG_NOT_P, j]
    qy = prob if y == 1 else other
    log_qy = log_p if y == 1 else log_not_p
    log_m = row_terms[BINARY_LOG_MIDPOINT, j]
    clipped = qy < eps
    cross = -log_eps if clipped else -log_qy
    js = -0.5 * log_m + 0.5 * LN2 * (other if y == 1 else prob)
    js += 0.5 * qy * (log_qy - log_m) if qy > 0.0 else 0.0  # a select: the loop has no branch
    js = js if js > 0.0 else 0.0
    return (prob, cross, binary_prediction_entropy(prob, other, log_p, log_not_p), js, (prob - y) * (prob - y),
            clipped)


@njit(error_model="numpy")
def _score_binary_rows(pred, is_logits, labels, eps, log_eps, start, stop, row_terms, scored):
    """The scored terms of the rows [start, stop) of binary predictions against labels in {0, 1}, from the
    tile's table of logs.  A problem in the prediction comes before one in the label."""
    for j in range(stop - start):
        y = labels[start + j]
        code = _binary_row_status(np.float64(pred[start + j]), y, is_logits)
        y = 1 if y == 1 else 0
        prob, cross, prediction_entropy, js, brier, clipped = binary_label_row_terms(row_terms, j, y, eps, log_eps)
        _store_scored(scored, j, code, cross, 0.0, cross, prediction_entropy, 0.0, js, brier, prob,
                      np.float64(y), (1 if prob > 0.5 else 0) == y, y, False, clipped, False)


@njit(error_model="numpy")
def _binary_soft_span(pred, is_logits, targets, weights, has_weights, group_ids, has_groups, status, eps, n_bins,
                      counts, sums, lo, hi):
    """Score the rows [lo, hi) of binary predictions against soft targets t in [0, 1], row by row."""
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    class_mass = class_mass_slot(n_bins)
    q = np.empty(2)
    logq = np.empty(2)
    p = np.empty(2)
    logp = np.empty(2)
    gap = np.empty(2)
    for i in range(lo, hi):
        # Written out, not shared: see the measurement in _accumulate_multiclass_rows.
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
        code, prob, log_p, log_not_p = _binary_prediction(pred[i], is_logits)
        t = 0.0
        if code == OK:
            t = np.float64(targets[i])
            if t != t:
                code = TARGET_NAN
            elif t < 0.0 or t > 1.0:
                code = TARGET_OUT_OF_RANGE
        if code != OK:
            _reject(status, counts, g, i, code)
            continue
        q[0] = math.exp(log_not_p) if is_logits else 1.0 - prob
        q[1] = prob
        logq[0] = log_not_p
        logq[1] = log_p
        p[0] = 1.0 - t
        p[1] = t
        logp[0] = math.log1p(-t) if t < 1.0 else -math.inf
        logp[1] = math.log(t) if t > 0.0 else -math.inf
        # The two classes' gaps are q_1 - t and its negative exactly (P and Q are each a distribution by
        # construction), from whichever of q_0, q_1 is accurate: 1 - t and 1 - p round, and for t and p near
        # each other the gap is far smaller than that rounding.
        gap[1] = (prob - t) if (prob <= 0.5 or not is_logits) else -(q[0] - p[0])
        gap[0] = -gap[1]
        cross, entropy, kl, prediction_entropy, reverse, js, clipped = _soft_row(p, logp, q, logq, gap, eps,
                                                                                 log_eps, True, True)
        _add_reverse_kl(counts, sums, g, w, reverse)
        _add(sums, g, class_mass, w * (1.0 - t))
        _add(sums, g, class_mass + 1, w * t)
        _add_row(counts, sums, g, w, cross, entropy, kl, prediction_entropy, js,
                 (1 if prob > 0.5 else 0) == (1 if t > 0.5 else 0), (prob - t) * (prob - t), prob, t, n_bins,
                 False, clipped, False)
