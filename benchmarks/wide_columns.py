"""Per-class columns read where they lie against ``np.stack``: a prototype measurement for issue 19, item 3.

    NUMBA_NUM_THREADS=1 python benchmarks/wide_columns.py --rows 1000000 --repeats 7

K = 10 float32 Arrow columns, hard labels.  The same small kernel (each row's sum checked against 1, and the
label's -log q) runs four ways in one process, interleaved over repetitions: on the columns stacked into one
rows x K array first, by ``np.stack`` or by streamdiv's ``stack_columns`` (what ``columns.distribution``
does), on an already stacked array (the kernel
alone), and on the columns themselves, row i class k read through a (K,) array of the columns' base
addresses (``numba.carray`` over a pointer made from each address by an LLVM ``inttoptr``).  The last column
of the table is each way's time over the memory floor (numpy summing the ten columns).  A benchmark, never
a test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import pyarrow as pa
from llvmlite import ir
from numba import carray, njit, types
from numba.extending import intrinsic

from streamdiv.kernels.interleave import stack_columns

ROW_SUM_TOLERANCE = 3.45e-4


@intrinsic
def float32_pointer(typingctx, address):
    """The float32 pointer at an int64 address (a buffer's address from pyarrow)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.PointerType(ir.FloatType()))
    return types.CPointer(types.float32)(types.int64), codegen


@njit(nogil=True, error_model="numpy")
def loss_from_columns(addresses, n_rows, labels):
    """(sum of -log q_y, rows whose |sum q - 1| is over the tolerance), column k read at addresses[k]."""
    columns = [carray(float32_pointer(addresses[k]), n_rows) for k in range(addresses.shape[0])]
    total = 0.0
    unnormalized = 0
    for i in range(n_rows):
        row_sum = 0.0
        for column in columns:
            row_sum += np.float64(column[i])
        unnormalized += abs(row_sum - 1.0) > ROW_SUM_TOLERANCE
        total -= math.log(np.float64(columns[labels[i]][i]))
    return total, unnormalized


@njit(nogil=True, error_model="numpy")
def loss_from_matrix(pred, labels):
    """loss_from_columns on a rows x K array."""
    total = 0.0
    unnormalized = 0
    for i in range(pred.shape[0]):
        row_sum = 0.0
        for k in range(pred.shape[1]):
            row_sum += np.float64(pred[i, k])
        unnormalized += abs(row_sum - 1.0) > ROW_SUM_TOLERANCE
        total -= math.log(np.float64(pred[i, labels[i]]))
    return total, unnormalized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 2.0, (args.rows, 10))
    q = np.exp(logits - logits.max(axis=1, keepdims=True))
    q = (q / q.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = (rng.random(args.rows)[:, None] < q.cumsum(axis=1)).argmax(axis=1).astype(np.int64)
    arrow_columns = [pa.array(np.ascontiguousarray(q[:, k])) for k in range(q.shape[1])]
    numpy_columns = [column.to_numpy() for column in arrow_columns]
    addresses = np.array([column.buffers()[1].address + column.offset * 4 for column in arrow_columns])
    stacked = np.stack(numpy_columns, axis=1)
    assert np.array_equal(stack_columns(numpy_columns), stacked)  # and compiled
    assert loss_from_columns(addresses, args.rows, labels) == loss_from_matrix(stacked, labels)  # and compiled
    ways = {
        "memory floor: numpy sums of the columns": lambda: [column.sum() for column in numpy_columns],
        "np.stack, then the rows x K kernel": lambda: loss_from_matrix(np.stack(numpy_columns, axis=1), labels),
        "streamdiv's stack_columns, then the rows x K kernel":
            lambda: loss_from_matrix(stack_columns(numpy_columns), labels),
        "the rows x K kernel alone (stacked before)": lambda: loss_from_matrix(stacked, labels),
        "the columns' addresses, no copy": lambda: loss_from_columns(addresses, args.rows, labels),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - started)
    floor = min(times["memory floor: numpy sums of the columns"])
    print("| way | min ns/row | median ns/row | min x floor |")
    print("|---|---:|---:|---:|")
    for name, measured in times.items():
        print(f"| {name} | {min(measured) / args.rows * 1e9:.1f} | "
              f"{statistics.median(measured) / args.rows * 1e9:.1f} | {min(measured) / floor:.1f} |")


if __name__ == "__main__":
    main()
