"""The Gaussian kind: a diagonal Gaussian per row (a VAE's posterior, its mean and log variance per dimension)
against a prior (the standard normal, or a diagonal Gaussian per row), scored by their KL divergence.

With r = lv - lv0 the difference of the two log variances, one dimension's term of

.. math::

    KL(N(m, diag e^{lv}) || N(m_0, diag e^{lv_0})) = 1/2 sum_d [h(r_d) + (m_d - m_{0,d})^2 e^{-lv_{0,d}}],
    \\qquad h(r) = e^r - 1 - r \\ge 0,

is the textbook 1/2 [log(s0^2/s^2) + (s^2 + (m - m0)^2)/s0^2 - 1] written so that nothing cancels: both
parts are >= 0, and h is a series where e^r - 1 - r would lose its digits (|r| < 1) and expm1(r) - r
elsewhere.  So a row's KL is accurate to a few units of float64 rounding for tiny and huge variances and for
near-equal distributions alike (tests/test_gaussian_kl.py: mpmath at 50 digits).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .layout import GAUSSIAN_KL, GAUSSIAN_KL_WEIGHT, IGNORED, INFINITE, ROWS, SKIPPED, WEIGHT
from .primitives import _add, _reject, _row_weight
from .status import (CODE_IGNORED, LOG_VARIANCE_NOT_FINITE, MEAN_NOT_FINITE, OK, PRIOR_LOG_VARIANCE_NOT_FINITE,
                     PRIOR_MEAN_NOT_FINITE, WEIGHT_NEGATIVE_OR_NAN)

# 1/k! for k = 2 ... 20: the series of h(r) = sum_{k >= 2} r^k / k!, whose terms past k = 20 are below
# 1/21! = 2e-20 of h's r^2/2 for |r| < 1, far under float64's rounding
SERIES = tuple(1.0 / math.factorial(k) for k in range(2, 21))
SERIES_LIMIT = 1.0  # |r| below this takes the series: there expm1(r) - r loses up to 2u/|r| of h
EXPONENT_OVERFLOW = 710.0  # e^r is +inf past 709.78; r may be +inf itself (lv - lv0 overflowed), and inf - inf is NaN


@njit(error_model="numpy")
def exp_excess(r):
    """h(r) = e^r - 1 - r >= 0, to a few ulp for every r: the Horner series r^2 (1/2! + r (1/3! + ...)) for
    |r| < 1, expm1(r) - r elsewhere (no cancellation there: h >= 0.37 |r|), +inf for r past 710.

    A branch, not a select: the loop calls libm's expm1 and exp and does not vectorise anyway, and a select
    would compute the 19-step series for every value."""
    if abs(r) < SERIES_LIMIT:
        c = SERIES
        return r * r * (c[0] + r * (c[1] + r * (c[2] + r * (c[3] + r * (c[4] + r * (c[5] + r * (c[6] + r * (
            c[7] + r * (c[8] + r * (c[9] + r * (c[10] + r * (c[11] + r * (c[12] + r * (c[13] + r * (c[14] + r * (
                c[15] + r * (c[16] + r * (c[17] + r * c[18]))))))))))))))))))
    return math.expm1(r) - r if r < EXPONENT_OVERFLOW else math.inf


@njit(inline="always")
def _finite(x):
    """False for NaN and for both infinities (x - x is NaN for them), without a branch."""
    return x - x == 0.0


@njit(error_model="numpy")
def gaussian_row_kl(mean, log_variance, prior_mean, prior_log_variance, has_prior_mean, has_prior_log_variance):
    """(status, KL in nats) of one row: the KL of the module's docstring, summed over the dimensions in order;
    the prior's mean is 0 and its log variance 0 where its column is absent.  The status names the first
    column (mean, log variance, prior mean, prior log variance) with a NaN or infinite value; the KL is then
    meaningless.  A KL too large for float64 (a log variance past about 709 above the prior's, a squared
    distance past 1.8e308) is +inf."""
    total = 0.0
    bad_mean = bad_log_variance = bad_prior_mean = bad_prior_log_variance = False
    for d in range(mean.shape[0]):
        m = np.float64(mean[d])
        lv = np.float64(log_variance[d])
        m0 = np.float64(prior_mean[d]) if has_prior_mean else 0.0
        lv0 = np.float64(prior_log_variance[d]) if has_prior_log_variance else 0.0
        bad_mean |= not _finite(m)
        bad_log_variance |= not _finite(lv)
        bad_prior_mean |= not _finite(m0)
        bad_prior_log_variance |= not _finite(lv0)
        distance = (m - m0) * (m - m0)
        # 0 * e^{-lv0} is 0 also where e^{-lv0} overflows (a prior variance under e^-709): never 0 * inf
        scaled = distance * math.exp(-lv0) if (has_prior_log_variance and distance > 0.0) else distance
        total += exp_excess(lv - lv0) + scaled
    code = (MEAN_NOT_FINITE if bad_mean else LOG_VARIANCE_NOT_FINITE if bad_log_variance
            else PRIOR_MEAN_NOT_FINITE if bad_prior_mean else PRIOR_LOG_VARIANCE_NOT_FINITE if bad_prior_log_variance
            else OK)
    return code, 0.5 * total


@njit(error_model="numpy")
def _gaussian_span(mean, log_variance, prior_mean, prior_log_variance, weights, has_weights, group_ids,
                   has_groups, status, counts, sums, lo, hi):
    """Score the rows [lo, hi) of diagonal Gaussians into ``counts``/``sums``, in row order: each valid row
    adds w to ``weight`` and, where its KL is finite, w KL to ``gaussian_kl`` and w to ``gaussian_kl_weight``;
    a row whose KL is +inf is counted in ``infinite`` instead.  Absent prior columns are empty arrays."""
    has_prior_mean = prior_mean.shape[0] > 0
    has_prior_log_variance = prior_log_variance.shape[0] > 0
    for i in range(lo, hi):
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
        code, kl = gaussian_row_kl(mean[i], log_variance[i], prior_mean[i] if has_prior_mean else mean[i],
                                   prior_log_variance[i] if has_prior_log_variance else log_variance[i],
                                   has_prior_mean, has_prior_log_variance)
        if code != OK:
            _reject(status, counts, g, i, code)
            continue
        counts[g, ROWS] += 1
        _add(sums, g, WEIGHT, w)
        if kl == math.inf:
            counts[g, INFINITE] += 1
        else:
            _add(sums, g, GAUSSIAN_KL, w * kl)
            _add(sums, g, GAUSSIAN_KL_WEIGHT, w)
