"""A pipeline: predictions made by DuckDB, handed to streamdiv through the Arrow C stream interface, and
scored in parallel by worker processes whose states are merged.

What it shows:

* zero glue between a query engine and streamdiv: a DuckDB relation has ``__arrow_c_stream__``, so
  ``streamdiv.evaluate(relation, ...)`` reads its result batch by batch, with no pandas and no file between
  them (``pyarrow.RecordBatchReader.from_stream(relation)`` gives the same batches to code of your own);
* states merged across processes: each worker scores its shard of the rows into a
  ``streamdiv.Accumulator`` and returns ``to_bytes()``; the parent restores them with
  ``Accumulator.from_bytes`` and ``merge``s them, and checks the merged report against one pass over all
  the rows, printing the largest relative difference over every metric, overall and per region.

The "model" is a linear one written in SQL: three classes, logits from two features, and in ``us`` the
logits are scaled by 1.6 (overconfident), so the per-region ECE differs.  The features are made with numpy
and stored in a Parquet file that DuckDB reads.

Run it:
    python examples/pipeline.py            # 2,000,000 rows, 4 workers
    python examples/pipeline.py --quick    # 20,000 rows, 2 workers (or STREAMDIV_EXAMPLE_QUICK=1)
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import tempfile

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import streamdiv

# The model's logits per row, in SQL.  Selecting ``$shards`` = 1, ``$shard`` = 0 gives every row.
PREDICTIONS = """
SELECT region, label,
       [scale * 2.0 * x1, scale * 2.0 * x2, 0.0]::DOUBLE[3] AS logits
FROM (SELECT *, CASE region WHEN 'us' THEN 1.6 ELSE 1.0 END AS scale FROM read_parquet($path))
WHERE row_id % $shards = $shard
"""


def write_features(path: str, rows: int, seed: int = 2026) -> None:
    """Two features per row, a region, and a label drawn from the true probabilities softmax(2 x1, 2 x2, 0)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal(rows), rng.standard_normal(rows)
    true_logits = np.column_stack([2.0 * x1, 2.0 * x2, np.zeros(rows)])
    truth = np.exp(true_logits - true_logits.max(axis=1, keepdims=True))
    truth /= truth.sum(axis=1, keepdims=True)
    labels = (truth.cumsum(axis=1) < rng.random(rows)[:, None]).sum(axis=1).clip(max=2)
    regions = np.array(["eu", "us", "apac"])[rng.integers(0, 3, rows)]
    pq.write_table(pa.table({"row_id": np.arange(rows), "x1": x1, "x2": x2, "region": regions,
                             "label": labels.astype(np.int8)}), path)


def predictions(path: str, shard: int = 0, shards: int = 1) -> duckdb.DuckDBPyRelation:
    """The model's predictions for one shard of the rows, as a DuckDB relation (nothing is computed yet)."""
    return duckdb.connect().sql(PREDICTIONS, params={"path": path, "shard": shard, "shards": shards})


def score_shard(task: tuple[str, int, int]) -> bytes:
    """In a worker process: score one shard into an Accumulator, batch by batch, and return its state."""
    path, shard, shards = task
    accumulator = streamdiv.Accumulator()
    for batch in pa.RecordBatchReader.from_stream(predictions(path, shard, shards)):
        accumulator.update(logits=batch["logits"], labels=batch["label"], groups={"region": batch["region"]})
    return accumulator.to_bytes()


def relative_difference(a: float | None, b: float | None) -> float:
    if a is None or b is None or a == b:
        return 0.0 if a == b else math.inf
    return abs(a - b) / max(abs(a), abs(b))


def largest_difference(one: streamdiv.Report, other: streamdiv.Report) -> tuple[float, str, int]:
    """The largest relative difference between two reports' metrics, overall and per group (groups matched
    by their key, not their position), where it is, and how many values were compared."""
    pairs = [("overall", one.metrics, other.metrics)]
    theirs = {tuple(sorted(g["group"].items())): g["metrics"] for g in other.groups}
    for group in one.groups:
        key = tuple(sorted(group["group"].items()))
        pairs.append((",".join(f"{k}={v}" for k, v in key), group["metrics"], theirs[key]))
    worst, where, compared = 0.0, "", 0
    for label, mine, yours in pairs:
        for name, value in mine.items():
            if isinstance(value, (int, float)) or value is None:
                compared += 1
                difference = relative_difference(value, yours[name])
                if difference > worst:
                    worst, where = difference, f"{label} {name}"
    return worst, where, compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("STREAMDIV_EXAMPLE_QUICK") == "1",
                        help="a few thousand rows and two workers, for the test suite")
    args = parser.parse_args()
    rows, workers = (20_000, 2) if args.quick else (2_000_000, 4)

    with tempfile.TemporaryDirectory(prefix="streamdiv-pipeline-") as scratch:
        path = os.path.join(scratch, "features.parquet")
        write_features(path, rows)

        # One pass: the DuckDB relation itself is the source (streamdiv reads it through __arrow_c_stream__)
        relation = predictions(path)
        print(f"DuckDB {duckdb.__version__}: the relation has __arrow_c_stream__: "
              f"{hasattr(relation, '__arrow_c_stream__')}")
        one_pass = streamdiv.evaluate(relation, logits="logits", labels="label", by="region")
        print(f"one pass:  {one_pass!r}")
        for group in one_pass.groups:
            metrics = group["metrics"]
            print(f"  region={group['group']['region']:<5} rows={metrics['rows']:>9,}  "
                  f"cross_entropy={metrics['cross_entropy']:.6f}  accuracy={metrics['accuracy']:.6f}  "
                  f"ece={metrics['ece']:.6f}")

        # The same rows in shards (row_id % workers), one worker process each; "spawn" starts each worker
        # fresh, so numba's threads work there (a fork of a process that used them runs on one thread)
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            states = pool.map(score_shard, [(path, shard, workers) for shard in range(workers)])
        restored = [streamdiv.Accumulator.from_bytes(state) for state in states]
        print(f"{workers} workers: " + ", ".join(f"shard {i} {acc.rows:,} rows ({len(state):,} bytes of state)"
                                                 for i, (acc, state) in enumerate(zip(restored, states))))
        merged = restored[0]
        for other in restored[1:]:
            merged.merge(other)
        merged_report = merged.report()
        print(f"merged:    {merged_report!r}")
        worst, where, compared = largest_difference(one_pass, merged_report)
        print(f"merge against one pass: largest relative difference {worst:.3e} over {compared} values"
              + (f" ({where})" if where else ""))


if __name__ == "__main__":
    main()
