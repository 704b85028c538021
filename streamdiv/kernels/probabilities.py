"""Hard labels against probabilities: the tile passes that fill a tile's row table (q log q terms in one flat
loop, q_y and its logs, each row's sums over its classes), and the scoring of a row from it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elementary import bits_float, fast_log, fast_log1p, float_bits
from .primitives import E, LN2, SCALAR_ROW_CLASSES, _first_index_of, _first_problem, _looks_softmaxed_twice
from .status import OK, PREDICTION_NAN, PREDICTION_OUT_OF_RANGE

# The helpers below marked ``reassoc`` sum over the classes of one row so that LLVM may split those sums
# into SIMD lanes (with fast_log/fast_exp: 5x faster than libm's scalar calls).  That changes a row's value
# by rounding only, identically for every batch size and thread count.  They are deliberately not inlined
# by numba, so the flag stays on their own instructions and never reaches the compensated accumulators.
@njit(error_model="numpy")
def _entropy_terms(pred, start, stop, terms):
    """terms[(i - start) * K + k] = q_ik log q_ik (0 where q = 0) for the rows [start, stop), as one flat
    loop over their values (``pred`` is C-contiguous): vectorised across rows, which a 10-class row loop
    is not (it spends its time in the scalar remainder).  Returns how many values are NaN or outside [0, 1],
    so that the row pass checks each value only in a tile that holds one."""
    flat = pred[start:stop].reshape(-1)
    bad = 0
    for j in range(flat.shape[0]):
        v = np.float64(flat[j])
        t = v * fast_log(v)
        terms[j] = t if v > 0.0 else 0.0
        bad += 0 if (v >= 0.0 and v <= 1.0) else 1
    return bad


# Columns of a tile's row table (``row_terms[column, j]`` for the tile's row j): what the hard-probability
# path computes for every row of a tile before its scalar accumulation pass.
ROW_STATUS = 0  # OK, PREDICTION_NAN if any value is NaN, else PREDICTION_OUT_OF_RANGE if one is outside [0, 1]
ROW_TOTAL = 1  # sum_k q_k
ROW_ENTROPY = 2  # H(Q) = -sum_k q_k log q_k
ROW_BRIER = 3  # sum_k (q_k - [k = y])^2
ROW_TOP_VALUE = 4  # max_k q_k
ROW_Q_LABEL = 5  # q_y
ROW_LOG_Q_LABEL = 6  # log q_y
ROW_LOG_MIDPOINT = 7  # log((1 + q_y)/2), the JS midpoint of the one-hot target
ROW_DOUBLE_SOFTMAX = 8  # 1.0 where the row looks softmaxed twice (primitives._looks_softmaxed_twice)
N_ROW_TERMS = 9


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


@njit(error_model="numpy")
def _probability_tile_sums(pred, labels, start, stop, terms, any_bad, prediction_tolerance, row_terms, row_top):
    """Each row's sums over its classes for the rows [start, stop), into the tile's row table (its flag
    ROW_DOUBLE_SOFTMAX with the row-sum tolerance ``prediction_tolerance``: see _flat_rows).

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
    _flat_rows(pred, start, stop, prediction_tolerance, row_terms)


@njit(error_model="numpy")
def _flat_rows(pred, start, stop, prediction_tolerance, row_terms):
    """ROW_DOUBLE_SOFTMAX of the rows [start, stop), from ROW_TOTAL and ROW_TOP_VALUE, in a loop of its own.
    A row with max q <= e' min q (e' = e (1 + tolerance)) has every other value >= max q / e', so their mean
    (sum q - max q)/(K - 1) too: only rows that pass that test (few of a trained model's, none of softmax of
    N(0, 2^2) logits at K = 10) are read again for their min.  The test allows 1e-9 more for the rounding of
    the sums.  A min in the row sums' loops cost K = 10 3-13 ns/row."""
    n_classes = pred.shape[1]
    bound = E * (1.0 + prediction_tolerance) * (1.0 + 1e-9)
    for j in range(stop - start):
        top_value = row_terms[ROW_TOP_VALUE, j]
        looks = False
        if (n_classes >= 3 and row_terms[ROW_STATUS, j] == OK
                and top_value * (n_classes - 1) <= bound * (row_terms[ROW_TOTAL, j] - top_value)):
            looks = _looks_softmaxed_twice(top_value, _smallest(pred[start + j]), n_classes, prediction_tolerance)
        row_terms[ROW_DOUBLE_SOFTMAX, j] = 1.0 if looks else 0.0


@njit(inline="always")
def _smallest(row):
    bottom = np.float64(row[0])
    for k in range(1, row.shape[0]):
        bottom = min(bottom, np.float64(row[k]))
    return bottom


@njit(inline="always")
def _store_row_sums(row_terms, row_top, j, bad, total, entropy, brier, top, top_value):
    row_terms[ROW_STATUS, j] = OK if bad == 0.0 else PREDICTION_OUT_OF_RANGE
    row_terms[ROW_TOTAL, j] = total
    row_terms[ROW_ENTROPY, j] = entropy
    row_terms[ROW_BRIER, j] = brier
    row_terms[ROW_TOP_VALUE, j] = top_value
    row_top[j] = top


@njit(inline="always")
def _score_hard_probabilities(row_terms, row_top, j, eps, log_eps):
    """(status, H(P,Q), H(Q), JS, Brier, argmax, max q, sum q, clipped, looks softmaxed twice) for row j of a
    tile's row table: a probability row and its label y."""
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
            row_terms[ROW_TOP_VALUE, j], total, clipped, row_terms[ROW_DOUBLE_SOFTMAX, j] > 0.0)
