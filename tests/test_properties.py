"""Hypothesis properties: identities, chunking, merging and row order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import streamdiv

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, soft=None):
    n = draw(st.integers(1, 40))
    k = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    raw = rng.gamma(draw(st.sampled_from([0.05, 0.5, 2.0])), size=(n, k))
    raw[rng.random((n, k)) < draw(st.sampled_from([0.0, 0.2]))] = 0.0
    raw[np.arange(n), rng.integers(0, k, n)] += 1e-3  # every row keeps some mass
    probs = raw / raw.sum(axis=1, keepdims=True)
    is_soft = draw(st.booleans()) if soft is None else soft
    if is_soft:
        targets = rng.dirichlet(np.ones(k), n)
        targets[rng.random((n, k)) < 0.3] = 0.0
        targets[np.arange(n), rng.integers(0, k, n)] += 0.5
        targets /= targets.sum(axis=1, keepdims=True)
        truth = {"targets": targets}
    else:
        truth = {"labels": rng.integers(0, k, n)}
    weights = rng.integers(0, 5, n).astype(float) if draw(st.booleans()) else None
    return probs, truth, weights


def run(probs, truth, weights=None, cuts=()):
    accumulator = streamdiv.Accumulator()
    edges = [0, *sorted(cuts), len(probs)]
    for lo, hi in zip(edges[:-1], edges[1:]):
        part = {name: values[lo:hi] for name, values in truth.items()}
        accumulator.update(probs=probs[lo:hi], weights=None if weights is None else weights[lo:hi], **part)
    return accumulator


def comparable(metrics):
    return {k: v for k, v in metrics.items() if v is not None}


@SETTINGS
@given(problems())
def test_kl_nonnegative_and_cross_entropy_identity(problem):
    probs, truth, weights = problem
    m = run(probs, truth, weights).report().metrics
    assume(m["weight"] > 0)
    if m["cross_entropy"] != np.inf:
        # Gibbs: KL >= 0 for rows that sum to 1; the float64 rows sum to 1 within a few ulp.
        assert m["kl_divergence"] >= -1e-15
        assert m["cross_entropy"] == pytest.approx(m["entropy"] + m["kl_divergence"], rel=1e-12, abs=1e-15)
    assert 0.0 <= m["js_divergence"] <= np.log(2) + 1e-15


@SETTINGS
@given(problems(), st.lists(st.integers(0, 40), max_size=5))
def test_batch_size_does_not_change_a_bit(problem, cuts):
    probs, truth, weights = problem
    cuts = [c for c in cuts if c < len(probs)]
    whole = run(probs, truth, weights).report().to_dict()
    chunked = run(probs, truth, weights, cuts).report().to_dict()
    assert whole == chunked


@SETTINGS
@given(problems(), st.integers(0, 40), st.integers(0, 40))
def test_merge_equals_one_pass_and_is_associative(problem, cut1, cut2):
    probs, truth, weights = problem
    a_end, b_end = sorted([min(cut1, len(probs)), min(cut2, len(probs))])

    def part(lo, hi):
        return run(probs[lo:hi], {n: v[lo:hi] for n, v in truth.items()},
                   None if weights is None else weights[lo:hi])

    a, b, c = part(0, a_end), part(a_end, b_end), part(b_end, len(probs))
    single = comparable(run(probs, truth, weights).report().metrics)
    left = comparable(((a + b) + c).report().metrics)
    right = comparable((a + (b + c)).report().metrics)
    for merged in (left, right):
        assert merged.keys() == single.keys()
        for name, value in single.items():
            assert merged[name] == pytest.approx(value, rel=1e-15, abs=1e-300), name


@SETTINGS
@given(problems(), st.integers(0, 2 ** 32 - 1))
def test_row_order_does_not_matter(problem, seed):
    probs, truth, weights = problem
    order = np.random.default_rng(seed).permutation(len(probs))
    shuffled = run(probs[order], {n: v[order] for n, v in truth.items()},
                   None if weights is None else weights[order]).report().metrics
    original = run(probs, truth, weights).report().metrics
    for name, value in comparable(original).items():
        assert shuffled[name] == pytest.approx(value, rel=1e-12, abs=1e-300), name


@SETTINGS
@given(problems())
def test_float32_storage_agrees_with_its_float64_upcast(problem):
    probs, truth, weights = problem
    narrow = probs.astype(np.float32)
    a = run(narrow, truth, weights).report().metrics
    b = run(narrow.astype(np.float64), truth, weights).report().metrics
    for name in ("cross_entropy", "kl_divergence", "brier", "ece", "accuracy", "js_divergence"):
        assert a[name] == b[name], name


def test_empty_accumulator_is_the_identity_of_merge():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    filled = streamdiv.Accumulator().update(probs=probs, labels=np.array([1, 0]))
    before = filled.report().to_dict()
    assert (streamdiv.Accumulator() + filled).report().to_dict() == before
    assert (filled + streamdiv.Accumulator()).report().to_dict() == before
    assert filled.report().to_dict() == before  # a + b leaves both alone
