"""Seeded data factories and the hypothesis profiles shared by the tests."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from reference import softmax


def make_hard(n: int = 2000, num_classes: int = 5, seed: int = 0, dtype=np.float64):
    """Softmax of N(0, 2^2) logits, labels drawn from the predictions (calibrated)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, num_classes))
    probs = softmax(logits).astype(dtype)
    labels = np.array([rng.choice(num_classes, p=row / row.sum()) for row in probs.astype(np.float64)])
    return logits, probs, labels


def make_soft(n: int = 2000, num_classes: int = 5, seed: int = 1, zero_fraction: float = 0.3):
    """Soft targets with exact zeros (argmax kept), predictions from noisy logits."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, num_classes))
    targets = softmax(logits)
    zero = rng.random((n, num_classes)) < zero_fraction
    zero[np.arange(n), targets.argmax(axis=1)] = False
    targets[zero] = 0.0
    targets /= targets.sum(axis=1, keepdims=True)
    probs = softmax(logits + rng.normal(0.0, 1.0, (n, num_classes)))
    return targets, probs


@pytest.fixture
def hard():
    return make_hard()


@pytest.fixture
def soft():
    return make_soft()


# Hypothesis: a modest number of examples by default, so that the whole suite stays quick; more with
# HYPOTHESIS_PROFILE=thorough.  No deadline: the first example of a layout may compile its kernel (a minute
# on a cold cache).
settings.register_profile("quick", max_examples=25, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=400, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))
