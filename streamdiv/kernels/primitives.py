"""Primitives shared by every pass: Neumaier's compensated add, the calibration bin of a confidence, argmax, a
row's weight, and the tile sizes of the row tables.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .elementary import fast_log, float_bits
from .layout import FINE_BINADES, FINE_BINS, FINE_BINS_PER_BINADE, SKIPPED

LN2 = math.log(2.0)


@njit
def _add(sums, g, slot, x):
    """Neumaier's compensated ``sums[g, slot] += x``: the error of each addition goes to the second cell."""
    s = sums[g, slot, 0]
    t = s + x
    if abs(s) >= abs(x):
        sums[g, slot, 1] += (s - t) + x
    else:
        sums[g, slot, 1] += (x - t) + s
    sums[g, slot, 0] = t


# The fine histogram's bin within a binade is the top bits of d's significand.
_SUBBIN_SHIFT = 52 - (FINE_BINS_PER_BINADE.bit_length() - 1)
_BELOW_SUBBIN = (1 << _SUBBIN_SHIFT) - 1


@njit
def fine_bin_index(confidence):
    """Bin of a confidence c in [0, 1] among the fine histogram's edges e_k (``layout.fine_edges``):
    [e_k, e_{k+1}), the last bin closed, the same as searchsorted(edges, c, "right") - 1.

    With d = min(c, 1 - c) (1 - c exact for c >= 1/2), the bin is read off d's exponent and top significand
    bits; above 1/2, c in [e_k, e_{k+1}) is d in (1 - e_{k+1}, 1 - e_k], so a d on an edge goes one bin down.
    """
    upper = confidence >= 0.5
    distance = 1.0 - confidence if upper else confidence
    bits = float_bits(distance)
    exponent = (bits >> 52) - 1023  # distance in [2^exponent, 2^(exponent + 1))
    if exponent < -(FINE_BINADES + 1):
        step = 0  # below 2^-(E+1), zero included: the end bin
    else:
        subbin = (bits >> _SUBBIN_SHIFT) & (FINE_BINS_PER_BINADE - 1)
        step = 1 + (exponent + FINE_BINADES + 1) * FINE_BINS_PER_BINADE + subbin
        if upper and (bits & _BELOW_SUBBIN) == 0:
            step -= 1
    return FINE_BINS - 1 - step if upper else step


EDGE_MARGIN = 1e-6  # of fl(c M) from an integer: it must exceed 2 M 2^-53, so the guess alone serves
MAX_MARGIN_BINS = 1 << 32  # bins M up to 2^32 (a state of that many bins would take 400 GiB)


@njit
def bin_index(confidence, n_bins):
    """Bin of a confidence c in [0, 1] with edges e_k = k/M in float64: [e_k, e_{k+1}), the last bin closed;
    for M = FINE_BINS (binning="quantile"), the fine histogram's bin (fine_bin_index).

    ``int(c*M)`` alone misbins (0.29*100 = 28.999...), so the guess is corrected against the edges; only near
    an edge, though: where fl(c M) is more than EDGE_MARGIN from every integer, fl(c M) is within M 2^-53 of
    c M and each edge e_k within 2^-53 of k/M, so e_i <= c < e_{i+1} holds for the guess i and the two
    divisions are skipped (scalar divisions, 2 a value, were the cost of the class-wise bins).
    """
    if n_bins == FINE_BINS:
        return fine_bin_index(confidence)
    scaled = confidence * n_bins
    i = int(scaled)
    fraction = scaled - i
    if 0 <= i < n_bins <= MAX_MARGIN_BINS and EDGE_MARGIN < fraction < 1.0 - EDGE_MARGIN:
        return i
    if i >= n_bins:
        i = n_bins - 1
    elif i < 0:
        i = 0
    if confidence < i / n_bins:
        i -= 1
    elif i + 1 < n_bins and confidence >= (i + 1) / n_bins:
        i += 1
    return i


SCALAR_ROW_CLASSES = 16  # up to this many classes a row's sums run as one scalar pass

# softmax(v) with every v_k in [0, 1] has max_k q_k / min_k q_k = exp(max v - min v) <= e: probabilities
# softmaxed a second time are that flat.  The bound allows a relative (1 + tolerance), the row-sum tolerance
# of the storage dtype (at least sqrt(eps(float32)) = 3.45e-4): rounding each stored value moves the ratio by
# 2 u of that dtype (1.2e-7 in float32, 9.8e-4 in float16), far less; exact softmax([0, 1, ...]) outputs sit
# at e to a few ulps, on both sides of it.  A ratio up to e (1 + 3.45e-4) is that of inputs spread over
# 1.000345 at most: as flat.
E = math.e


@njit(inline="always")
def _looks_softmaxed_twice(top, bottom, n_classes, tolerance):
    """Whether a probability row of K >= 3 classes, largest value ``top`` and smallest ``bottom``, is as flat as
    softmax of values in [0, 1]: 0 < bottom < top <= e (1 + tolerance) bottom.  Two classes are left out:
    max/min <= e there is every p in [0.27, 0.73], common in a healthy model; so are rows of one value (the
    uniform prediction, a baseline that softmax of a distribution gives only from a uniform one)."""
    return n_classes >= 3 and bottom > 0.0 and top > bottom and top <= E * (1.0 + tolerance) * bottom


@njit
def _row_looks_like_probabilities(row, tolerance):
    """Whether a logit row is a probability distribution (every value in [0, 1], |sum - 1| <= tolerance),
    about to be softmaxed a second time."""
    outside = total = 0.0
    for k in range(row.shape[0]):
        z = np.float64(row[k])
        outside += 0.0 if (z >= 0.0 and z <= 1.0) else 1.0
        total += z
    return outside == 0.0 and abs(total - 1.0) <= tolerance


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


@njit(inline="always")
def _argmax_and_smallest(row):
    """(index, value) of the largest entry (ties go to the lowest index), and the smallest entry."""
    top = 0
    best = np.float64(row[0])
    bottom = best
    for k in range(1, row.shape[0]):
        v = np.float64(row[k])
        bottom = v if v < bottom else bottom
        if v > best:
            best = v
            top = k
    return top, best, bottom


@njit(inline="always")
def _first_index_of(row, value):
    """The lowest k with row[k] == value (0 if none: the row is then rejected)."""
    for k in range(row.shape[0]):
        if np.float64(row[k]) == value:
            return k
    return 0


@njit(inline="always")
def _first_problem(row, nan_code, range_code):
    """The status of a row known to hold a bad value: NaN anywhere wins over out of range."""
    for k in range(row.shape[0]):
        if np.float64(row[k]) != np.float64(row[k]):
            return nan_code
    return range_code


@njit
def _whole(x):
    return abs(x) < 2.0 ** 52 and x == math.floor(x)


@njit
def _reject(status, counts, g, i, code):
    """Mark row i invalid with ``code`` and count it as skipped in group g."""
    status[i] = code
    counts[g, SKIPPED] += 1


@njit
def _row_weight(weights, has_weights, i):
    """The row's weight, or -1.0 when it is negative, NaN or infinite."""
    if not has_weights:
        return 1.0
    w = np.float64(weights[i])
    if not (w >= 0.0) or w == math.inf:
        return -1.0
    return w


@njit
def _tile_rows(n_classes, soft):
    """Rows per tile pass: 128 KiB of q log q terms, 320 KiB of soft value terms (K <= SCALAR_ROW_CLASSES)
    or 384 KiB of soft logs stay in L2."""
    few = soft and n_classes <= SCALAR_ROW_CLASSES
    return max(1, (4096 if few else 16384) // max(n_classes, 1))


@njit(inline="always")
def _neumaier(total, compensation, x):
    """One step of Neumaier's compensated sum on a (sum, compensation) pair held in local variables."""
    t = total + x
    if abs(total) >= abs(x):
        compensation += (total - t) + x
    else:
        compensation += (x - t) + total
    return t, compensation


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def cache_probe(x, out):
    """out[i] = fast_log(x[i]) on numba's threads.

    Exists for tests/test_numba_cache.py: the smallest cached parallel kernel that compiles in a function
    of another module (elementary), so that the test sees, in seconds, a change to elementary.py reach a
    cached kernel of this module.
    """
    for i in prange(x.shape[0]):
        out[i] = fast_log(x[i])
