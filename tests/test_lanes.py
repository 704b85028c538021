"""kernels.lanes: four compensated sums stepped as one vector hold, lane by lane, the bits of the scalar chains."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from streamdiv.kernels.lanes import lane, neumaier4, pack4
from streamdiv.kernels.primitives import _neumaier


@njit
def _scalar_chains(terms, start):
    """Each column of ``terms`` added to its own (sum, compensation) pair by _neumaier, in row order."""
    out = start.copy()
    for i in range(terms.shape[0]):
        for k in range(4):
            out[0, k], out[1, k] = _neumaier(out[0, k], out[1, k], terms[i, k])
    return out


@njit
def _vector_chains(terms, start):
    totals = pack4(start[0, 0], start[0, 1], start[0, 2], start[0, 3])
    compensations = pack4(start[1, 0], start[1, 1], start[1, 2], start[1, 3])
    for i in range(terms.shape[0]):
        totals, compensations = neumaier4(totals, compensations,
                                          pack4(terms[i, 0], terms[i, 1], terms[i, 2], terms[i, 3]))
    out = np.empty((2, 4))
    for k in range(4):
        out[0, k], out[1, k] = lane(totals, k), lane(compensations, k)
    return out


def _same_bits(terms: np.ndarray, start: np.ndarray) -> None:
    expected, found = _scalar_chains(terms, start), _vector_chains(terms, start)
    assert expected.view(np.int64).tolist() == found.view(np.int64).tolist()


def test_every_lane_has_the_bits_of_its_scalar_chain():
    rng = np.random.default_rng(5)
    terms = rng.standard_normal((5000, 4)) * np.array([1.0, 1e8, 1e-8, 1.0])
    terms[::7, 3] *= 1e12  # the term larger than the running sum: Neumaier's other branch
    terms[::11, 1] = -terms[::11, 1]
    terms[3::13] = 0.0
    terms[5::17, 2] = -0.0
    _same_bits(terms, np.zeros((2, 4)))
    _same_bits(terms, rng.standard_normal((2, 4)))


def test_integers_and_special_values_step_as_in_the_scalar_chain():
    terms = np.array([[1.0, 0.0, np.inf, 5e-324], [1.0, -0.0, 1.0, 5e-324], [2.0**53, 1e308, -np.inf, -5e-324],
                      [1.0, 1e308, 1.0, 1.0], [np.nan, -1e308, 2.0, 0.5]])
    _same_bits(terms, np.zeros((2, 4)))


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite, finite, finite), min_size=1, max_size=60))
def test_any_finite_terms(rows):
    _same_bits(np.array(rows, dtype=np.float64), np.zeros((2, 4)))
