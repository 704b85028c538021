"""common_length: the one-pass check that every row of a list column holds the same number of values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from streamdiv.columns import distribution
from streamdiv.kernels.list_offsets import common_length
from streamdiv.kernels.status import NULL_PREDICTION, OK, WRONG_LENGTH_PREDICTION


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("offsets, expected", [
    ([0, 3, 6, 9], 3), ([5, 7, 9], 2), ([0, 0, 0], 0), ([4, 14], 10),
    ([0, 3, 6, 8], -1), ([0, 2, 6, 8], -1), ([0], -1), ([], -1),
])
def test_common_length(offsets, expected, dtype):
    assert common_length(np.array(offsets, dtype=dtype)) == expected


@pytest.mark.parametrize("rows", [
    [[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]],  # one length: the fast path
    [[0.25, 0.75], [0.5, 0.25, 0.25], [1.0, 0.0]],  # a ragged row: flagged
    [[0.25, 0.75], None, [1.0, 0.0]],  # a null row: flagged
])
@pytest.mark.parametrize("expected_classes", [None, 2, 3])
def test_lists_of_one_length_give_the_matrix_of_the_general_path(rows, expected_classes):
    """A sliced list array through the fast path and through the general one (a null row forces it)."""
    array = pa.array([[9.0, 9.0]] + rows, pa.list_(pa.float32())).slice(1)
    status = np.zeros(len(rows), dtype=np.uint8)
    matrix = distribution(array, "probs", expected_classes, status, NULL_PREDICTION, WRONG_LENGTH_PREDICTION)
    width = expected_classes or 2
    assert matrix.shape == (len(rows), width)
    for i, row in enumerate(rows):
        if row is not None and len(row) == width:
            assert status[i] == OK and matrix[i].tolist() == row
        else:
            assert status[i] in (NULL_PREDICTION, WRONG_LENGTH_PREDICTION)
