"""Golden values computed with mpmath at 50 digits, on adversarial inputs, in nats and bits."""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest

import streamdiv

mpmath.mp.dps = 50
REL = 1e-12


def mp_cross_entropy_from_logits(z, y):
    # log sum_j exp(z_j - z_y) = log1p(sum_{j != y} exp(z_j - z_y)): exact where 1 + tiny would round away
    z = [mpmath.mpf(float(v)) for v in z]
    return float(mpmath.log1p(mpmath.fsum(mpmath.exp(v - z[y]) for j, v in enumerate(z) if j != y)))


def mp_mean(values):
    return float(mpmath.fsum(values) / len(values))


def metrics(**kwargs):
    base = kwargs.pop("base", "e")
    return streamdiv.Accumulator(base=base).update(**kwargs).report().metrics


@pytest.mark.parametrize("logits, label", [
    ([1e4, -1e4, 0.0], 0), ([1e4, -1e4, 0.0], 1), ([1e4, -1e4, 0.0], 2),
    ([20.0, 0.0, 0.0, 0.0], 0),  # confident and right: CE ~ 6e-9, lost by logsumexp - z_y
    ([100.0, 0.0, 0.0], 0),  # CE ~ 7e-44
    ([100.0, 0.0, 0.0], 1),
    ([-1e4, 1e4], 0),
    ([0.1, 0.2, 0.3, 0.4, 0.5], 3),
])
def test_logit_cross_entropy(logits, label):
    want = mp_cross_entropy_from_logits(logits, label)
    got = metrics(logits=np.array([logits]), labels=np.array([label]))["cross_entropy"]
    assert got == pytest.approx(want, rel=REL, abs=0)
    bits = metrics(logits=np.array([logits]), labels=np.array([label]), base=2)["cross_entropy"]
    assert bits == pytest.approx(want / float(mpmath.log(2)), rel=REL, abs=0)


def test_logits_with_minus_infinity():
    """-inf logits are zero probabilities: on another class they add nothing (0 log 0 = 0), on the label the
    row's cross-entropy is +inf and is counted, not averaged; every other metric stays finite."""
    logits = np.array([[0.0, -np.inf, 1.0], [-np.inf, 2.0, 0.5], [3.0, -np.inf, -np.inf]])
    labels = np.array([2, 0, 0])
    m = metrics(logits=logits, labels=labels)
    assert m["cross_entropy"] == math.inf and m["infinite_rows"] == 1
    finite = [mp_cross_entropy_from_logits([0.0, -1e300, 1.0], 2), 0.0]  # row 3: q = (1, 0, 0), CE = 0
    assert m["cross_entropy_finite"] == pytest.approx(mp_mean(finite), rel=REL, abs=0)
    q1 = [mpmath.exp(v) / (mpmath.exp(0) + mpmath.exp(1)) for v in (0, 1)]
    q2 = [mpmath.exp(v) / (mpmath.exp(2) + mpmath.exp(0.5)) for v in (2, 0.5)]
    entropies = [-mpmath.fsum(q * mpmath.log(q) for q in row) for row in (q1, q2)] + [0]
    assert m["prediction_entropy"] == pytest.approx(mp_mean(entropies), rel=REL, abs=0)
    assert m["accuracy"] == pytest.approx(2 / 3, rel=REL)


@pytest.mark.parametrize("q, y", [(1e-20, 1), (1e-20, 0), (1 - 2.0 ** -53, 0), (1 - 2.0 ** -53, 1), (0.5, 1),
                                  (0.0, 0), (1.0, 1)])
def test_binary_cross_entropy(q, y):
    mq = mpmath.mpf(q)
    want = float(-mpmath.log(mq) if y == 1 else -mpmath.log(1 - mq))
    assert metrics(probs=np.array([q]), labels=np.array([y]))["cross_entropy"] == pytest.approx(want, rel=REL, abs=0)


def test_binary_zero_probability_on_what_happened_is_infinite():
    m = metrics(probs=np.array([0.0, 0.5]), labels=np.array([1, 1]))
    assert m["cross_entropy"] == math.inf and m["kl_divergence"] == math.inf
    assert m["infinite_rows"] == 1
    assert m["cross_entropy_finite"] == pytest.approx(math.log(2), rel=REL)
    assert m["cross_entropy_stderr"] is None
    assert 0 <= m["js_divergence"] <= math.log(2)


def test_soft_with_exact_zeros():
    p = [[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]]
    q = [[0.25, 0.25, 0.5], [0.125, 0.375, 0.5]]
    mp = [[mpmath.mpf(v) for v in row] for row in p]
    mq = [[mpmath.mpf(v) for v in row] for row in q]

    def term(a, b):  # a log(a/b) with 0 log 0 = 0
        return 0 if a == 0 else a * mpmath.log(a / b)

    kl = mp_mean([mpmath.fsum(term(a, b) for a, b in zip(r, s)) for r, s in zip(mp, mq)])
    cross = mp_mean([-mpmath.fsum(a * mpmath.log(b) for a, b in zip(r, s) if a) for r, s in zip(mp, mq)])
    entropy = mp_mean([-mpmath.fsum(a * mpmath.log(a) for a in r if a) for r in mp])
    js = mp_mean([mpmath.fsum(term(a, (a + b) / 2) / 2 + term(b, (a + b) / 2) / 2 for a, b in zip(r, s))
                  for r, s in zip(mp, mq)])
    m = metrics(probs=np.array(q), targets=np.array(p))
    assert m["kl_divergence"] == pytest.approx(kl, rel=REL)
    assert m["cross_entropy"] == pytest.approx(cross, rel=REL)
    assert m["entropy"] == pytest.approx(entropy, rel=REL)
    assert m["js_divergence"] == pytest.approx(js, rel=REL)
    assert m["reverse_kl_divergence"] == math.inf  # q > 0 where p = 0
    finite = metrics(probs=np.array(p), targets=np.array(q))  # swap: now supp(q) covers supp(p)
    rkl = mp_mean([mpmath.fsum(term(a, b) for a, b in zip(r, s)) for r, s in zip(mp, mq)])
    assert finite["reverse_kl_divergence"] == pytest.approx(rkl, rel=REL)


def test_js_of_disjoint_supports_is_log2():
    m = metrics(probs=np.array([[0.0, 1.0]]), targets=np.array([[1.0, 0.0]]))
    assert m["js_divergence"] == pytest.approx(math.log(2), rel=1e-15)
    assert m["cross_entropy"] == math.inf and m["reverse_kl_divergence"] == math.inf


def test_normalized_entropy_and_rig():
    q = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    y = np.array([0, 1, 2, 0])
    cross = mp_mean([-mpmath.log(mpmath.mpf(q[i, y[i]])) for i in range(4)])
    rates = [mpmath.mpf(2) / 4, mpmath.mpf(1) / 4, mpmath.mpf(1) / 4]
    prior = -mpmath.fsum(r * mpmath.log(r) for r in rates)
    m = metrics(probs=q, labels=y)
    assert m["normalized_entropy"] == pytest.approx(float(cross / prior), rel=REL)


@pytest.mark.slow
def test_ten_million_rows():
    """1e7 rows cycling through 7 adversarial float32 rows: the mean must still match mpmath to 1e-12."""
    logits = np.array([[30.0, 0.0, -5.0], [1e4, -1e4, 0.0], [0.0, 0.0, 0.0], [-3.0, 2.0, 50.0],
                       [5.0, 5.0, -1e3], [0.5, -0.25, 0.125], [90.0, 0.0, 1.0]]).astype(np.float32)
    labels = np.array([0, 2, 1, 2, 1, 0, 0])
    repeats = 10 ** 7 // 7
    block_rows = 7 * (10 ** 6 // 7)
    block = np.tile(logits, (10 ** 6 // 7, 1))
    block_labels = np.tile(labels, 10 ** 6 // 7)
    accumulator = streamdiv.Accumulator()
    done = 0
    while done < repeats * 7:
        take = min(block_rows, repeats * 7 - done)
        accumulator.update(logits=block[:take], labels=block_labels[:take])
        done += take
    m = accumulator.report().metrics
    exact = [mpmath.mpf(mp_cross_entropy_from_logits(z, y)) for z, y in zip(logits, labels)]
    assert (m["rows"], m["skipped_rows"], m["infinite_rows"]) == (repeats * 7, 0, 0)
    assert m["weight"] == repeats * 7
    assert m["cross_entropy"] == pytest.approx(float(mpmath.fsum(exact) / 7), rel=REL)
    assert m["cross_entropy_finite"] == m["cross_entropy"] == m["kl_divergence"]  # hard labels: KL = H(P,Q)


@pytest.mark.parametrize("weight", [1e150, 5.5e153])  # the second: (sum w x)^2 = 2.4e308
def test_cross_entropy_stderr_with_weights_whose_sums_square_past_the_float_range(weight):
    """sum w x reaches 1e154 and more: (sum w x)^2 would overflow, so it is divided by W first; the result
    against mpmath, with no RuntimeWarning (the fuzzer's huge weights)."""
    q = np.array([0.5, 0.25, 0.125, 0.8, 0.3])
    y = np.array([1, 1, 0, 1, 0])
    weights = np.full(5, weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = streamdiv.Accumulator().update(probs=q, labels=y, weights=weights).report().metrics
    mpmath.mp.dps = 50
    x = [-mpmath.log(mpmath.mpf(float(v)) if label else 1 - mpmath.mpf(float(v))) for v, label in zip(q, y)]
    w = mpmath.mpf(weight)
    total_weight, total, squares = 5 * w, w * sum(x), w * sum(v * v for v in x)
    expected = mpmath.sqrt((squares - total * total / total_weight) / (total_weight - 1) / total_weight)
    assert m["cross_entropy_stderr"] == pytest.approx(float(expected), rel=1e-12)
