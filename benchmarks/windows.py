"""The cost of the window key: evaluate() on one in-memory table, windowed by a timestamp column, against the
same run grouped by an integer column holding each row's window number (the same cardinality).

    python benchmarks/windows.py                 # 4 M rows, 24 one-hour windows
    python benchmarks/windows.py --rows 1000000 --repeats 9

Layouts are interleaved over repetitions in this one process; the table gives medians and the ratio
windowed / integer-grouped.  Timestamps come sorted (a log written as it happened) and shuffled.  A benchmark,
never a test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pyarrow as pa

import streamdiv


def tables(rows: int, windows: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(5)
    z = rng.normal(0.0, 2.0, (rows, 10))
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q = (q / q.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = (rng.random(rows)[:, None] < q.cumsum(axis=1)).argmax(axis=1).astype(np.int32)
    binary = rng.random(rows).astype(np.float32)
    binary_labels = (rng.random(rows) < binary).astype(np.int8)
    seconds = np.sort(rng.integers(0, windows * 3600, rows))
    made = {}
    for order, index in (("sorted", np.arange(rows)), ("shuffled", rng.permutation(rows))):
        instants = seconds[index]
        common = {"ts": pa.array(instants * 1000, pa.timestamp("ms", tz="UTC")),
                  "hour": pa.array((instants // 3600).astype(np.int64))}
        made[f"K=10, {order}"] = pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(q.ravel()), 10),
                                           "label": labels, **common})
        made[f"binary loss, {order}"] = pa.table({"probs": binary, "label": binary_labels, **common})
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runs = {}
    for name, table in tables(args.rows, args.windows).items():
        metrics = "loss" if name.startswith("binary") else "all"
        runs[(name, "integer by")] = lambda table=table, metrics=metrics: streamdiv.evaluate(
            table, probs="probs", labels="label", by="hour", metrics=metrics)
        runs[(name, "window")] = lambda table=table, metrics=metrics: streamdiv.evaluate(
            table, probs="probs", labels="label", time="ts", window="1h", metrics=metrics)
    for run in runs.values():
        run()  # compile, or load the cache
    times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    for _ in range(args.repeats):
        for key, run in runs.items():
            started = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - started)
    print(f"{args.rows:,} rows, {args.windows} windows, median of {args.repeats}, ns/row")
    print(f"{'layout':22s} {'integer by':>11s} {'window':>8s} {'ratio':>6s}")
    for name in dict.fromkeys(name for name, _ in runs):
        by, window = (statistics.median(times[(name, kind)]) / args.rows * 1e9 for kind in ("integer by", "window"))
        print(f"{name:22s} {by:11.1f} {window:8.1f} {window / by:6.2f}")


if __name__ == "__main__":
    main()
