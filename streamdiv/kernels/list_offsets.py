"""A list column's offsets: whether every row holds the same number of values, in one pass."""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def common_length(offsets):
    """The length every row of a list column shares (offsets[i + 1] - offsets[i] for all i), or -1 when the
    rows differ or there are none: one pass over the offsets, stopping at the first row that differs, with no
    temporary arrays (it runs on the main thread, once a batch)."""
    n_rows = offsets.shape[0] - 1
    if n_rows < 1:
        return -1
    length = offsets[1] - offsets[0]
    for i in range(1, n_rows):
        if offsets[i + 1] - offsets[i] != length:
            return -1
    return length
