"""A list column's offsets: whether every row holds the same number of values, in one pass."""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def common_length(offsets):
    """The length every row of a list column shares (offsets[i + 1] - offsets[i] for all i), or -1 when the
    rows differ: one pass without temporaries, where np.diff, a bincount and a comparison took three
    (K = 10 lists: 26 ms of a 0.23 s run, on the main thread)."""
    n_rows = offsets.shape[0] - 1
    if n_rows < 1:
        return -1
    length = offsets[1] - offsets[0]
    for i in range(1, n_rows):
        if offsets[i + 1] - offsets[i] != length:
            return -1
    return length
