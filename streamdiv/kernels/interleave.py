"""Per-class columns into one rows x K array: the kernels' input for the layout of one column per class.

``np.stack(columns, axis=1)`` writes each column into the result with a stride of K values, one column after
another, so every column sweeps the whole result again: 17 ns/row for ten float32 columns of a million
rows here, nearly the kernel's own cost over the stacked rows (benchmarks/wide_columns.py, one thread).
This pass writes the result row by row.  The columns are found by their buffers' addresses, so that one
compiled function serves every K (a tuple of K arrays would compile once per K).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

@intrinsic
def _pointer_like(typingctx, address, array):
    """The pointer at ``address`` (an int64) to values of ``array``'s dtype."""
    pointer_type = types.CPointer(array.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.PointerType(context.get_value_type(array.dtype)))

    return pointer_type(types.int64, array), codegen


@njit(cache=True, nogil=True)
def interleave_columns(addresses, out):
    """out[i, k] = row i of column k, for the C-contiguous columns of ``out``'s dtype whose first values lie
    at ``addresses[k]``, each of out.shape[0] values.  Row by row: the result is written in order and each
    column read in order, K streams at once; 0.58 ns a value at K = 10, 1.1 at K = 100, against 1.5 and 1.7
    for the columns one after another a tile of rows at a time (/tmp probe, a million rows)."""
    n_rows, n_columns = out.shape
    for i in range(n_rows):
        for k in range(n_columns):
            out[i, k] = _pointer_like(addresses[k], out)[i]


def interleaves(columns: list[np.ndarray]) -> bool:
    """Whether interleave_columns serves these columns: 1-D, C-contiguous, of one length and one dtype,
    float32 or float64."""
    first = columns[0]
    return first.dtype in (np.float32, np.float64) and all(
        c.ndim == 1 and c.dtype == first.dtype and c.shape == first.shape and c.flags.c_contiguous for c in columns)


def stack_columns(columns: list[np.ndarray]) -> np.ndarray:
    """The columns side by side as one C-contiguous rows x K array, as ``np.stack(columns, axis=1)`` gives
    it (the same values and dtype), by interleave_columns where it serves them (else by np.stack)."""
    first = columns[0]
    if not interleaves(columns):
        return np.stack(columns, axis=1)
    out = np.empty((first.shape[0], len(columns)), dtype=first.dtype)
    if first.shape[0]:
        interleave_columns(np.array([c.ctypes.data for c in columns], dtype=np.int64), out)
    return out
