"""Soft targets against probabilities: per-value terms (every one with 0 log 0 = 0) in flat loops that
vectorise across rows, each row's sums over its classes, and the scoring of a row from them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elementary import fast_log
from .primitives import SCALAR_ROW_CLASSES, _argmax, _argmax_and_smallest, _first_problem, _looks_softmaxed_twice, _neumaier
from .scored import SCORED_STATUS, _store_scored
from .status import OK, PREDICTION_NAN, PREDICTION_OUT_OF_RANGE, TARGET_NAN, TARGET_OUT_OF_RANGE

# Per-value terms of soft targets P against probabilities Q (``value_terms[column, f]`` for the tile's flat
# value index f = j K + k), every term with 0 log 0 = 0
VALUE_CROSS = 0  # -p log q (q clipped to eps when clipping); +inf where p > 0 and q = 0
VALUE_ENTROPY = 1  # -p log p
VALUE_KL = 2  # p g((q - p)/p) >= 0, g(u) = u - log1p(u): p (log p - log q) + (q - p); q clipped as in VALUE_CROSS
VALUE_PREDICTION_ENTROPY = 3  # -q log q
VALUE_REVERSE_KL = 4  # q g((p - q)/q) >= 0: q (log q - log p) + (p - q); +inf where q > 0 and p = 0
VALUE_JS = 5  # (p (log p - log m) + q (log q - log m))/2 >= 0, m = (p + q)/2
VALUE_BRIER = 6  # (q - p)^2
VALUE_CLIPPED = 7  # 1.0 where p > 0 and q < eps
VALUE_BAD_TARGET = 8  # 1.0 where p is NaN or outside [0, 1]
VALUE_BAD_PREDICTION = 9  # 1.0 where q is NaN or outside [0, 1]
N_VALUE_TERMS = 10

# |s| = |q - p|/(p + q) below which the divergences' terms come from the series of _divergence_terms (u = (q -
# p)/p in [-1/3, 1/2]); above it the log form has no cancellation worth the name (|u|/g(u) <= 10).
SERIES_GAP = 0.2
# Coefficients of the series in z = s^2 (11 terms: the first left out is below 2^-56 of the sum at |s| = 0.2)
ATANH_TAIL = tuple(1.0 / (2 * n + 3) for n in range(11))  # (atanh(s) - s)/s^3 = sum_n z^n/(2n + 3)
MIXING = tuple(1.0 / ((n + 1) * (2 * n + 1)) for n in range(11))  # ((1+s)log(1+s) + (1-s)log(1-s))/z


@njit(inline="always")
def _series(c, z):
    """sum_{n<11} c[n] z^n by Horner's rule, written out so that the loops that call it vectorise."""
    return c[0] + z * (c[1] + z * (c[2] + z * (c[3] + z * (c[4] + z * (c[5] + z * (c[6] + z * (c[7] + z * (
        c[8] + z * (c[9] + z * c[10])))))))))


@njit(inline="always")
def _divergence_terms(pk, qk, gap, log_p, log_q, log_m, q_clipped, log_q_clipped):
    r"""One value's terms of KL(P||Q), KL(Q||P) and JS, each >= 0 and free of cancellation when q is near p.

    With d = q - p (``gap``, exact by Sterbenz's lemma when q/p is in [1/2, 2]) and g(u) = u - log1p(u) >= 0:

    .. math::

        p \log(p/q) = p\,g(d/p) - d, \qquad q \log(q/p) = q\,g(-d/q) + d,

    so a row's KL(P||Q) is sum_k p_k g(d_k/p_k) (this function's first value) less sum_k d_k, added with
    compensation (_add_gaps), which is 0 for rows that sum to 1.  With s = d/(p + q), z = s^2 and m = (p + q)/2,
    log(q/p) = 2 atanh(s), p/m = 1 - s and q/m = 1 + s give the series

    .. math::

        p\,g(d/p) = s d - 2 p s^3 T(z), \quad q\,g(-d/q) = s d + 2 q s^3 T(z), \quad
        \tfrac12 (p \log\tfrac{p}{m} + q \log\tfrac{q}{m}) = \tfrac14 (p + q)\, z\, J(z),

    T(z) = sum_n z^n/(2n + 3), J(z) = sum_n z^n/((n + 1)(2n + 1)), whose subtracted parts are under a tenth of
    the first (relative error a few ulp).  For |s| >= SERIES_GAP, or a clipped q (below eps, taken as
    ``q_clipped`` = eps with log q = log eps), the log form d + p (log p - log q), whose error is a few ulp of
    p |log p| over g.  Callers select away the terms of a zero p (KL) or q (reverse); a zero q under p > 0 gives +inf
    through log q = -inf, as a zero p under q > 0 does for the reverse."""
    s = gap / (pk + qk)
    z = s * s
    cube_tail = 2.0 * s * z * _series(ATANH_TAIL, z)
    near = abs(s) < SERIES_GAP
    forward = s * gap - pk * cube_tail if (near and q_clipped == qk) else (
        (q_clipped - pk) + pk * (log_p - log_q_clipped))
    reverse = s * gap + qk * cube_tail if near else -gap + qk * (log_q - log_p)
    js = 0.25 * (pk + qk) * z * _series(MIXING, z) if near else (
        (0.5 * pk * (log_p - log_m) if pk > 0.0 else 0.0) + (0.5 * qk * (log_q - log_m) if qk > 0.0 else 0.0))
    return forward, reverse, js


@njit(inline="always")
def _soft_value_logs(pk, qk):
    """(log p, log q, log m) with m = (p + q)/2: -inf where p or q is 0; log m is 0 where m is (then unused)."""
    mk = 0.5 * (pk + qk)
    return (fast_log(pk) if pk > 0.0 else -math.inf, fast_log(qk) if qk > 0.0 else -math.inf,
            fast_log(mk) if mk > 0.0 else 0.0)


@njit(inline="always")
def _soft_value_term_set(pk, qk, log_p, log_q, log_m, eps, log_eps):
    """One value's terms, in VALUE_* order, from p, q and their logs (see _soft_value_logs); a term whose mass
    is 0 is 0, so 0 log 0 = 0, and log q is clipped at log eps inside H(P,Q) and KL(P||Q) only."""
    clipped = qk < eps
    log_q_clipped = log_eps if clipped else log_q
    on_p = pk > 0.0
    on_q = qk > 0.0
    forward, reverse, js = _divergence_terms(pk, qk, qk - pk, log_p, log_q, log_m, eps if clipped else qk,
                                             log_q_clipped)
    return (-pk * log_q_clipped if on_p else 0.0,
            -pk * log_p if on_p else 0.0,
            forward if on_p else 0.0,
            -qk * log_q if on_q else 0.0,
            reverse if on_q else 0.0,
            js,
            (qk - pk) * (qk - pk),
            1.0 if (on_p and clipped) else 0.0,
            0.0 if (pk >= 0.0 and pk <= 1.0) else 1.0,
            0.0 if (qk >= 0.0 and qk <= 1.0) else 1.0)


@njit(inline="always")
def _add_gaps(pk, qk, eps, gaps, gaps_error, forward_extra, reverse_extra):
    """One value's step of a row's gap sums: the compensated (Neumaier) sum of d = q - p, exact or nearly
    (Sterbenz) and near 0 where the KL is small, so that the compensation keeps its error near eps^2 of the
    gaps, not eps of them; and plain sums of the corrections that make it KL(P||Q)'s
    sum_{p>0} (max(q, eps) - p) (less sum_{p=0} q, plus the clipping's eps - q) and KL(Q||P)'s
    sum_{q>0} (q - p) (plus sum_{q=0} p).  Those corrections (clipping aside) are at most the KL they enter (KL(P||Q) >=
    -log(1 - sum_{p=0} q) >= sum_{p=0} q), so their rounding is eps of the result."""
    gaps, gaps_error = _neumaier(gaps, gaps_error, qk - pk)
    forward_extra += (max(qk, eps) - qk) if pk > 0.0 else -qk
    reverse_extra += pk if qk == 0.0 else 0.0
    return gaps, gaps_error, forward_extra, reverse_extra


@njit(inline="always")
def _gap_totals(gaps, gaps_error, forward_extra, reverse_extra):
    """(KL(P||Q)'s gap sum, KL(Q||P)'s gap sum) from the sums of _add_gaps."""
    total = gaps + gaps_error
    return total + forward_extra, total + reverse_extra


@njit(error_model="numpy")
def _soft_value_terms(pred, targets, start, stop, eps, log_eps, value_terms):
    """Each value's terms (VALUE_*) for the rows [start, stop), as one flat loop that vectorises across rows:
    the logs and products of soft targets cost per value, not per row, and a loop over a row's few classes
    spends its time in horizontal sums and its scalar remainder (K = 10: 74 -> 33 ns/row, logs included)."""
    flat_q = pred[start:stop].reshape(-1)
    flat_p = targets[start:stop].reshape(-1)
    for f in range(flat_q.shape[0]):
        pk = np.float64(flat_p[f])
        qk = np.float64(flat_q[f])
        log_p, log_q, log_m = _soft_value_logs(pk, qk)
        terms = _soft_value_term_set(pk, qk, log_p, log_q, log_m, eps, log_eps)
        for column in range(N_VALUE_TERMS):
            value_terms[column, f] = terms[column]


@njit(inline="always")
def _soft_row_sums(target, pred, value_terms, base, eps):
    """The sums over one row's classes of its value terms, in class order, and of P and Q:
    (bad P, bad Q, sum P, sum Q, H(P,Q), H(P), KL(P||Q), H(Q), KL(Q||P), JS, Brier, clipped terms); the KLs
    are their VALUE_* sums less (plus) the row's sums of gaps (_add_gaps)."""
    bad_p = bad_q = total_p = total_q = cross = entropy = kl = prediction_entropy = reverse = js = brier = 0.0
    clipped = gaps = gaps_error = forward_extra = reverse_extra = 0.0
    for k in range(pred.shape[0]):
        f = base + k
        pk = np.float64(target[k])
        qk = np.float64(pred[k])
        total_p += pk
        total_q += qk
        gaps, gaps_error, forward_extra, reverse_extra = _add_gaps(pk, qk, eps, gaps, gaps_error, forward_extra,
                                                                   reverse_extra)
        cross += value_terms[VALUE_CROSS, f]
        entropy += value_terms[VALUE_ENTROPY, f]
        kl += value_terms[VALUE_KL, f]
        prediction_entropy += value_terms[VALUE_PREDICTION_ENTROPY, f]
        reverse += value_terms[VALUE_REVERSE_KL, f]
        js += value_terms[VALUE_JS, f]
        brier += value_terms[VALUE_BRIER, f]
        clipped += value_terms[VALUE_CLIPPED, f]
        bad_p += value_terms[VALUE_BAD_TARGET, f]
        bad_q += value_terms[VALUE_BAD_PREDICTION, f]
    forward_gaps, reverse_gaps = _gap_totals(gaps, gaps_error, forward_extra, reverse_extra)
    return (bad_p, bad_q, total_p, total_q, cross, entropy, kl - forward_gaps, prediction_entropy,
            reverse + reverse_gaps, js if js > 0.0 else 0.0, brier, clipped > 0.0)


# Rows of many classes keep the older split: logs in a flat loop, then each row's terms and sums in SIMD lanes.
# The per-value terms above cost ten arrays of memory traffic, which pays at K = 10 and not at K = 1000
# (in memory, one thread: 7.6 against 6.1 ns a value).
@njit(error_model="numpy")
def _soft_logs(pred, targets, start, stop, log_p, log_q, log_m):
    """_soft_value_logs of every value of the rows [start, stop), as one flat loop that vectorises across
    rows; for rows of more than SCALAR_ROW_CLASSES classes, before _wide_soft_row_sums."""
    flat_q = pred[start:stop].reshape(-1)
    flat_p = targets[start:stop].reshape(-1)
    for f in range(flat_q.shape[0]):
        log_p[f], log_q[f], log_m[f] = _soft_value_logs(np.float64(flat_p[f]), np.float64(flat_q[f]))


@njit(fastmath={"reassoc"}, error_model="numpy")
def _wide_soft_row_sums(target, pred, log_p, log_q, log_m, base, eps, log_eps):
    """For rows of more than SCALAR_ROW_CLASSES classes: one pass in SIMD lanes over a soft target row P, a
    probability row Q and their logs (from ``base`` in the tile's flat log arrays), every term with
    0 log 0 = 0:
    (bad P, bad Q, sum P, sum Q, H(P,Q), H(P), KL(P||Q), H(Q), KL(Q||P), JS, Brier, clipped terms).
    A zero q_k under p_k > 0 makes H(P,Q) and KL +inf; a zero p_k under q_k > 0 makes KL(Q||P) +inf.
    The KLs here are the sums of VALUE_KL and VALUE_REVERSE_KL alone: the gaps' compensated sums
    (_row_gap_sums) cannot run under ``reassoc``, which deletes the compensation."""
    bad_p = bad_q = total_p = total_q = cross = entropy = kl = prediction_entropy = reverse = js = brier = 0.0
    clipped = 0.0
    for k in range(pred.shape[0]):
        pk = np.float64(target[k])
        qk = np.float64(pred[k])
        total_p += pk
        total_q += qk
        (cross_k, entropy_k, kl_k, prediction_entropy_k, reverse_k, js_k, brier_k, clipped_k, bad_p_k,
         bad_q_k) = _soft_value_term_set(pk, qk, log_p[base + k], log_q[base + k], log_m[base + k], eps, log_eps)
        cross += cross_k
        entropy += entropy_k
        kl += kl_k
        prediction_entropy += prediction_entropy_k
        reverse += reverse_k
        js += js_k
        brier += brier_k
        clipped += clipped_k
        bad_p += bad_p_k
        bad_q += bad_q_k
    return (bad_p, bad_q, total_p, total_q, cross, entropy, kl, prediction_entropy, reverse,
            js if js > 0.0 else 0.0, brier, clipped > 0.0)


@njit(inline="always")
def _row_gap_sums(target, pred, eps):
    """A row's compensated sums of gaps (_add_gaps): (sum_{p>0} (max(q, eps) - p), sum_{q>0} (q - p))."""
    gaps = gaps_error = forward_extra = reverse_extra = 0.0
    for k in range(pred.shape[0]):
        gaps, gaps_error, forward_extra, reverse_extra = _add_gaps(
            np.float64(target[k]), np.float64(pred[k]), eps, gaps, gaps_error, forward_extra, reverse_extra)
    return _gap_totals(gaps, gaps_error, forward_extra, reverse_extra)


@njit(inline="always")
def _with_gaps(row_sums, gaps):
    """Row sums of _wide_soft_row_sums with the KLs completed by the row's gap sums (_row_gap_sums)."""
    (bad_p, bad_q, total_p, total_q, cross, entropy, kl, prediction_entropy, reverse, js, brier,
     clipped) = row_sums
    forward_gaps, reverse_gaps = gaps
    return (bad_p, bad_q, total_p, total_q, cross, entropy, kl - forward_gaps, prediction_entropy,
            reverse + reverse_gaps, js, brier, clipped)


@njit(inline="always")
def _score_soft_row(scored, j, pred_row, target_row, prediction_tolerance, target_tolerance, row_sums):
    """Row j of the scored table from a soft row's sums (see _soft_row_sums), the argmaxes of Q and P, and
    the smallest q (whether Q looks softmaxed twice)."""
    (bad_p, bad_q, total_p, total_q, cross, entropy, kl, prediction_entropy, reverse, js, brier,
     clipped) = row_sums
    top_q, confidence, smallest = _argmax_and_smallest(pred_row)
    y, _ = _argmax(target_row)
    code = PREDICTION_OUT_OF_RANGE if bad_q > 0.0 else (TARGET_OUT_OF_RANGE if bad_p > 0.0 else OK)
    unnormalized = abs(total_q - 1.0) > prediction_tolerance or abs(total_p - 1.0) > target_tolerance
    _store_scored(scored, j, code, cross, entropy, kl, prediction_entropy, reverse, js, brier, confidence,
                  np.float64(target_row[top_q]), top_q == y, y, unnormalized, clipped,
                  _looks_softmaxed_twice(confidence, smallest, pred_row.shape[0], prediction_tolerance))


@njit(error_model="numpy")
def _soft_tile_sums(pred, targets, start, stop, eps, log_eps, prediction_tolerance, target_tolerance, scored,
                     at, value_terms):
    """The scored terms of the rows [start, stop) of probabilities against soft targets, into the columns
    from ``at`` of ``scored`` (a loop of its own: see _accumulate_scored_rows).  The status is the row's
    first problem: its prediction's, else its target's."""
    n_classes = pred.shape[1]
    # One loop for each, not a test inside one loop: with the call in it, K = 10 went 89 -> 101 ns/row.
    if n_classes > SCALAR_ROW_CLASSES:
        _soft_logs(pred, targets, start, stop, value_terms[0], value_terms[1], value_terms[2])
        for i in range(start, stop):
            j = i - start
            _score_soft_row(scored, at + j, pred[i], targets[i], prediction_tolerance, target_tolerance,
                            _with_gaps(_wide_soft_row_sums(targets[i], pred[i], value_terms[0], value_terms[1],
                                                           value_terms[2], j * n_classes, eps, log_eps),
                                       _row_gap_sums(targets[i], pred[i], eps)))
    else:
        _soft_value_terms(pred, targets, start, stop, eps, log_eps, value_terms)
        for i in range(start, stop):
            j = i - start
            _score_soft_row(scored, at + j, pred[i], targets[i], prediction_tolerance, target_tolerance,
                            _soft_row_sums(targets[i], pred[i], value_terms, j * n_classes, eps))
    for j in range(stop - start):  # rare: which problem a bad row has (NaN wins over out of range)
        if scored[SCORED_STATUS, at + j] == PREDICTION_OUT_OF_RANGE:
            scored[SCORED_STATUS, at + j] = _first_problem(pred[start + j], PREDICTION_NAN,
                                                           PREDICTION_OUT_OF_RANGE)
        elif scored[SCORED_STATUS, at + j] == TARGET_OUT_OF_RANGE:
            scored[SCORED_STATUS, at + j] = _first_problem(targets[start + j], TARGET_NAN, TARGET_OUT_OF_RANGE)
