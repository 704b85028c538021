"""Primitives shared by every pass: Neumaier's compensated add, the calibration bin of a confidence, argmax, a
row's weight, and the tile sizes of the row tables.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .elementary import fast_log
from .layout import SKIPPED

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


@njit(inline="always")
def _compensated(total, error, x):
    """Neumaier's step: (total + x, error + the rounding error of that sum)."""
    t = total + x
    return t, error + (((total - t) + x) if abs(total) >= abs(x) else ((x - t) + total))


@njit
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
