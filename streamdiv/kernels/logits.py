"""Hard labels against logits: the tile passes that fill a logit tile's row table (argmax, shifted exponentials
and their sums, the softmax denominator's log), and the scoring of a row from it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elementary import fast_exp, fast_log1p
from .primitives import LN2, SCALAR_ROW_CLASSES, _row_looks_like_probabilities
from .status import LOGITS_ALL_NEGATIVE_INFINITY, LOGIT_NAN_OR_POSITIVE_INFINITY, OK

@njit(inline="always")
def _logit_argmax(row):
    """(status, index of the largest logit (lowest on ties), largest logit): the status is
    LOGIT_NAN_OR_POSITIVE_INFINITY if any logit is NaN or +inf, LOGITS_ALL_NEGATIVE_INFINITY if all are -inf."""
    top = 0
    best = -math.inf
    for k in range(row.shape[0]):
        z = np.float64(row[k])
        if z != z or z == math.inf:
            return LOGIT_NAN_OR_POSITIVE_INFINITY, 0, 0.0
        if z > best:
            best = z
            top = k
    return (LOGITS_ALL_NEGATIVE_INFINITY if best == -math.inf else OK), top, best


@njit(fastmath={"reassoc"}, error_model="numpy")
def _logit_row_sums(row, top_value, top, y):
    """With d_k = z_k - max z and e_k = exp(d_k): (s, W, B, R) = sums over k != argmax of e_k and e_k d_k,
    the sum of e_k^2 over k != y, and the sum of e_k over k != y (e_argmax = 1)."""
    s = 0.0
    weighted = 0.0
    squares = 0.0
    rest = 0.0
    for k in range(row.shape[0]):
        d = np.float64(row[k]) - top_value
        e = fast_exp(d)
        e = 1.0 if k == top else e
        others = 0.0 if k == top else e
        s += others
        weighted += others * d if others > 0.0 else 0.0
        squares += 0.0 if k == y else e * e
        rest += 0.0 if k == y else e
    return s, weighted, squares, rest


# Columns of a logit tile's row table, with d_k = z_k - max z, e_k = exp(d_k) and s = sum_{k != argmax} e_k
LOGIT_STATUS = 0  # OK, LOGIT_NAN_OR_POSITIVE_INFINITY or LOGITS_ALL_NEGATIVE_INFINITY
LOGIT_SUM = 1  # s: the softmax denominator is 1 + s
LOGIT_WEIGHTED = 2  # W = sum_{k != argmax} e_k d_k
LOGIT_SQUARES = 3  # B = sum_{k != y} e_k^2
LOGIT_REST = 4  # R = sum_{k != y} e_k
LOGIT_LOG_NORM = 5  # log(1 + s)
LOGIT_LOG_Q_LABEL = 6  # log q_y = d_y - log(1 + s)
LOGIT_Q_LABEL = 7  # q_y
LOGIT_LOG_MIDPOINT = 8  # log((1 + q_y)/2), the JS midpoint of the one-hot target
LOGIT_DOUBLE_SOFTMAX = 9  # 1.0 where the logits are a distribution (_row_looks_like_probabilities)
N_LOGIT_TERMS = 10


@njit(error_model="numpy")
def _logit_tile_sums(pred, labels, start, stop, prediction_tolerance, row_terms, row_top, shifted, exps):
    """Each logit row's argmax and sums over its classes for the rows [start, stop), then, vectorised
    across the rows, the logs of their softmax denominators, log q_y, q_y and the JS midpoints.  A row
    whose logits are a distribution within the row-sum tolerance ``prediction_tolerance`` is flagged in
    LOGIT_DOUBLE_SOFTMAX."""
    n_classes = pred.shape[1]
    if n_classes <= SCALAR_ROW_CLASSES:
        _small_logit_row_sums(pred, labels, start, stop, row_terms, row_top, shifted, exps)
        _logit_logs(start, stop, row_terms)
        _logits_like_probabilities(pred, start, stop, prediction_tolerance, row_terms, row_top)
        return
    for i in range(start, stop):
        j = i - start
        y = labels[i]
        y = y if (y >= 0 and y < n_classes) else 0  # the scalar pass rejects rows with bad labels
        code, top, top_value = _logit_argmax(pred[i])
        s = weighted = squares = rest = 0.0
        label_gap = 0.0
        if code == OK:
            s, weighted, squares, rest = _logit_row_sums(pred[i], top_value, top, y)
            label_gap = np.float64(pred[i, y]) - top_value
        row_terms[LOGIT_STATUS, j] = code
        row_terms[LOGIT_SUM, j] = s
        row_terms[LOGIT_WEIGHTED, j] = weighted
        row_terms[LOGIT_SQUARES, j] = squares
        row_terms[LOGIT_REST, j] = rest
        row_terms[LOGIT_LOG_Q_LABEL, j] = label_gap  # d_y until _logit_logs
        row_top[j] = top
    _logit_logs(start, stop, row_terms)
    _logits_like_probabilities(pred, start, stop, prediction_tolerance, row_terms, row_top)


@njit(error_model="numpy")
def _small_logit_row_sums(pred, labels, start, stop, row_terms, row_top, shifted, exps):
    """_logit_tile_sums' row sums for rows of a few classes, in three loops: each row's argmax, then
    d = z - max z and e = exp(d) for every value of the tile in one flat loop that vectorises (a loop over a
    row's few classes spends its time in its scalar remainder), then each row's sums in class order.
    K = 10: 51 -> 40 ns/row, one thread."""
    n_classes = pred.shape[1]
    for i in range(start, stop):
        j = i - start
        code, top, top_value = _logit_argmax(pred[i])
        row_terms[LOGIT_STATUS, j] = code
        row_top[j] = top
        top_value = top_value if code == OK else 0.0  # the row is rejected: any finite shift will do
        for k in range(n_classes):
            shifted[j * n_classes + k] = top_value
    flat = pred[start:stop].reshape(-1)
    for f in range(flat.shape[0]):
        d = np.float64(flat[f]) - shifted[f]
        shifted[f] = d
        exps[f] = fast_exp(d)
    for i in range(start, stop):
        j = i - start
        y = labels[i]
        y = y if (y >= 0 and y < n_classes) else 0  # the scalar pass rejects rows with bad labels
        top = row_top[j]
        base = j * n_classes
        s = weighted = squares = rest = 0.0
        for k in range(n_classes):
            d = shifted[base + k]
            e = 1.0 if k == top else exps[base + k]
            others = 0.0 if k == top else e
            s += others
            weighted += others * d if others > 0.0 else 0.0
            squares += 0.0 if k == y else e * e
            rest += 0.0 if k == y else e
        ok = row_terms[LOGIT_STATUS, j] == OK
        row_terms[LOGIT_SUM, j] = s if ok else 0.0
        row_terms[LOGIT_WEIGHTED, j] = weighted if ok else 0.0
        row_terms[LOGIT_SQUARES, j] = squares if ok else 0.0
        row_terms[LOGIT_REST, j] = rest if ok else 0.0
        row_terms[LOGIT_LOG_Q_LABEL, j] = shifted[base + y] if ok else 0.0  # d_y until _logit_logs


@njit(error_model="numpy")
def _logits_like_probabilities(pred, start, stop, prediction_tolerance, row_terms, row_top):
    """LOGIT_DOUBLE_SOFTMAX of the rows [start, stop) (_row_looks_like_probabilities), in a loop of its own:
    every logit in [0, 1] needs max z in [0, 1], which few rows of a trained model's logits have (softmax of
    N(0, 2^2) logits, K = 10: 2.5%), so only those rows are read again.  Counted in the row sums' loops, the
    test cost K = 10 logits 15-20 ns/row."""
    for j in range(stop - start):
        looks = False
        if row_terms[LOGIT_STATUS, j] == OK:
            top_value = np.float64(pred[start + j, row_top[j]])
            if top_value >= 0.0 and top_value <= 1.0:
                looks = _row_looks_like_probabilities(pred[start + j], prediction_tolerance)
        row_terms[LOGIT_DOUBLE_SOFTMAX, j] = 1.0 if looks else 0.0


@njit(error_model="numpy")
def _logit_logs(start, stop, row_terms):
    """Vectorised across the rows [start, stop): log(1 + s), log q_y = d_y - log(1 + s), q_y and log M_y."""
    for j in range(stop - start):
        log_norm = fast_log1p(row_terms[LOGIT_SUM, j])
        log_qy = row_terms[LOGIT_LOG_Q_LABEL, j] - log_norm
        qy = fast_exp(log_qy)
        row_terms[LOGIT_LOG_NORM, j] = log_norm
        row_terms[LOGIT_LOG_Q_LABEL, j] = log_qy
        row_terms[LOGIT_Q_LABEL, j] = qy
        row_terms[LOGIT_LOG_MIDPOINT, j] = fast_log1p(qy) - LN2


@njit(inline="always")
def _score_hard_logits(row_terms, row_top, j, eps, log_eps):
    """As _score_hard_probabilities, for row j of a logit tile's row table: log q_y = d_y - log(1 + s),
    H(Q) = log(1 + s) - W/(1 + s), Brier = (B + R^2)/(1 + s)^2 = sum_{k != y} q_k^2 + (1 - q_y)^2, and
    JS = -log(M_y)/2 + q_y (log q_y - log M_y)/2 + (ln 2 / 2) R/(1 + s) with M_y = (1 + q_y)/2; the sum of
    q is 1, and the last value is whether the logits look like probabilities (LOGIT_DOUBLE_SOFTMAX)."""
    code = int(row_terms[LOGIT_STATUS, j])
    norm = 1.0 + row_terms[LOGIT_SUM, j]
    rest = row_terms[LOGIT_REST, j]
    log_qy = row_terms[LOGIT_LOG_Q_LABEL, j]
    qy = row_terms[LOGIT_Q_LABEL, j]
    log_midpoint = row_terms[LOGIT_LOG_MIDPOINT, j]
    clipped = qy < eps
    cross = -log_eps if clipped else -log_qy
    prediction_entropy = row_terms[LOGIT_LOG_NORM, j] - row_terms[LOGIT_WEIGHTED, j] / norm
    brier = (row_terms[LOGIT_SQUARES, j] + rest * rest) / (norm * norm)
    js = -0.5 * log_midpoint + 0.5 * LN2 * (rest / norm)
    if qy > 0.0:
        js += 0.5 * qy * (log_qy - log_midpoint)
    js = js if js > 0.0 else 0.0
    return (code, cross, prediction_entropy, js, brier, row_top[j], 1.0 / norm, 1.0, clipped,
            row_terms[LOGIT_DOUBLE_SOFTMAX, j] > 0.0)
