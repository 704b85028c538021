"""stack_columns: per-class columns side by side, exactly as np.stack(columns, axis=1) gives them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from streamdiv.kernels.interleave import stack_columns


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_rows, n_columns", [(0, 3), (1, 1), (7, 10), (1000, 3), (513, 100)])
def test_stack_columns_is_np_stack(dtype, n_rows, n_columns):
    rng = np.random.default_rng(n_rows + n_columns)
    columns = [rng.random(n_rows).astype(dtype) for _ in range(n_columns)]
    stacked = stack_columns(columns)
    expected = np.stack(columns, axis=1)
    assert stacked.dtype == expected.dtype and stacked.flags.c_contiguous
    assert np.array_equal(stacked, expected)


def test_stack_columns_reads_arrow_slices_at_their_offsets_and_keeps_nan_and_signs():
    values = np.array([0.5, np.nan, -0.0, np.inf, 1e-45, 0.25, 3.0], dtype=np.float32)
    columns = [pa.array(np.roll(values, k)).slice(2, 4).to_numpy() for k in range(5)]
    stacked = stack_columns(columns)
    expected = np.stack(columns, axis=1)
    assert np.array_equal(stacked.view(np.uint32), expected.view(np.uint32))  # NaN payloads and -0.0 too


@pytest.mark.parametrize("columns", [
    [np.arange(4.0), np.arange(4, dtype=np.float32)],  # mixed dtypes: float64, as np.stack upcasts
    [np.arange(8.0)[::2], np.arange(4.0)],  # a strided column
    [np.arange(4, dtype=np.float16), np.arange(4, dtype=np.float16)],
])
def test_stack_columns_falls_back_to_np_stack(columns):
    stacked = stack_columns(columns)
    expected = np.stack(columns, axis=1)
    assert stacked.dtype == expected.dtype and np.array_equal(stacked, expected)
