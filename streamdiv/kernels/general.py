"""The general per-row path: renormalized rows and soft targets with logits, each row loaded into float64 arrays
and scored on its own (the common layouts take the tile passes of ``table``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .layout import IGNORED, SKIPPED, class_mass_slot
from .primitives import LN2, _add, _looks_softmaxed_twice, _neumaier, _reject, _row_looks_like_probabilities, _row_weight
from .scored import _add_reverse_kl, _add_row
from .soft import (VALUE_CLIPPED, VALUE_CROSS, VALUE_ENTROPY, VALUE_PREDICTION_ENTROPY, _divergence_terms,
                   _soft_value_term_set)
from .status import (CODE_IGNORED, LABEL_OUT_OF_RANGE, LOGITS_ALL_NEGATIVE_INFINITY,
                     LOGIT_NAN_OR_POSITIVE_INFINITY, OK, PREDICTION_NAN, PREDICTION_OUT_OF_RANGE, TARGET_NAN,
                     TARGET_OUT_OF_RANGE, WEIGHT_NEGATIVE_OR_NAN)

@njit
def _load_probabilities(row, q, logq):
    """Copy a probability row into float64 ``q`` and ``log q``; returns (status, sum of q, argmax q)."""
    total = 0.0
    best = -1.0
    top = 0
    for k in range(row.shape[0]):
        x = np.float64(row[k])
        if x != x:
            return PREDICTION_NAN, 0.0, 0
        if x < 0.0 or x > 1.0:
            return PREDICTION_OUT_OF_RANGE, 0.0, 0
        q[k] = x
        logq[k] = math.log(x) if x > 0.0 else -math.inf
        total += x
        if x > best:
            best = x
            top = k
    return OK, total, top


@njit
def _load_logits(row, q, logq):
    """Log-softmax of a logit row in float64; returns (status, 1.0, argmax).

    With m = max z at index a and s = sum_{j != a} exp(z_j - m):  log q_j = (z_j - m) - log1p(s).
    Unlike ``logsumexp(z) - z_y`` this keeps full relative accuracy on confident rows.
    """
    m = -math.inf
    top = -1
    for k in range(row.shape[0]):
        z = np.float64(row[k])
        if z != z or z == math.inf:
            return LOGIT_NAN_OR_POSITIVE_INFINITY, 0.0, 0
        if z > m:
            m = z
            top = k
    if top < 0:
        return LOGITS_ALL_NEGATIVE_INFINITY, 0.0, 0
    s = 0.0
    for k in range(row.shape[0]):
        if k != top:
            s += math.exp(np.float64(row[k]) - m)
    log_norm = math.log1p(s)
    for k in range(row.shape[0]):
        lq = (np.float64(row[k]) - m) - log_norm
        logq[k] = lq
        q[k] = math.exp(lq)
    return OK, 1.0, top


@njit
def _load_targets(row, p, logp):
    """Copy a target row into float64 ``p`` and ``log p``; returns (status, sum of p, argmax p)."""
    total = 0.0
    best = -1.0
    top = 0
    for k in range(row.shape[0]):
        x = np.float64(row[k])
        if x != x:
            return TARGET_NAN, 0.0, 0
        if x < 0.0 or x > 1.0:
            return TARGET_OUT_OF_RANGE, 0.0, 0
        p[k] = x
        logp[k] = math.log(x) if x > 0.0 else -math.inf
        total += x
        if x > best:
            best = x
            top = k
    return OK, total, top


@njit
def _looks_double_softmax(row, is_logits, tolerance):
    """Whether a valid row looks softmaxed twice: probabilities as flat as softmax of values in [0, 1]
    (_looks_softmaxed_twice; the ratio max/min does not change with renormalization), or logits that are a
    probability distribution (_row_looks_like_probabilities)."""
    if is_logits:
        return _row_looks_like_probabilities(row, tolerance)
    top = bottom = np.float64(row[0])
    for k in range(row.shape[0]):
        z = np.float64(row[k])
        top = max(top, z)
        bottom = min(bottom, z)
    return _looks_softmaxed_twice(top, bottom, row.shape[0], tolerance)


@njit
def _renormalize(q, logq, total):
    if total > 0.0 and total != 1.0:
        log_total = math.log(total)
        for k in range(q.shape[0]):
            q[k] = q[k] / total
            logq[k] = logq[k] - log_total


@njit
def _soft_row(p, logp, q, logq, gap, eps, log_eps, prediction_normalized, target_normalized):
    """Per-row information terms for a soft target P against a prediction Q, each value's from
    _soft_value_term_set (terms with zero mass are 0), with ``gap[k]`` = q_k - p_k exact where the caller
    knows it better than q_k - p_k of the rounded values (binary rows: p and 1 - p).

    Returns (H(P,Q), H(P), KL(P||Q), H(Q), KL(Q||P), JS(P,Q), clipped) in nats; with eps > 0, log q is
    clipped at log(eps) inside H(P,Q) and KL(P||Q) only.  KL(P||Q) = sum_{p>0} p g(d/p) - sum_{p>0} (q - p)
    and KL(Q||P) = sum_{q>0} q g(-d/q) + sum_{q>0} (q - p) (see soft._divergence_terms), each linear sum
    compensated; for a row that is a distribution by construction (``prediction_normalized``: logits or
    renormalized; ``target_normalized``: renormalized), its sum over every class is taken as exactly 1, so
    sum_{p>0} q = 1 - sum_{p=0} q: the rounding of its values is not read as a mass difference.
    """
    cross = entropy = kl = prediction_entropy = reverse = js = clipped = 0.0
    start = (1.0 if prediction_normalized else 0.0) - (1.0 if target_normalized else 0.0)
    forward_gaps = reverse_gaps = start
    forward_error = reverse_error = 0.0
    for k in range(q.shape[0]):
        pk = p[k]
        qk = q[k]
        mk = 0.5 * (pk + qk)
        log_m = math.log(mk) if mk > 0.0 else 0.0
        terms = _soft_value_term_set(pk, qk, logp[k], logq[k], log_m, eps, log_eps)
        cross += terms[VALUE_CROSS]
        entropy += terms[VALUE_ENTROPY]
        prediction_entropy += terms[VALUE_PREDICTION_ENTROPY]
        clipped += terms[VALUE_CLIPPED]
        q_clipped = eps if qk < eps else qk
        forward, backward, js_k = _divergence_terms(pk, qk, gap[k], logp[k], logq[k], log_m, q_clipped,
                                                    log_eps if qk < eps else logq[k])
        kl += forward if pk > 0.0 else 0.0
        reverse += backward if qk > 0.0 else 0.0  # +inf where p = 0 < q: KL(Q||P) is infinite
        js += js_k
        # The linear sums' terms: sum_{p>0} q_clipped - sum_k p and sum_k q - sum_{q>0} p, a normalized row's
        # sum over every class replaced by 1 (in the start values above).
        if not prediction_normalized and not target_normalized:
            x = gap[k] + (q_clipped - qk) if pk > 0.0 else 0.0
            y = gap[k] if qk > 0.0 else 0.0
        elif not target_normalized:
            x = ((q_clipped - qk) if pk > 0.0 else -qk) - pk
            y = -pk if qk > 0.0 else 0.0
        elif not prediction_normalized:
            x = q_clipped if pk > 0.0 else 0.0
            y = qk if qk > 0.0 else pk
        else:
            x = (q_clipped - qk) if pk > 0.0 else -qk
            y = pk if qk == 0.0 else 0.0
        forward_gaps, forward_error = _neumaier(forward_gaps, forward_error, x)
        reverse_gaps, reverse_error = _neumaier(reverse_gaps, reverse_error, y)
    kl -= forward_gaps + forward_error
    reverse += reverse_gaps + reverse_error
    if js < 0.0:  # rounding can take a zero divergence a few ulp below zero
        js = 0.0
    return cross, entropy, kl, prediction_entropy, reverse, js, clipped > 0.0


@njit
def _hard_row(y, q, logq, eps, log_eps):
    """Per-row terms for a hard label y (P one-hot): H(P,Q) = KL = -log q_y, H(P) = 0.

    JS needs one log only: for k != y, M_k = q_k/2, so q_k log(q_k/M_k) = q_k log 2.
    Returns (H(P,Q), H(Q), JS, Brier = sum_k (q_k - [k = y])^2, clipped).
    """
    qy = q[y]
    lq = logq[y]
    clipped = False
    if qy < eps:
        lq = log_eps
        clipped = True
    prediction_entropy = 0.0
    brier = 0.0
    rest = 0.0
    for k in range(q.shape[0]):
        qk = q[k]
        if qk > 0.0:
            prediction_entropy -= qk * logq[k]
        if k == y:
            brier += (qk - 1.0) * (qk - 1.0)
        else:
            brier += qk * qk
            rest += qk
    log_m = math.log(0.5 * (1.0 + qy))
    js = -0.5 * log_m + 0.5 * LN2 * rest
    if qy > 0.0:
        js += 0.5 * qy * (logq[y] - log_m)
    if js < 0.0:
        js = 0.0
    return -lq, prediction_entropy, js, brier, clipped


@njit(error_model="numpy")
def _accumulate_multiclass_rows(pred, is_logits, labels, targets, has_targets, weights, has_weights,
                                group_ids, has_groups, status, eps, log_eps, renormalize, prediction_tolerance,
                                target_tolerance, n_bins, counts, sums, start, stop, q, logq, p, logp, gap):
    """The scalar pass over the rows [start, stop) of one tile, for renormalized
    rows and soft logits (the common layouts go through the scored-row table: _accumulate_scored_rows)."""
    n_classes = pred.shape[1]
    class_mass = class_mass_slot(n_bins)
    for i in range(start, stop):
        # The row preamble is written out in each row loop on purpose: the same lines behind a shared inline
        # helper returning (group, weight) measured twice as slow (re-measured with the tile passes:
        # K=10 47 -> 101 ns/row, binary 33 -> 62).
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
        if is_logits:
            code, total_q, top_q = _load_logits(pred[i], q, logq)
        else:
            code, total_q, top_q = _load_probabilities(pred[i], q, logq)
        y = 0
        total_p = 1.0
        if code == OK:
            if has_targets:
                code, total_p, y = _load_targets(targets[i], p, logp)
            else:
                y = labels[i]
                if y < 0 or y >= n_classes:
                    code = LABEL_OUT_OF_RANGE
        if code != OK:
            _reject(status, counts, g, i, code)
            continue
        unnormalized = abs(total_q - 1.0) > prediction_tolerance or abs(total_p - 1.0) > target_tolerance
        double_softmax = _looks_double_softmax(pred[i], is_logits, prediction_tolerance)
        if renormalize:
            _renormalize(q, logq, total_q)
            if has_targets:
                _renormalize(p, logp, total_p)
        confidence = q[top_q]
        if has_targets:
            for k in range(n_classes):
                gap[k] = q[k] - p[k]
            cross, entropy, kl, prediction_entropy, reverse, js, clipped = _soft_row(
                p, logp, q, logq, gap, eps, log_eps, is_logits or renormalize, renormalize)
            brier = 0.0
            for k in range(n_classes):
                brier += (q[k] - p[k]) * (q[k] - p[k])
                _add(sums, g, class_mass + k, w * p[k])
            observed = p[top_q]
            _add_reverse_kl(counts, sums, g, w, reverse)
        else:
            cross, prediction_entropy, js, brier, clipped = _hard_row(y, q, logq, eps, log_eps)
            entropy = 0.0
            kl = cross
            observed = 1.0 if top_q == y else 0.0
            _add(sums, g, class_mass + y, w)
        _add_row(counts, sums, g, w, cross, entropy, kl, prediction_entropy, js, top_q == y, brier,
                 confidence, observed, n_bins, unnormalized, clipped, double_softmax)
