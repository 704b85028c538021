"""The vectorisable log and exp against libm (numpy), over the whole float64 range they serve."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streamdiv.kernels.elementary import fast_exp, fast_log, fast_log1p


@njit
def _logs(x, out):
    for i in range(x.shape[0]):
        out[i] = fast_log(x[i])


@njit
def _exps(x, out):
    for i in range(x.shape[0]):
        out[i] = fast_exp(x[i])


def ulps(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_log_within_one_ulp_over_the_whole_positive_range():
    rng = np.random.default_rng(60)
    bits = rng.integers(1, 0x7FF0000000000000, 2_000_000, dtype=np.int64)  # every positive finite double
    x = np.concatenate([bits.view(np.float64), rng.random(1_000_000), 1 + rng.normal(0, 1e-8, 100_000),
                        [5e-324, 2.2250738585072014e-308, 0.5, 1.0, 2.0, np.finfo(float).max, 1 - 2 ** -53]])
    out = np.empty_like(x)
    _logs(x, out)
    want = np.log(x)
    exact_one = x == 1.0
    assert (out[exact_one] == 0.0).all()
    assert ulps(out[~exact_one], want[~exact_one]).max() <= 1.0


def test_exp_within_one_ulp_on_nonpositive_arguments():
    rng = np.random.default_rng(61)
    x = np.concatenate([-rng.uniform(0, 708.39, 2_000_000), -rng.exponential(1e-3, 100_000), [0.0, -0.0, -1e-300]])
    out = np.empty_like(x)
    _exps(x, out)
    assert ulps(out, np.exp(x)).max() <= 1.0
    deep = np.array([-708.5, -745.2, -1e4, -math.inf])
    out = np.empty_like(deep)
    _exps(deep, out)
    assert (out == 0.0).all()


@njit
def _log1ps(x, out):
    for i in range(x.shape[0]):
        out[i] = fast_log1p(x[i])


def test_log1p_keeps_tiny_arguments():
    rng = np.random.default_rng(62)
    x = np.concatenate([-rng.random(1_000_000) * 0.999999, rng.random(1_000_000) * 10,
                        np.exp(rng.uniform(-700, -1, 1_000_000)), -np.exp(rng.uniform(-700, -1, 1_000_000)),
                        [1e-20, -1e-20, 2.0 ** -53, -(2.0 ** -53), 0.0]])
    out = np.empty_like(x)
    _log1ps(x, out)
    want = np.log1p(x)
    nonzero = want != 0
    assert (out[~nonzero] == 0).all()
    assert ulps(out[nonzero], want[nonzero]).max() <= 4.0
