"""KL(P||Q), KL(Q||P) and JS when Q nearly equals P (distillation): within 1e-10 relative of mpmath at 50
digits, per row and summed, through the public API; SciPy's rel_entr cases of gh-20710; logits; binary soft
targets; and H(P,Q) = H(P) + KL(P||Q)."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

import streamdiv
from streamdiv.kernels.soft import _divergence_terms

mpmath.mp.dps = 50
GRID = 2**52  # rows on the grid k/2^52 sum to exactly 1 when their integers sum to 2^52
DIVERGENCES = ("kl_divergence", "reverse_kl_divergence", "js_divergence")


def exact_rows(rng, n_classes, delta, n_rows):
    """Rows P and Q = P (1 + delta e), e ~ N(0, 1), each summing to exactly 1 (checked with Fraction)."""
    targets, preds = [], []
    while len(targets) < n_rows:
        p = np.floor(rng.dirichlet(np.ones(n_classes)) * GRID)
        q = np.floor(p * (1.0 + delta * rng.standard_normal(n_classes)))
        p[-1] = GRID - p[:-1].sum()
        q[-1] = GRID - q[:-1].sum()
        p, q = p / GRID, q / GRID
        if (p > 0).all() and (q > 0).all() and sum(map(Fraction, p)) == 1 and sum(map(Fraction, q)) == 1:
            targets.append(p)
            preds.append(q)
    return np.array(targets), np.array(preds)


def reference(p, q):
    """(KL(P||Q), KL(Q||P), JS) of one row of floats, as textbook sums in mpmath."""
    p = [mpmath.mpf(x) for x in p]
    q = [mpmath.mpf(x) for x in q]
    kl = sum(a * mpmath.log(a / b) for a, b in zip(p, q) if a > 0)
    reverse = sum(b * mpmath.log(b / a) for a, b in zip(p, q) if b > 0)
    js = sum((a * mpmath.log(2 * a / (a + b)) if a > 0 else 0) + (b * mpmath.log(2 * b / (a + b)) if b > 0 else 0)
             for a, b in zip(p, q)) / 2
    return kl, reverse, js


def divergences(**columns):
    metrics = streamdiv.Accumulator().update(**columns).report().metrics
    return [metrics[name] for name in DIVERGENCES]


def assert_relative(got, want, tolerance):
    for value, expected in zip(got, want):
        assert abs(mpmath.mpf(value) - expected) <= tolerance * abs(expected), (value, expected)


@pytest.mark.parametrize("n_classes", [2, 3, 10, 100])
@pytest.mark.parametrize("delta", [1e-3, 1e-6, 1e-9])
def test_near_equal_rows_within_1e_10_of_mpmath_per_row_and_summed(n_classes, delta):
    rng = np.random.default_rng(n_classes * 7 + int(-np.log10(delta)))
    targets, preds = exact_rows(rng, n_classes, delta, 40)
    references = [reference(p, q) for p, q in zip(targets, preds)]
    for j in range(0, 40, 8):
        assert_relative(divergences(probs=preds[j:j + 1], targets=targets[j:j + 1]), references[j], 1e-10)
    means = [sum(r[i] for r in references) / len(references) for i in range(3)]
    assert_relative(divergences(probs=preds, targets=targets), means, 1e-10)


def test_rows_that_do_not_sum_to_1_match_the_textbook_sums():
    rng = np.random.default_rng(11)
    for n_classes, delta in ((3, 1e-6), (10, 1e-9), (100, 1e-6)):
        p = rng.dirichlet(np.ones(n_classes))
        q = p * (1.0 + delta * rng.standard_normal(n_classes))
        assert sum(map(Fraction, p)) != 1 or sum(map(Fraction, q)) != 1
        kl, reverse, js = reference(p, q)
        got = divergences(probs=q[None], targets=p[None])
        # Unnormalized rows: the textbook sums need not be small, so the error is eps of the per-value terms.
        scale = sum(abs(a * mpmath.log(a / b)) for a, b in zip(map(mpmath.mpf, p), map(mpmath.mpf, q)))
        for value, expected in zip(got, (kl, reverse)):
            assert abs(mpmath.mpf(value) - expected) <= 1e-10 * abs(expected) + 1e-15 * scale
        assert abs(mpmath.mpf(got[2]) - js) <= 1e-10 * js


# scipy/scipy, scipy/special/tests/test_basic.py, test_rel_entr_gh_20710_near_zero: x log(x/y), mpmath dps=30
SCIPY_NEAR_EQUAL = [(0.9456657713430001, 0.9456657713430094, -9.325873406851269e-15),
                    (0.48066098564791515, 0.48066098564794774, -3.258504577274724e-14),
                    (0.786048657854401, 0.7860486578542367, 1.6431300764454033e-13)]


@pytest.mark.parametrize("x, y, expected", SCIPY_NEAR_EQUAL)
def test_scipy_gh_20710_values_per_value_and_as_binary_rows(x, y, expected):
    forward, _, _ = _divergence_terms.py_func(x, y, y - x, np.log(x), np.log(y), np.log(0.5 * (x + y)), y,
                                              np.log(y))
    assert forward - (y - x) == pytest.approx(expected, rel=1e-13)
    # As the binary soft row (1 - x, x) against (1 - y, y), the complements exact.
    assert_relative(divergences(probs=np.array([y]), targets=np.array([x])), reference_binary(x, y), 1e-10)


def reference_binary(t, prob):
    """The divergences of (1 - t, t) against (1 - prob, prob), the complements exact."""
    t, prob = mpmath.mpf(t), mpmath.mpf(prob)
    p, q = (1 - t, t), (1 - prob, prob)
    kl = sum(a * mpmath.log(a / b) for a, b in zip(p, q) if a > 0)
    reverse = sum(b * mpmath.log(b / a) for a, b in zip(p, q) if b > 0)
    js = sum(a * mpmath.log(2 * a / (a + b)) + b * mpmath.log(2 * b / (a + b)) for a, b in zip(p, q)) / 2
    return kl, reverse, js


@pytest.mark.parametrize("delta", [1e-3, 1e-6, 1e-9])
def test_binary_soft_targets_near_equal(delta):
    rng = np.random.default_rng(5)
    t = rng.uniform(0.01, 0.99, 30)
    prob = t * (1.0 + delta * rng.standard_normal(30))
    references = [reference_binary(a, b) for a, b in zip(t, prob)]
    for j in range(0, 30, 6):
        assert_relative(divergences(probs=prob[j:j + 1], targets=t[j:j + 1]), references[j], 1e-10)
    means = [sum(r[i] for r in references) / len(references) for i in range(3)]
    assert_relative(divergences(probs=prob, targets=t), means, 1e-10)


def reference_logits(p, z):
    """The divergences of P against softmax(z), the softmax in mpmath."""
    z = [mpmath.mpf(float(v)) for v in z]
    total = sum(mpmath.exp(v) for v in z)
    q = [mpmath.exp(v) / total for v in z]
    p = [mpmath.mpf(float(x)) for x in p]
    kl = sum(a * mpmath.log(a / b) for a, b in zip(p, q) if a > 0)
    reverse = sum(b * mpmath.log(b / a) for a, b in zip(p, q) if b > 0)
    js = sum(a * mpmath.log(2 * a / (a + b)) + b * mpmath.log(2 * b / (a + b)) for a, b in zip(p, q)) / 2
    return kl, reverse, js


@pytest.mark.parametrize("n_classes", [3, 10, 100])
@pytest.mark.parametrize("gap", [1e-3, 1e-6])
def test_logits_near_equal_within_a_few_hundred_ulps_over_the_gap(n_classes, gap):
    """Soft targets against logits: log q is rounded (a few ulp of the logits' scale), so the bound is
    a few hundred ulps divided by the relative gap between Q and P."""
    rng = np.random.default_rng(n_classes)
    targets, _ = exact_rows(rng, n_classes, 0.0, 6)
    logits = np.log(targets) + gap * rng.standard_normal(targets.shape)
    tolerance = 300 * np.finfo(float).eps / gap
    for p, z in zip(targets, logits):
        assert_relative(divergences(logits=z[None], targets=p[None]), reference_logits(p, z), tolerance)


def test_cross_entropy_is_entropy_plus_kl_to_its_rounding():
    rng = np.random.default_rng(2)
    for n_classes, delta in ((3, 1e-6), (10, 1e-9), (100, 1e-3)):
        targets, preds = exact_rows(rng, n_classes, delta, 20)
        metrics = streamdiv.Accumulator().update(probs=preds, targets=targets).report().metrics
        cross = metrics["cross_entropy"]
        assert abs(cross - (metrics["entropy"] + metrics["kl_divergence"])) <= 8 * np.finfo(float).eps * cross
