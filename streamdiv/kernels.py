"""Numba kernels: one fused pass over a batch that validates rows and updates the state.

This module imports numpy, numba, math and the vectorisable log/exp of ``elementary`` only; it knows nothing of
Arrow, files or groups' names.

The state of one accumulator is two arrays, indexed by group id ``g``:

* ``counts[g, c]``, int64: the count slots ``ROWS`` ... ``CLIPPED``, then one count per calibration bin;
* ``sums[g, s, 0:2]``, float64 (sum, Neumaier compensation): the weighted sums ``WEIGHT`` ...
  ``REVERSE_KL_WEIGHT``, then five sums per calibration bin (``BIN_*``), then one target mass per class.

Every sum is accumulated row by row with Neumaier's compensated summation inside fixed blocks of the stream
(``ROW_BLOCK`` rows, aligned on the row's index in the stream), and the blocks' partials are added in block
order; so a result does not depend on how the stream was cut into batches nor on how many threads ran the
blocks, to the bit.  Accumulators must never be compiled with ``fastmath``: ``reassoc`` deletes the
compensation.

Input arrays are 1-D or 2-D numpy views (``pred`` rows x classes for the multi-class layout); status codes
for each row are read from and written to ``status`` so that the caller can report the first bad row.

The common layouts (hard labels with probabilities or logits, soft targets, binary) score a few thousand
rows at a time in two steps: *block passes* compute each row's terms into the block's *scored-row table*
(logs and per-value terms in flat loops that vectorise across rows, then sums over a row's classes, argmax,
status), then one *call-free loop*, shared by those layouts, validates the rows and adds their terms in row
order.  What the measurements taught, each written where it applies:

* a loop small and free of calls on every path, rare ones included: the same lines inside one large loop
  body ran 1.5-2x slower;
* for rows of one group (no groups, or a run of a sorted group column), the running (sum, compensation)
  pairs in local variables, not in ``sums``: LLVM cannot tell ``sums`` from the other arrays the loop
  writes, so each step waited on a store;
* one loop per value of a flag (``is_logits``, bad values present), not a test inside a loop that should
  vectorise: LLVM does not take the test out, and the loop then does not vectorise;
* for rows of a few classes, per-value terms in flat loops, not a vectorised loop per row, which spends its
  time in horizontal sums and its scalar remainder.

Renormalized rows and soft targets with logits take the general per-row path
(``_accumulate_multiclass_rows``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .elementary import bits_float, fast_exp, fast_log, fast_log1p, float_bits

# ---- per-row status codes (uint8). Codes below CODE_IGNORED are set by the columns layer before the kernel.
OK = 0
NULL_PREDICTION = 1
NULL_LABEL = 2
NULL_TARGET = 3
NULL_WEIGHT = 4
UNKNOWN_LABEL = 5
WRONG_LENGTH_PREDICTION = 6
WRONG_LENGTH_TARGET = 7
CODE_IGNORED = 20  # ignore_label matched: counted apart, never an error
# set by the kernels
PREDICTION_NAN = 30
PREDICTION_OUT_OF_RANGE = 31
LOGIT_NAN_OR_POSITIVE_INFINITY = 32
LOGITS_ALL_NEGATIVE_INFINITY = 33
LABEL_OUT_OF_RANGE = 34
TARGET_NAN = 35
TARGET_OUT_OF_RANGE = 36
WEIGHT_NEGATIVE_OR_NAN = 37

# ---- count slots (int64)
ROWS = 0
SKIPPED = 1
IGNORED = 2
INFINITE = 3  # rows whose cross-entropy (and so KL) is +inf
INFINITE_REVERSE = 4  # rows whose reverse KL is +inf (soft targets only)
UNNORMALIZED = 5  # rows whose prediction or target does not sum to 1 within the tolerance
CLIPPED = 6  # rows where eps clipping changed a log term
N_COUNTS = 7  # followed by one count per calibration bin

# ---- compensated sum slots (float64 pairs); every sum is weighted
WEIGHT = 0
CROSS_ENTROPY = 1  # rows with finite cross-entropy only
CROSS_ENTROPY_SQUARES = 2  # for the standard error
CROSS_ENTROPY_WEIGHT = 3  # weight of the rows with finite cross-entropy
ENTROPY = 4
KL = 5  # finite rows only, as CROSS_ENTROPY
PREDICTION_ENTROPY = 6
REVERSE_KL = 7
REVERSE_KL_WEIGHT = 8
JS = 9
CORRECT = 10
BRIER = 11
N_SUMS = 12  # followed by BIN_FIELDS sums per calibration bin, then one target mass per class
BIN_WEIGHT = 0
BIN_CONFIDENCE = 1
BIN_OBSERVED = 2
BIN_CONFIDENCE_SQUARES = 3
BIN_CONFIDENCE_OBSERVED = 4
BIN_FIELDS = 5

LN2 = math.log(2.0)


@njit(inline="always")
def _add(sums, g, slot, x):
    """Neumaier's compensated ``sums[g, slot] += x``: the error of each addition goes to the second cell."""
    s = sums[g, slot, 0]
    t = s + x
    if abs(s) >= abs(x):
        sums[g, slot, 1] += (s - t) + x
    else:
        sums[g, slot, 1] += (x - t) + s
    sums[g, slot, 0] = t


@njit(inline="always")
def bin_index(confidence, n_bins):
    """Bin of a confidence c in [0, 1] with edges e_k = k/M in float64: [e_k, e_{k+1}), the last bin closed.

    ``int(c*M)`` alone misbins (0.29*100 = 28.999...), so the guess is corrected against the edges.
    """
    i = int(confidence * n_bins)
    if i >= n_bins:
        i = n_bins - 1
    elif i < 0:
        i = 0
    if confidence < i / n_bins:
        i -= 1
    elif i + 1 < n_bins and confidence >= (i + 1) / n_bins:
        i += 1
    return i


@njit(inline="always")
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


@njit(inline="always")
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


@njit(inline="always")
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


@njit(inline="always")
def _renormalize(q, logq, total):
    if total > 0.0 and total != 1.0:
        log_total = math.log(total)
        for k in range(q.shape[0]):
            q[k] = q[k] / total
            logq[k] = logq[k] - log_total


@njit(inline="always")
def _soft_row(p, logp, q, logq, eps, log_eps):
    """Per-row information terms for a soft target P against a prediction Q, each value's from
    _soft_value_term_set (terms with zero mass are 0).

    Returns (H(P,Q), H(P), KL(P||Q), H(Q), KL(Q||P), JS(P,Q), clipped) in nats; with eps > 0, log q is
    clipped at log(eps) inside H(P,Q) and KL(P||Q) only.
    """
    cross = entropy = kl = prediction_entropy = reverse = js = clipped = 0.0
    for k in range(q.shape[0]):
        mk = 0.5 * (p[k] + q[k])
        terms = _soft_value_term_set(p[k], q[k], logp[k], logq[k], math.log(mk) if mk > 0.0 else 0.0, eps,
                                     log_eps)
        cross += terms[VALUE_CROSS]
        entropy += terms[VALUE_ENTROPY]
        kl += terms[VALUE_KL]
        prediction_entropy += terms[VALUE_PREDICTION_ENTROPY]
        reverse += terms[VALUE_REVERSE_KL]  # +inf where p = 0 < q: KL(Q||P) is infinite
        js += terms[VALUE_JS]
        clipped += terms[VALUE_CLIPPED]
    if js < 0.0:  # rounding can take a zero divergence a few ulp below zero
        js = 0.0
    return cross, entropy, kl, prediction_entropy, reverse, js, clipped > 0.0


@njit(inline="always")
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


# The helpers below marked ``reassoc`` sum over the classes of one row so that LLVM may split those sums
# into SIMD lanes (with fast_log/fast_exp: 5x faster than libm's scalar calls).  That changes a row's value
# by rounding only, identically for every batch size and thread count.  They are deliberately not inlined
# by numba, so the flag stays on their own instructions and never reaches the compensated accumulators.
@njit(error_model="numpy")
def _entropy_terms(pred, start, stop, terms):
    """terms[(i - start) * K + k] = q_ik log q_ik (0 where q = 0) for the rows [start, stop), as one flat
    loop over their values (``pred`` is C-contiguous): vectorised across rows, which a 10-class row loop
    is not (it spends its time in the scalar remainder).  Returns how many values are NaN or outside [0, 1],
    so that the row pass checks each value only in a block that holds one."""
    flat = pred[start:stop].reshape(-1)
    bad = 0
    for j in range(flat.shape[0]):
        v = np.float64(flat[j])
        t = v * fast_log(v)
        terms[j] = t if v > 0.0 else 0.0
        bad += 0 if (v >= 0.0 and v <= 1.0) else 1
    return bad


# Columns of a block's row table (``row_terms[column, j]`` for the block's row j): what the hard-probability
# path computes for every row of a block before its scalar accumulation pass.
ROW_STATUS = 0  # OK, PREDICTION_NAN if any value is NaN, else PREDICTION_OUT_OF_RANGE if one is outside [0, 1]
ROW_TOTAL = 1  # sum_k q_k
ROW_ENTROPY = 2  # H(Q) = -sum_k q_k log q_k
ROW_BRIER = 3  # sum_k (q_k - [k = y])^2
ROW_TOP_VALUE = 4  # max_k q_k
ROW_Q_LABEL = 5  # q_y
ROW_LOG_Q_LABEL = 6  # log q_y
ROW_LOG_MIDPOINT = 7  # log((1 + q_y)/2), the JS midpoint of the one-hot target
N_ROW_TERMS = 8


@njit(error_model="numpy")
def _gather_label_probabilities(pred, labels, start, stop, row_terms):
    """row_terms[ROW_Q_LABEL] = q_iy for the rows [start, stop), gathered first so that the logs of them run
    as one vectorised loop (3x faster than logs of a gather).  Labels outside [0, K) read q_i0 here; the
    accumulation pass rejects those rows."""
    n_classes = pred.shape[1]
    q_label = row_terms[ROW_Q_LABEL]
    for i in range(start, stop):
        y = labels[i]
        y = y if (y >= 0 and y < n_classes) else 0
        q_label[i - start] = np.float64(pred[i, y])


@njit(error_model="numpy")
def _label_logs(pred, labels, start, stop, row_terms):
    """q_iy, log q_iy and log((1 + q_iy)/2) for the rows [start, stop)."""
    _gather_label_probabilities(pred, labels, start, stop, row_terms)
    q_label = row_terms[ROW_Q_LABEL]
    log_qy = row_terms[ROW_LOG_Q_LABEL]
    log_midpoint = row_terms[ROW_LOG_MIDPOINT]
    for j in range(stop - start):
        v = q_label[j]
        log_qy[j] = fast_log(v) if v > 0.0 else -math.inf
        log_midpoint[j] = fast_log1p(v) - LN2


@njit(inline="always")
def _probability_row_sums(row, terms, base, y, check):
    """One pass over a probability row and its q log q terms: (number of values NaN or outside [0, 1],
    sum q, H(Q), Brier = sum_k (q_k - [k = y])^2, argmax q (lowest index on ties), max q).  Written as
    one scalar loop whose five chains interleave: for few classes that beats the SIMD lanes of
    ``_probability_row_sums_simd`` (four horizontal reductions per row) plus an argmax: 14 against 24 ns/row
    at K = 10; from a few dozen classes on, the lanes win (K = 1000: Parquet end to end 0.37 s against 0.25)."""
    bad = 0.0
    total = 0.0
    negative_entropy = 0.0
    brier = 0.0
    top = 0
    best = np.float64(row[0])
    for k in range(row.shape[0]):
        v = np.float64(row[k])
        if check:
            bad += 0.0 if (v >= 0.0 and v <= 1.0) else 1.0
        total += v
        negative_entropy += terms[base + k]
        d = v - 1.0 if k == y else v
        brier += d * d
        if v > best:
            best = v
            top = k
    return bad, total, -negative_entropy, brier, top, best


@njit(fastmath={"reassoc"}, error_model="numpy")
def _probability_row_sums_simd(row, terms, base, y):
    """As _probability_row_sums, in SIMD lanes, with max q from the largest IEEE bit pattern: a float max
    reduction does not vectorise without ``nnan`` (which would delete the NaN checks), an integer one does,
    and the bits of floats >= 0 order as the floats do (rows with a NaN or a negative value are rejected)."""
    bad = 0.0
    total = 0.0
    negative_entropy = 0.0
    brier = 0.0
    top_bits = float_bits(0.0)
    for k in range(row.shape[0]):
        v = np.float64(row[k])
        bad += 0.0 if (v >= 0.0 and v <= 1.0) else 1.0
        total += v
        negative_entropy += terms[base + k]
        d = v - 1.0 if k == y else v
        brier += d * d
        top_bits = max(top_bits, float_bits(v))
    return bad, total, -negative_entropy, brier, bits_float(top_bits)


SCALAR_ROW_CLASSES = 16  # up to this many classes a row's sums run as one scalar pass


@njit(inline="always")
def _argmax(row):
    """(index, value) of the largest entry; ties go to the lowest index."""
    top = 0
    best = np.float64(row[0])
    for k in range(1, row.shape[0]):
        v = np.float64(row[k])
        if v > best:
            best = v
            top = k
    return top, best


@njit(error_model="numpy")
def _probability_block_sums(pred, labels, start, stop, terms, any_bad, row_terms, row_top):
    """Each row's sums over its classes for the rows [start, stop), into the block's row table.

    A loop of its own, apart from the accumulation pass (see _accumulate_scored_rows)."""
    n_classes = pred.shape[1]
    # Loops of their own, not tests inside one loop: LLVM optimises each on its own.
    if n_classes <= SCALAR_ROW_CLASSES and not any_bad:
        for i in range(start, stop):
            j = i - start
            bad, total, entropy, brier, top, top_value = _probability_row_sums(pred[i], terms, j * n_classes,
                                                                               labels[i], False)
            _store_row_sums(row_terms, row_top, j, bad, total, entropy, brier, top, top_value)
    elif n_classes <= SCALAR_ROW_CLASSES:
        for i in range(start, stop):
            j = i - start
            bad, total, entropy, brier, top, top_value = _probability_row_sums(pred[i], terms, j * n_classes,
                                                                               labels[i], True)
            _store_row_sums(row_terms, row_top, j, bad, total, entropy, brier, top, top_value)
    else:
        for i in range(start, stop):
            j = i - start
            bad, total, entropy, brier, top_value = _probability_row_sums_simd(pred[i], terms, j * n_classes,
                                                                               labels[i])
            top = _first_index_of(pred[i], top_value)
            _store_row_sums(row_terms, row_top, j, bad, total, entropy, brier, top, top_value)
    for j in range(stop - start):  # rare: which problem a bad row has, in a loop of its own
        if row_terms[ROW_STATUS, j] != OK:
            row_terms[ROW_STATUS, j] = _first_problem(pred[start + j], PREDICTION_NAN, PREDICTION_OUT_OF_RANGE)


@njit(inline="always")
def _store_row_sums(row_terms, row_top, j, bad, total, entropy, brier, top, top_value):
    row_terms[ROW_STATUS, j] = OK if bad == 0.0 else PREDICTION_OUT_OF_RANGE
    row_terms[ROW_TOTAL, j] = total
    row_terms[ROW_ENTROPY, j] = entropy
    row_terms[ROW_BRIER, j] = brier
    row_terms[ROW_TOP_VALUE, j] = top_value
    row_top[j] = top


@njit(inline="always")
def _first_index_of(row, value):
    """The lowest k with row[k] == value (0 if none: the row is then rejected)."""
    for k in range(row.shape[0]):
        if np.float64(row[k]) == value:
            return k
    return 0


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


@njit(inline="always")
def _first_problem(row, nan_code, range_code):
    """The status of a row known to hold a bad value: NaN anywhere wins over out of range."""
    for k in range(row.shape[0]):
        if np.float64(row[k]) != np.float64(row[k]):
            return nan_code
    return range_code


@njit(inline="always")
def _score_hard_probabilities(row_terms, row_top, j, eps, log_eps):
    """(status, H(P,Q), H(Q), JS, Brier, argmax, max q, sum q, clipped) for row j of a block's row table:
    a probability row and its label y."""
    code = int(row_terms[ROW_STATUS, j])
    total = row_terms[ROW_TOTAL, j]
    qy = row_terms[ROW_Q_LABEL, j]
    log_qy = row_terms[ROW_LOG_Q_LABEL, j]
    log_midpoint = row_terms[ROW_LOG_MIDPOINT, j]
    clipped = qy < eps
    cross = -log_eps if clipped else -log_qy
    js = -0.5 * log_midpoint + 0.5 * LN2 * max(total - qy, 0.0)
    if qy > 0.0:
        js += 0.5 * qy * (log_qy - log_midpoint)
    js = js if js > 0.0 else 0.0
    return (code, cross, row_terms[ROW_ENTROPY, j], js, row_terms[ROW_BRIER, j], row_top[j],
            row_terms[ROW_TOP_VALUE, j], total, clipped)


# Columns of a logit block's row table, with d_k = z_k - max z, e_k = exp(d_k) and s = sum_{k != argmax} e_k
LOGIT_STATUS = 0  # OK, LOGIT_NAN_OR_POSITIVE_INFINITY or LOGITS_ALL_NEGATIVE_INFINITY
LOGIT_SUM = 1  # s: the softmax denominator is 1 + s
LOGIT_WEIGHTED = 2  # W = sum_{k != argmax} e_k d_k
LOGIT_SQUARES = 3  # B = sum_{k != y} e_k^2
LOGIT_REST = 4  # R = sum_{k != y} e_k
LOGIT_LOG_NORM = 5  # log(1 + s)
LOGIT_LOG_Q_LABEL = 6  # log q_y = d_y - log(1 + s)
LOGIT_Q_LABEL = 7  # q_y
LOGIT_LOG_MIDPOINT = 8  # log((1 + q_y)/2), the JS midpoint of the one-hot target
N_LOGIT_TERMS = 9


@njit(error_model="numpy")
def _logit_block_sums(pred, labels, start, stop, row_terms, row_top, shifted, exps):
    """Each logit row's argmax and sums over its classes for the rows [start, stop), then, vectorised
    across the rows, the logs of their softmax denominators, log q_y, q_y and the JS midpoints."""
    n_classes = pred.shape[1]
    if n_classes <= SCALAR_ROW_CLASSES:
        _small_logit_row_sums(pred, labels, start, stop, row_terms, row_top, shifted, exps)
        _logit_logs(start, stop, row_terms)
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


@njit(error_model="numpy")
def _small_logit_row_sums(pred, labels, start, stop, row_terms, row_top, shifted, exps):
    """_logit_block_sums' row sums for rows of a few classes, in three loops: each row's argmax, then
    d = z - max z and e = exp(d) for every value of the block in one flat loop that vectorises (a loop over a
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
    """As _score_hard_probabilities, for row j of a logit block's row table: log q_y = d_y - log(1 + s),
    H(Q) = log(1 + s) - W/(1 + s), Brier = (B + R^2)/(1 + s)^2 = sum_{k != y} q_k^2 + (1 - q_y)^2, and
    JS = -log(M_y)/2 + q_y (log q_y - log M_y)/2 + (ln 2 / 2) R/(1 + s) with M_y = (1 + q_y)/2."""
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
    return code, cross, prediction_entropy, js, brier, row_top[j], 1.0 / norm, 1.0, clipped


# Per-value terms of soft targets P against probabilities Q (``value_terms[column, f]`` for the block's flat
# value index f = j K + k), every term with 0 log 0 = 0
VALUE_CROSS = 0  # -p log q (q clipped to eps when clipping); +inf where p > 0 and q = 0
VALUE_ENTROPY = 1  # -p log p
VALUE_KL = 2  # p (log p - log q)
VALUE_PREDICTION_ENTROPY = 3  # -q log q
VALUE_REVERSE_KL = 4  # q (log q - log p); +inf where q > 0 and p = 0
VALUE_JS = 5  # (p (log p - log m) + q (log q - log m))/2, m = (p + q)/2
VALUE_BRIER = 6  # (q - p)^2
VALUE_CLIPPED = 7  # 1.0 where p > 0 and q < eps
VALUE_BAD_TARGET = 8  # 1.0 where p is NaN or outside [0, 1]
VALUE_BAD_PREDICTION = 9  # 1.0 where q is NaN or outside [0, 1]
N_VALUE_TERMS = 10


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
    log_q_clipped = log_eps if qk < eps else log_q
    on_p = pk > 0.0
    on_q = qk > 0.0
    return (-pk * log_q_clipped if on_p else 0.0,
            -pk * log_p if on_p else 0.0,
            pk * (log_p - log_q_clipped) if on_p else 0.0,
            -qk * log_q if on_q else 0.0,
            qk * (log_q - log_p) if on_q else 0.0,
            (0.5 * pk * (log_p - log_m) if on_p else 0.0) + (0.5 * qk * (log_q - log_m) if on_q else 0.0),
            (qk - pk) * (qk - pk),
            1.0 if (on_p and qk < eps) else 0.0,
            0.0 if (pk >= 0.0 and pk <= 1.0) else 1.0,
            0.0 if (qk >= 0.0 and qk <= 1.0) else 1.0)


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
def _soft_row_sums(target, pred, value_terms, base):
    """The sums over one row's classes of its value terms, in class order, and of P and Q:
    (bad P, bad Q, sum P, sum Q, H(P,Q), H(P), KL(P||Q), H(Q), KL(Q||P), JS, Brier, clipped terms)."""
    bad_p = bad_q = total_p = total_q = cross = entropy = kl = prediction_entropy = reverse = js = brier = 0.0
    clipped = 0.0
    for k in range(pred.shape[0]):
        f = base + k
        total_p += np.float64(target[k])
        total_q += np.float64(pred[k])
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
    return (bad_p, bad_q, total_p, total_q, cross, entropy, kl, prediction_entropy, reverse,
            js if js > 0.0 else 0.0, brier, clipped > 0.0)


# ---- scored rows: the terms one row adds to the state, for the common layouts (hard labels with
# probabilities or logits, soft targets with probabilities, binary with labels).  A block's scoring pass fills
# this table (``scored[column, j]`` for the block's row j); one accumulation pass, shared by those layouts,
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
N_SCORED = 14


@njit(inline="always")
def _store_scored(scored, j, code, cross, entropy, kl, prediction_entropy, reverse, js, brier, confidence,
                  observed, correct, y, unnormalized, clipped):
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
    probability row Q and their logs (from ``base`` in the block's flat log arrays), every term with
    0 log 0 = 0:
    (bad P, bad Q, sum P, sum Q, H(P,Q), H(P), KL(P||Q), H(Q), KL(Q||P), JS, Brier, clipped terms).
    A zero q_k under p_k > 0 makes H(P,Q) and KL +inf; a zero p_k under q_k > 0 makes KL(Q||P) +inf."""
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
def _score_soft_row(scored, j, pred_row, target_row, prediction_tolerance, target_tolerance, row_sums):
    """Row j of the scored table from a soft row's sums (see _soft_row_sums) and the argmaxes of Q and P."""
    (bad_p, bad_q, total_p, total_q, cross, entropy, kl, prediction_entropy, reverse, js, brier,
     clipped) = row_sums
    top_q, confidence = _argmax(pred_row)
    y, _ = _argmax(target_row)
    code = PREDICTION_OUT_OF_RANGE if bad_q > 0.0 else (TARGET_OUT_OF_RANGE if bad_p > 0.0 else OK)
    unnormalized = abs(total_q - 1.0) > prediction_tolerance or abs(total_p - 1.0) > target_tolerance
    _store_scored(scored, j, code, cross, entropy, kl, prediction_entropy, reverse, js, brier, confidence,
                  np.float64(target_row[top_q]), top_q == y, y, unnormalized, clipped)


@njit(error_model="numpy")
def _soft_block_sums(pred, targets, start, stop, eps, log_eps, prediction_tolerance, target_tolerance, scored,
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
                            _wide_soft_row_sums(targets[i], pred[i], value_terms[0], value_terms[1],
                                                value_terms[2], j * n_classes, eps, log_eps))
    else:
        _soft_value_terms(pred, targets, start, stop, eps, log_eps, value_terms)
        for i in range(start, stop):
            j = i - start
            _score_soft_row(scored, at + j, pred[i], targets[i], prediction_tolerance, target_tolerance,
                            _soft_row_sums(targets[i], pred[i], value_terms, j * n_classes))
    for j in range(stop - start):  # rare: which problem a bad row has (NaN wins over out of range)
        if scored[SCORED_STATUS, at + j] == PREDICTION_OUT_OF_RANGE:
            scored[SCORED_STATUS, at + j] = _first_problem(pred[start + j], PREDICTION_NAN,
                                                           PREDICTION_OUT_OF_RANGE)
        elif scored[SCORED_STATUS, at + j] == TARGET_OUT_OF_RANGE:
            scored[SCORED_STATUS, at + j] = _first_problem(targets[start + j], TARGET_NAN, TARGET_OUT_OF_RANGE)


@njit(inline="always")
def _add_row(counts, sums, g, w, cross, entropy, kl, prediction_entropy, js, correct, brier,
             confidence, observed, n_bins, unnormalized, clipped):
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
    b = bin_index(confidence, n_bins)
    counts[g, N_COUNTS + b] += 1
    base = N_SUMS + b * BIN_FIELDS
    _add(sums, g, base + BIN_WEIGHT, w)
    _add(sums, g, base + BIN_CONFIDENCE, w * confidence)
    _add(sums, g, base + BIN_OBSERVED, w * observed)
    _add(sums, g, base + BIN_CONFIDENCE_SQUARES, w * confidence * confidence)
    _add(sums, g, base + BIN_CONFIDENCE_OBSERVED, w * confidence * observed)


# ---- unit weights: rows without a weight column add 1.0 (or 0.0) to five kinds of slot.  Summed row by row
# with Neumaier, a partial that holds a whole number n < 2^53 takes each such step exactly, to (n + 1, c); so
# counting the rows and adding the count once gives the same bits, at a third less accumulation per row.
# When a slot holds a fraction (weighted rows earlier in the same block), the rows take the row-by-row path.

@njit(inline="always")
def _unit_slots(sums, g, n_bins, has_weights):
    """Whether the rows of a call for one group may count their unit slots (see above): no weights, and
    every such slot of group g's partial a whole number."""
    if has_weights:
        return False
    for slot in (WEIGHT, CROSS_ENTROPY_WEIGHT, CORRECT):
        if not _whole(sums[g, slot, 0]):
            return False
    for b in range(n_bins):
        base = N_SUMS + b * BIN_FIELDS
        if not (_whole(sums[g, base + BIN_WEIGHT, 0]) and _whole(sums[g, base + BIN_OBSERVED, 0])):
            return False
    return True


@njit(inline="always")
def _whole(x):
    return abs(x) < 2.0 ** 52 and x == math.floor(x)


@njit(inline="always")
def _add_unit_counts(counts, sums, g, rows_before, infinite_before, bins_before, correct, bin_observed):
    """Add the unit slots' counts of one call (rows, finite rows, correct rows, rows and observed per bin)."""
    rows = counts[g, ROWS] - rows_before
    if rows == 0:
        return
    _add(sums, g, WEIGHT, np.float64(rows))
    _add(sums, g, CROSS_ENTROPY_WEIGHT, np.float64(rows - (counts[g, INFINITE] - infinite_before)))
    _add(sums, g, CORRECT, np.float64(correct))
    for b in range(bin_observed.shape[0]):
        in_bin = counts[g, N_COUNTS + b] - bins_before[b]
        if in_bin > 0:
            base = N_SUMS + b * BIN_FIELDS
            _add(sums, g, base + BIN_WEIGHT, np.float64(in_bin))
            _add(sums, g, base + BIN_OBSERVED, np.float64(bin_observed[b]))


@njit(inline="always")
def _add_pass_counts(counts, g, rows, ignored, skipped, infinite, infinite_reverse, unnormalized, clipped):
    """Add the row counts that a pass for one group kept in local variables to group g's count slots."""
    counts[g, ROWS] += rows
    counts[g, IGNORED] += ignored
    counts[g, SKIPPED] += skipped
    counts[g, INFINITE] += infinite
    counts[g, INFINITE_REVERSE] += infinite_reverse
    counts[g, UNNORMALIZED] += unnormalized
    counts[g, CLIPPED] += clipped


@njit(inline="always")
def _counts_labels(sums, g, class_mass, rows, unit):
    """Whether a call for one group may count its rows' labels and add each class's count once, rather than
    add w = 1.0 to a class mass row by row (the same bits: see above): unit weights, every class mass a whole
    number, and as many rows as classes at least, so that the array of counts costs less than it saves.  A
    class mass kept in ``sums`` is a chain through memory that rows of one class wait on (binary labels)."""
    n_classes = sums.shape[1] - class_mass
    if not unit or rows < n_classes:
        return False
    for k in range(n_classes):
        if not _whole(sums[g, class_mass + k, 0]):
            return False
    return True


@njit(inline="always")
def _add_label_counts(sums, g, class_mass, label_counts):
    for k in range(label_counts.shape[0]):
        if label_counts[k] > 0:
            _add(sums, g, class_mass + k, np.float64(label_counts[k]))


@njit(inline="always")
def _add_reverse_kl(counts, sums, g, w, reverse):
    """Add a row's KL(Q||P); an infinite one is counted instead, and makes the mean infinite."""
    if reverse == math.inf:
        counts[g, INFINITE_REVERSE] += 1
    else:
        _add(sums, g, REVERSE_KL, w * reverse)
        _add(sums, g, REVERSE_KL_WEIGHT, w)


@njit(inline="always")
def _reject(status, counts, g, i, code):
    """Mark row i invalid with ``code`` and count it as skipped in group g."""
    status[i] = code
    counts[g, SKIPPED] += 1


@njit(inline="always")
def _row_weight(weights, has_weights, i):
    """The row's weight, or -1.0 when it is negative, NaN or infinite."""
    if not has_weights:
        return 1.0
    w = np.float64(weights[i])
    if not (w >= 0.0) or w == math.inf:
        return -1.0
    return w


@njit(inline="always")
def _loss_alone(loss_only, is_logits, has_targets, renormalize):
    """Whether the loss-alone pass serves this layout: hard labels against probabilities, not renormalized
    (other layouts run the full pass and report the loss metrics only)."""
    return loss_only and not is_logits and not has_targets and not renormalize


@njit(inline="always")
def _scores_in_table(is_logits, has_targets, renormalize):
    """Whether rows of this layout go through the scored-row table (hard labels, or soft targets with
    probabilities) rather than the general per-row path."""
    return not renormalize and not (has_targets and is_logits)


@njit(inline="always")
def _table_block_rows(n_classes, soft):
    """Rows per block pass: 128 KiB of q log q terms, 320 KiB of soft value terms (K <= SCALAR_ROW_CLASSES)
    or 384 KiB of soft logs stay in L2."""
    few = soft and n_classes <= SCALAR_ROW_CLASSES
    return max(1, (4096 if few else 16384) // max(n_classes, 1))


@njit(inline="always")
def _table_scratch(n_classes, block, is_logits, soft):
    """The block passes' scratch for ``block`` rows: (terms, value_terms, row_terms, row_top).  Hard rows:
    q log q or the shifted logits d in ``terms``, exp(d) in value_terms[0], the row table in ``row_terms``;
    soft rows: the VALUE_* terms (or, for many classes, log p, log q and log m in rows 0-2)."""
    hard = not soft
    value_rows = N_VALUE_TERMS if soft else (1 if is_logits else 0)
    return (np.empty(block * n_classes if hard else 0), np.empty((value_rows, block * n_classes)),
            np.empty((max(N_ROW_TERMS, N_LOGIT_TERMS), block if hard else 0)),
            np.empty(block if hard else 0, dtype=np.int64))


@njit(error_model="numpy")
def _score_table_block(pred, is_logits, labels, targets, soft, eps, log_eps, prediction_tolerance,
                       target_tolerance, start, stop, scratch, scored, at):
    """The block passes of the rows [start, stop) (at most a block's rows): their scored terms into the
    columns from ``at`` of ``scored``."""
    terms, value_terms, row_terms, row_top = scratch
    if soft:
        _soft_block_sums(pred, targets, start, stop, eps, log_eps, prediction_tolerance, target_tolerance,
                         scored, at, value_terms)
        return
    if is_logits:
        _logit_block_sums(pred, labels, start, stop, row_terms, row_top, terms, value_terms[0])
    else:
        any_bad = _entropy_terms(pred, start, stop, terms) > 0
        _label_logs(pred, labels, start, stop, row_terms)
        _probability_block_sums(pred, labels, start, stop, terms, any_bad, row_terms, row_top)
    _score_hard_rows(is_logits, pred.shape[1], labels, eps, log_eps, prediction_tolerance, start, stop,
                     row_terms, row_top, scored, at)


@njit(error_model="numpy")
def _score_table_rows(pred, is_logits, labels, targets, soft, eps, prediction_tolerance, target_tolerance,
                      lo, hi, scored, at):
    """The scored terms of the rows [lo, hi), block pass by block pass, into the columns from ``at`` of
    ``scored``: one thread's share of a span scored in parallel (see accumulate_multiclass)."""
    n_classes = pred.shape[1]
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    block = _table_block_rows(n_classes, soft)
    scratch = _table_scratch(n_classes, block, is_logits, soft)
    for start in range(lo, hi, block):
        stop = min(start + block, hi)
        _score_table_block(pred, is_logits, labels, targets, soft, eps, log_eps, prediction_tolerance,
                           target_tolerance, start, stop, scratch, scored, at + start - lo)


# ---- the loss alone: cross-entropy of hard labels against probabilities, for Config.metrics == "loss"
#
# The same sums as the full pass for the slots the loss metrics read (weight, cross-entropy, its squares and
# finite weight, KL = cross-entropy, class masses), added in the same order, so the same bits; no prediction
# entropy, argmax, Brier or bins, hence no log per value: one flat range check, each row's sum, and one log
# per row.


@njit(error_model="numpy")
def _loss_block_terms(pred, labels, start, stop, row_terms):
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


# Rows of one group in a row -- a stream without groups, or a grouped stream sorted or partitioned by its
# groups, as most are -- are added by the pass for one group, whose running sums live in local variables
# rather than in ``sums``.  benchmarks/kernel.py, K = 10, 8 groups, one thread, the whole update() (group keys
# included): 53.0 ns/row in runs against 68.6 mixed.  Each slot sees its group's rows in the same order
# either way, so the bits are the same (tests/test_blocks.py reorders rows into runs and compares).
LONG_RUN = 128  # rows: what the pass for one group costs to set up is worth it from about this many rows


@njit(inline="always")
def _run_end(group_ids, i, stop):
    """End of the run of rows of row i's group that starts at row i (at most ``stop``)."""
    g = group_ids[i]
    end = i + 1
    while end < stop and group_ids[end] == g:
        end += 1
    return end


@njit(inline="always")
def _next_stretch(group_ids, has_groups, i, stop):
    """(end, one group) of the stretch of rows that starts at row i: all the rows up to ``stop`` without
    groups; else a run of at least LONG_RUN rows of one group, or the rows up to the next such run."""
    if not has_groups:
        return stop, True
    end = _run_end(group_ids, i, stop)
    if end - i >= LONG_RUN:
        return end, True
    while end < stop:
        run_end = _run_end(group_ids, end, stop)
        if run_end - end >= LONG_RUN:
            break
        end = run_end
    return end, False


@njit(error_model="numpy")
def _accumulate_loss_rows(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps,
                          prediction_tolerance, n_bins, counts, sums, row_terms, first, start, stop):
    """Add the rows [start, stop) of a loss block's row table (row i in column i - first) in row order:
    H(P,Q) = -log q_y (q_y clipped to eps when clipping), its square, the weights, KL = H(P,Q), and the
    label's class mass."""
    class_mass = N_SUMS + n_bins * BIN_FIELDS
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
                                   n_bins, counts, sums, g, row_terms, first, start, stop):
    """_accumulate_loss_rows for rows all of group g (see _next_stretch), with the running (sum,
    compensation) pairs in local variables (see _accumulate_scored_rows_of_group): 13.8 -> 11.8 ns/row at K =
    10 on one thread.  KL takes the cross-entropy's pair at the end: the same steps on the same values, so the
    same bits.  Unit weights and labels are counted, as in _accumulate_scored_rows_of_group
    (benchmarks/kernel.py, one thread: binary 10.4 -> 9.0 ns/row, K = 10 11.7 -> 9.7)."""
    class_mass = N_SUMS + n_bins * BIN_FIELDS
    unit = _unit_slots(sums, g, n_bins, has_weights)  # the slots it does not fill hold 0: whole
    counted = _counts_labels(sums, g, class_mass, stop - start, unit)
    label_counts = np.zeros(sums.shape[1] - class_mass if counted else 0, dtype=np.int64)
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
    _add_pass_counts(counts, g, rows, ignored, skipped, infinite, 0, unnormalized, clipped_rows)


@njit(inline="always")
def _accumulate_loss(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps, prediction_tolerance,
                     n_bins, counts, sums, row_terms, start, stop):
    """Add the rows [start, stop) of a loss table (its column 0 is row ``start``), in row order, each stretch
    by the pass that suits it (see _next_stretch)."""
    i = start
    while i < stop:
        end, one_group = _next_stretch(group_ids, has_groups, i, stop)
        if one_group:
            _accumulate_loss_rows_of_group(labels, weights, has_weights, status, eps, log_eps, prediction_tolerance,
                                           n_bins, counts, sums, group_ids[i] if has_groups else 0, row_terms,
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
    block = _table_block_rows(pred.shape[1], False)
    row_terms = np.empty((N_ROW_TERMS, block))
    for start in range(lo, hi, block):
        stop = min(start + block, hi)
        _loss_block_terms(pred, labels, start, stop, row_terms)
        _accumulate_loss(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps,
                         prediction_tolerance, n_bins, counts, sums, row_terms, start, stop)


@njit(error_model="numpy")
def _binary_loss_terms(pred, is_logits, labels, start, stop, row_terms):
    """The loss table (as _loss_block_terms) of the rows [start, stop) of binary predictions: q_y = p for y =
    1 and 1 - p otherwise, and log q_y, computed as _binary_logs computes them; the status as
    _binary_row_status gives it (a problem in the prediction before one in the label).  Branch-free, both
    logs of a row computed and one kept, so that the loop vectorises: 3.7 ns/row, against 4.9 with the status
    in a scalar loop of its own."""
    if is_logits:
        for j in range(stop - start):
            v = np.float64(pred[start + j])
            y = labels[start + j]
            tail = fast_log1p(fast_exp(-abs(v)))
            log_qy = -(max(-v, 0.0) + tail) if y == 1 else -(max(v, 0.0) + tail)
            row_terms[ROW_LOG_Q_LABEL, j] = log_qy
            row_terms[ROW_Q_LABEL, j] = fast_exp(log_qy)
            row_terms[ROW_STATUS, j] = _binary_row_status(v, y, True)
            row_terms[ROW_TOTAL, j] = 1.0  # never unnormalized: the two classes' masses are p and 1 - p
    else:
        for j in range(stop - start):
            v = np.float64(pred[start + j])
            y = labels[start + j]
            log_p = fast_log(v) if v > 0.0 else -math.inf
            log_not_p = fast_log1p(-v) if v < 1.0 else -math.inf
            row_terms[ROW_Q_LABEL, j] = v if y == 1 else 1.0 - v
            row_terms[ROW_LOG_Q_LABEL, j] = log_p if y == 1 else log_not_p
            row_terms[ROW_STATUS, j] = _binary_row_status(v, y, False)
            row_terms[ROW_TOTAL, j] = 1.0


BINARY_LOSS_BLOCK = 2048  # rows of a binary loss table: 64 KiB of the four columns it fills


@njit(error_model="numpy")
def _binary_loss_span(pred, is_logits, labels, weights, has_weights, group_ids, has_groups, status, eps, n_bins,
                      counts, sums, lo, hi):
    """The loss alone for the rows [lo, hi) of binary predictions against labels in {0, 1}, in row order:
    the accumulation of _loss_span, on the binary loss table."""
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    row_terms = np.empty((N_ROW_TERMS, BINARY_LOSS_BLOCK))
    for start in range(lo, hi, BINARY_LOSS_BLOCK):
        stop = min(start + BINARY_LOSS_BLOCK, hi)
        _binary_loss_terms(pred, is_logits, labels, start, stop, row_terms)
        _accumulate_loss(labels, weights, has_weights, group_ids, has_groups, status, eps, log_eps, 1.0, n_bins,
                         counts, sums, row_terms, start, stop)


@njit(error_model="numpy")
def _multiclass_span(pred, is_logits, labels, targets, has_targets, weights, has_weights, group_ids, has_groups,
                     status, eps, renormalize, prediction_tolerance, target_tolerance, loss_only, n_bins, counts,
                     sums, lo, hi):
    """Score the rows [lo, hi) of a batch of K-class predictions into ``counts``/``sums``, in row order."""
    n_classes = pred.shape[1]
    if _loss_alone(loss_only, is_logits, has_targets, renormalize):
        _loss_span(pred, labels, weights, has_weights, group_ids, has_groups, status, eps, prediction_tolerance,
                   n_bins, counts, sums, lo, hi)
        return
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    if _scores_in_table(is_logits, has_targets, renormalize):
        soft = has_targets
        block = _table_block_rows(n_classes, soft)
        scratch = _table_scratch(n_classes, block, is_logits, soft)
        scored = np.empty((N_SCORED, block))
        for start in range(lo, hi, block):
            stop = min(start + block, hi)
            _score_table_block(pred, is_logits, labels, targets, soft, eps, log_eps, prediction_tolerance,
                               target_tolerance, start, stop, scratch, scored, 0)
            _accumulate_scored(scored, targets, soft, weights, has_weights, group_ids, has_groups, status, n_bins,
                               counts, sums, start, stop)
        return
    q = np.empty(n_classes)
    logq = np.empty(n_classes)
    p = np.empty(n_classes)
    logp = np.empty(n_classes)
    block = _table_block_rows(n_classes, False)
    for start in range(lo, hi, block):
        _accumulate_multiclass_rows(pred, is_logits, labels, targets, has_targets, weights, has_weights,
                                    group_ids, has_groups, status, eps, log_eps, renormalize,
                                    prediction_tolerance, target_tolerance, n_bins, counts, sums, start,
                                    min(start + block, hi), q, logq, p, logp)


@njit(error_model="numpy")
def _score_hard_rows(is_logits, n_classes, labels, eps, log_eps, prediction_tolerance, start, stop, row_terms,
                     row_top, scored, at):
    """The scored terms of the rows [start, stop), from the block's row table of probabilities or logits,
    into the columns from ``at`` of ``scored``.  A label outside [0, K) is the row's problem, before any in
    its prediction."""
    for j in range(stop - start):
        y = labels[start + j]
        if is_logits:
            code, cross, prediction_entropy, js, brier, top, confidence, total, clipped = \
                _score_hard_logits(row_terms, row_top, j, eps, log_eps)
        else:
            code, cross, prediction_entropy, js, brier, top, confidence, total, clipped = \
                _score_hard_probabilities(row_terms, row_top, j, eps, log_eps)
        if y < 0 or y >= n_classes:
            code, y = LABEL_OUT_OF_RANGE, 0
        _store_scored(scored, at + j, code, cross, 0.0, cross, prediction_entropy, 0.0, js, brier, confidence,
                      1.0 if top == y else 0.0, top == y, y, abs(total - 1.0) > prediction_tolerance, clipped)


@njit(inline="always")
def _neumaier(total, compensation, x):
    """One step of Neumaier's compensated sum on a (sum, compensation) pair held in local variables."""
    t = total + x
    if abs(total) >= abs(x):
        compensation += (total - t) + x
    else:
        compensation += (x - t) + total
    return t, compensation


@njit(error_model="numpy")
def _accumulate_scored_rows(scored, targets, soft, weights, has_weights, group_ids, has_groups, status, n_bins,
                            counts, sums, first, start, stop):
    """The scalar pass over the rows [start, stop) of one block (row i's terms in column i - first of
    ``scored``): adds each valid row's scored terms to its group's slots, in row order; a row with a hard
    label adds w to its class's mass, one with a soft target w p_k to each class's.  Rows of one group take
    the faster _accumulate_scored_rows_of_group.

    A small function of its own, with no call on any path of its loop.  Inside a general pass (every layout
    in one loop body, with calls on its rare paths) the K = 10 span ran 56-98 ns/row depending on unrelated
    edits, against 52 with the split: LLVM optimises a call-free loop far better."""
    class_mass = N_SUMS + n_bins * BIN_FIELDS
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
                 scored[SCORED_UNNORMALIZED, j] > 0.0, scored[SCORED_CLIPPED, j] > 0.0)


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
    class_mass = N_SUMS + n_bins * BIN_FIELDS
    unit = not soft and _unit_slots(sums, g, n_bins, has_weights)  # soft rows observe fractions
    counted = _counts_labels(sums, g, class_mass, stop - start, unit)
    label_counts = np.zeros(sums.shape[1] - class_mass if counted else 0, dtype=np.int64)
    rows_before, infinite_before = counts[g, ROWS], counts[g, INFINITE]
    bins_before = counts[g, N_COUNTS:N_COUNTS + n_bins].copy()
    # Soft rows add to every class: their masses go to a local array.  A hard row adds to one class, in place:
    # copying every class's mass at each call cost K = 32000 logits (a call per row) 2x.
    mass = sums[g, class_mass:class_mass + (targets.shape[1] if soft else 0)].copy()
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
    rows = ignored = skipped = infinite = infinite_reverse = unnormalized = clipped = correct_rows = 0
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
        confidence = scored[SCORED_CONFIDENCE, j]
        observed = scored[SCORED_OBSERVED, j]
        b = bin_index(confidence, n_bins)
        counts[g, N_COUNTS + b] += 1
        base = N_SUMS + b * BIN_FIELDS
        if not unit:
            _add(sums, g, base + BIN_WEIGHT, w)
        _add(sums, g, base + BIN_CONFIDENCE, w * confidence)
        if not unit:
            _add(sums, g, base + BIN_OBSERVED, w * observed)
        _add(sums, g, base + BIN_CONFIDENCE_SQUARES, w * confidence * confidence)
        _add(sums, g, base + BIN_CONFIDENCE_OBSERVED, w * confidence * observed)
        correct_rows += correct
        bin_observed[b] += int(observed)  # used with unit slots only, where observed is 0 or 1
    sums[g, class_mass:class_mass + mass.shape[0]] = mass
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
    _add_pass_counts(counts, g, rows, ignored, skipped, infinite, infinite_reverse, unnormalized, clipped)
    if unit:
        _add_unit_counts(counts, sums, g, rows_before, infinite_before, bins_before, correct_rows, bin_observed)
    _add_label_counts(sums, g, class_mass, label_counts)


@njit(inline="always")
def _accumulate_scored(scored, targets, soft, weights, has_weights, group_ids, has_groups, status, n_bins,
                       counts, sums, start, stop):
    """Add the rows [start, stop) of a block's scored table (its column 0 is row ``start``), in row order, each
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


@njit(inline="always", error_model="numpy")
def _accumulate_multiclass_rows(pred, is_logits, labels, targets, has_targets, weights, has_weights,
                                group_ids, has_groups, status, eps, log_eps, renormalize, prediction_tolerance,
                                target_tolerance, n_bins, counts, sums, start, stop, q, logq, p, logp):
    """The scalar pass of accumulate_multiclass over the rows [start, stop) of one block, for renormalized
    rows and soft logits (the common layouts go through the scored-row table: _accumulate_scored_rows)."""
    n_classes = pred.shape[1]
    class_mass = N_SUMS + n_bins * BIN_FIELDS
    for i in range(start, stop):
        # The row preamble is written out in each row loop on purpose: the same lines behind a shared inline
        # helper returning (group, weight) measured twice as slow (re-measured with the block passes:
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
        if renormalize:
            _renormalize(q, logq, total_q)
            if has_targets:
                _renormalize(p, logp, total_p)
        confidence = q[top_q]
        if has_targets:
            cross, entropy, kl, prediction_entropy, reverse, js, clipped = _soft_row(p, logp, q, logq, eps, log_eps)
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
                 confidence, observed, n_bins, unnormalized, clipped)


@njit(inline="always")
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


BLOCK = 256  # rows whose logs are computed together, vectorised across rows, before the scalar accumulation

# Columns of a binary block's row table (``row_terms[column, j]`` for the block's row j)
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
            v = np.float64(pred[start + j])
            tail = fast_log1p(fast_exp(-abs(v)))
            log_p = -(max(-v, 0.0) + tail)
            log_not_p = -(max(v, 0.0) + tail)
            _store_binary_terms(row_terms, j, fast_exp(log_p), fast_exp(log_not_p), log_p, log_not_p,
                                labels[start + j] == 1)
    else:
        for j in range(stop - start):
            v = np.float64(pred[start + j])
            log_p = fast_log(v) if v > 0.0 else -math.inf
            log_not_p = fast_log1p(-v) if v < 1.0 else -math.inf
            _store_binary_terms(row_terms, j, v, 1.0 - v, log_p, log_not_p, labels[start + j] == 1)


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


@njit(error_model="numpy")
def _score_binary_rows(pred, is_logits, labels, eps, log_eps, start, stop, row_terms, scored):
    """The scored terms of the rows [start, stop) of binary predictions against labels in {0, 1}, from the
    block's table of logs.  A problem in the prediction comes before one in the label."""
    for j in range(stop - start):
        y = labels[start + j]
        code = _binary_row_status(np.float64(pred[start + j]), y, is_logits)
        y = 1 if y == 1 else 0
        prob = row_terms[BINARY_P, j]
        other = row_terms[BINARY_NOT_P, j]
        log_p = row_terms[BINARY_LOG_P, j]
        log_not_p = row_terms[BINARY_LOG_NOT_P, j]
        qy = prob if y == 1 else other
        log_qy = log_p if y == 1 else log_not_p
        log_m = row_terms[BINARY_LOG_MIDPOINT, j]
        clipped = qy < eps
        cross = -log_eps if clipped else -log_qy
        prediction_entropy = -(prob * log_p if prob > 0.0 else 0.0) - (other * log_not_p if other > 0.0 else 0.0)
        js = -0.5 * log_m + 0.5 * LN2 * (other if y == 1 else prob)
        if qy > 0.0:
            js += 0.5 * qy * (log_qy - log_m)
        js = js if js > 0.0 else 0.0
        _store_scored(scored, j, code, cross, 0.0, cross, prediction_entropy, 0.0, js, (prob - y) * (prob - y),
                      prob, np.float64(y), (1 if prob > 0.5 else 0) == y, y, False, clipped)


@njit(error_model="numpy")
def _binary_span(pred, is_logits, labels, targets, has_targets, weights, has_weights, group_ids, has_groups,
                 status, eps, loss_only, n_bins, counts, sums, lo, hi):
    """Score the rows [lo, hi) of a binary batch into ``counts``/``sums``, in row order."""
    log_eps = math.log(eps) if eps > 0.0 else -math.inf
    if loss_only and not has_targets:
        _binary_loss_span(pred, is_logits, labels, weights, has_weights, group_ids, has_groups, status, eps, n_bins,
                          counts, sums, lo, hi)
        return
    if not has_targets:
        row_terms = np.empty((N_BINARY_TERMS, BLOCK))
        scored = np.empty((N_SCORED, BLOCK))
        no_targets = np.empty((0, 0))
        for start in range(lo, hi, BLOCK):
            stop = min(start + BLOCK, hi)
            _binary_logs(pred, is_logits, labels, start, stop, row_terms)
            _score_binary_rows(pred, is_logits, labels, eps, log_eps, start, stop, row_terms, scored)
            _accumulate_scored(scored, no_targets, False, weights, has_weights, group_ids, has_groups, status,
                               n_bins, counts, sums, start, stop)
        return
    class_mass = N_SUMS + n_bins * BIN_FIELDS
    q = np.empty(2)
    logq = np.empty(2)
    p = np.empty(2)
    logp = np.empty(2)
    for i in range(lo, hi):  # soft targets t in [0, 1]
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
        cross, entropy, kl, prediction_entropy, reverse, js, clipped = _soft_row(p, logp, q, logq, eps, log_eps)
        _add_reverse_kl(counts, sums, g, w, reverse)
        _add(sums, g, class_mass, w * (1.0 - t))
        _add(sums, g, class_mass + 1, w * t)
        _add_row(counts, sums, g, w, cross, entropy, kl, prediction_entropy, js,
                 (1 if prob > 0.5 else 0) == (1 if t > 0.5 else 0), (prob - t) * (prob - t), prob, t, n_bins,
                 False, clipped)


# ---- blocks: the same sums for every batch size and thread count
#
# Rows are cut into blocks of ROW_BLOCK rows aligned on the row's index in the whole stream (not in the
# batch).  Each block is summed on its own, from zero, row by row with Neumaier, into a *block partial*
# (counts, sums, and the list of groups it touched); a finished block is then added into the totals, in
# block order.  A block's partial therefore depends on its rows only, and the totals on the sequence of
# blocks only: whether blocks ran on one thread or many, in one batch or spread over several, the bits
# are the same.  The block still being filled when a batch ends is the state's *open* block, carried over
# to the next batch (and saved with the state).  Full blocks inside a batch run in parallel, one per lane.

ROW_BLOCK = 1 << 14


@njit(inline="always")
def _mark_groups(group_ids, has_groups, lo, hi, marks, touched):
    """Append to ``touched`` (count in touched[0]) the groups of rows [lo, hi) not yet marked."""
    if not has_groups:
        if marks[0] == 0:
            marks[0] = 1
            touched[0] += 1
            touched[touched[0]] = 0
        return
    for i in range(lo, hi):
        g = group_ids[i]
        if marks[g] == 0:
            marks[g] = 1
            touched[0] += 1
            touched[touched[0]] = g


@njit(inline="always")
def _close_block(counts, sums, block_counts, block_sums, marks, touched):
    """Add a finished block's partial into the totals and zero it: counts add, and each (sum, compensation)
    pair goes in as one Neumaier step for the sum plus a plain add of its compensation."""
    for j in range(1, touched[0] + 1):
        g = touched[j]
        for c in range(counts.shape[1]):
            counts[g, c] += block_counts[g, c]
            block_counts[g, c] = 0
        for s in range(sums.shape[1]):
            _add(sums, g, s, block_sums[g, s, 0])
            sums[g, s, 1] += block_sums[g, s, 1]
            block_sums[g, s, 0] = 0.0
            block_sums[g, s, 1] = 0.0
        marks[g] = 0
    touched[0] = 0


@njit(inline="always")
def _serial_stop(first_row, lo, hi):
    """End of the block-aligned stretch that starts at batch row lo (at most hi)."""
    return min(hi, lo + ROW_BLOCK - (first_row + lo) % ROW_BLOCK)


@njit(inline="always")
def _closes_block(first_row, stop):
    return (first_row + stop) % ROW_BLOCK == 0


# A span shorter than a block is scored on every lane when it holds at least this many values: about 0.5 ms
# of work on one thread, against 14-120 us to start a parallel region (PERFORMANCE.md).
PARALLEL_SCORING_VALUES = 1 << 18


@njit(inline="always")
def _lane_share(n_rows, block, lanes):
    """Rows for each lane when n_rows are split on lanes in whole block passes of ``block`` rows."""
    blocks = (n_rows + block - 1) // block
    return ((blocks + lanes - 1) // lanes) * block


@njit(inline="always")
def _parallel_blocks(first_row, n_rows, lanes):
    """(rows before the first full block, number of full blocks) when full blocks run on lanes, else (n, 0)."""
    head = min(n_rows, (ROW_BLOCK - first_row % ROW_BLOCK) % ROW_BLOCK)
    full = (n_rows - head) // ROW_BLOCK
    if lanes < 2 or full < 2:
        return n_rows, 0
    return head, full


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def accumulate_multiclass(pred, is_logits, labels, targets, has_targets, weights, has_weights,
                          group_ids, has_groups, status, eps, renormalize, prediction_tolerance,
                          target_tolerance, loss_only, n_bins, first_row, scoring_threads, counts, sums, open_counts,
                          open_sums, open_marks, open_touched, lane_counts, lane_sums, lane_marks, lane_touched):
    """Score a batch of K-class predictions (rows of ``pred``: probabilities, or logits when ``is_logits``)
    against hard ``labels`` or soft ``targets`` (rows x K), adding each valid row to the state.

    Per row i with weight w_i: H(P,Q) = -sum_k P_k log Q_k, H(P) = -sum_k P_k log P_k, KL = H(P,Q) - H(P),
    H(Q), KL(Q||P), JS = (KL(P||M) + KL(Q||M))/2 with M = (P+Q)/2, Brier = sum_k (Q_k - P_k)^2, correct =
    [argmax Q = argmax P], and a calibration bin for the top-label confidence max Q.

    ``first_row`` is the stream index of the batch's first row; blocks as described above ROW_BLOCK.  Full
    blocks run on the lanes of ``lane_sums``; a span of wide rows shorter than a block is scored on
    ``scoring_threads`` threads (1: on this one) and added on this one.  With ``loss_only``, hard labels
    against probabilities fill only the slots of the loss metrics (see _loss_span).
    """
    n_rows = pred.shape[0]
    head, full = _parallel_blocks(first_row, n_rows, lane_sums.shape[0])
    lanes = max(lane_sums.shape[0], 1)
    in_table = _scores_in_table(is_logits, has_targets, renormalize) and not _loss_alone(
        loss_only, is_logits, has_targets, renormalize)
    for part in range(2):  # the rows before the full blocks, the full blocks on lanes, then the rest
        lo, hi = (0, head) if part == 0 else (head + full * ROW_BLOCK, n_rows)
        while lo < hi:  # one call site for each span: every call site costs its own compile time
            stop = _serial_stop(first_row, lo, hi)
            _mark_groups(group_ids, has_groups, lo, stop, open_marks, open_touched)
            if in_table and scoring_threads > 1 and (stop - lo) * pred.shape[1] >= PARALLEL_SCORING_VALUES:
                # A span of wide rows, shorter than a block: its rows are scored on every lane, each into
                # its own columns of one table, then added in row order on this thread.  Wide batches (K
                # = 1000: 1048 rows of 4 MiB) never hold a full block, so they would otherwise run on one.
                scored = np.empty((N_SCORED, stop - lo))
                share = _lane_share(stop - lo, _table_block_rows(pred.shape[1], has_targets), scoring_threads)
                for j in prange(scoring_threads):
                    start = min(stop, lo + j * share)
                    _score_table_rows(pred, is_logits, labels, targets, has_targets, eps, prediction_tolerance,
                                      target_tolerance, start, min(stop, start + share), scored, start - lo)
                _accumulate_scored(scored, targets, has_targets, weights, has_weights, group_ids, has_groups,
                                   status, n_bins, open_counts, open_sums, lo, stop)
            else:
                _multiclass_span(pred, is_logits, labels, targets, has_targets, weights, has_weights, group_ids,
                                 has_groups, status, eps, renormalize, prediction_tolerance, target_tolerance,
                                 loss_only, n_bins, open_counts, open_sums, lo, stop)
            if _closes_block(first_row, stop):
                _close_block(counts, sums, open_counts, open_sums, open_marks, open_touched)
            lo = stop
        for wave in range(0, full if part == 0 else 0, lanes):
            width = min(lanes, full - wave)
            for j in prange(width):
                start = head + (wave + j) * ROW_BLOCK
                _mark_groups(group_ids, has_groups, start, start + ROW_BLOCK, lane_marks[j], lane_touched[j])
                _multiclass_span(pred, is_logits, labels, targets, has_targets, weights, has_weights, group_ids,
                                 has_groups, status, eps, renormalize, prediction_tolerance, target_tolerance,
                                 loss_only, n_bins, lane_counts[j], lane_sums[j], start, start + ROW_BLOCK)
            for j in range(width):  # in block order
                _close_block(counts, sums, lane_counts[j], lane_sums[j], lane_marks[j], lane_touched[j])


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def accumulate_binary(pred, is_logits, labels, targets, has_targets, weights, has_weights,
                      group_ids, has_groups, status, eps, loss_only, n_bins, first_row, counts, sums, open_counts,
                      open_sums, open_marks, open_touched, lane_counts, lane_sums, lane_marks, lane_touched):
    """Score a batch of positive-class probabilities (or logits) against labels in {0, 1} or soft targets t.

    With Q = (1-p, p) and P = (1-t, t) the information terms are those of the two-class layout; Brier is
    (p - t)^2 as scikit-learn's brier_score_loss, the predicted class is [p > 0.5], and calibration bins
    the positive-class probability p against the observed t (reliability diagram of calibration_curve).
    Blocks and ``first_row`` as in accumulate_multiclass; with ``loss_only``, labels fill only the slots of
    the loss metrics (see _binary_loss_span).
    """
    n_rows = pred.shape[0]
    head, full = _parallel_blocks(first_row, n_rows, lane_sums.shape[0])
    lanes = max(lane_sums.shape[0], 1)
    for part in range(2):  # as in accumulate_multiclass
        lo, hi = (0, head) if part == 0 else (head + full * ROW_BLOCK, n_rows)
        while lo < hi:
            stop = _serial_stop(first_row, lo, hi)
            _mark_groups(group_ids, has_groups, lo, stop, open_marks, open_touched)
            _binary_span(pred, is_logits, labels, targets, has_targets, weights, has_weights, group_ids,
                         has_groups, status, eps, loss_only, n_bins, open_counts, open_sums, lo, stop)
            if _closes_block(first_row, stop):
                _close_block(counts, sums, open_counts, open_sums, open_marks, open_touched)
            lo = stop
        for wave in range(0, full if part == 0 else 0, lanes):
            width = min(lanes, full - wave)
            for j in prange(width):
                start = head + (wave + j) * ROW_BLOCK
                _mark_groups(group_ids, has_groups, start, start + ROW_BLOCK, lane_marks[j], lane_touched[j])
                _binary_span(pred, is_logits, labels, targets, has_targets, weights, has_weights, group_ids,
                             has_groups, status, eps, loss_only, n_bins, lane_counts[j], lane_sums[j], start,
                             start + ROW_BLOCK)
            for j in range(width):
                _close_block(counts, sums, lane_counts[j], lane_sums[j], lane_marks[j], lane_touched[j])
