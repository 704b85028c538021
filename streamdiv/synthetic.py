"""Deterministic synthetic prediction sets with a known miscalibration, for the demo and the benchmarks.

True class probabilities are softmax(z) with z ~ N(0, 2^2); labels are drawn from them.  A model sees the
same logits through a temperature: it predicts softmax(z / T + b), so T < 1 is overconfident, T > 1
underconfident and T = 1 calibrated.  Each region gets its own temperature; every region's model also
favours the first class (b = CLASS_BIAS on its logit, 0 elsewhere), which the class-wise calibration shows
and the top-label one barely does.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# region -> temperature of its model: "eu" is calibrated, "us" overconfident, "apac" underconfident
REGIONS = {"eu": 1.0, "us": 0.6, "apac": 1.6}
CLASS_BIAS = 0.5  # added to the first class's logit: the model predicts it too often


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def prediction_batch(n_rows: int, num_classes: int, rng: np.random.Generator,
                     dtype: type = np.float32) -> pa.RecordBatch:
    """One batch: ``probs`` (fixed_size_list<float32>[K]), ``label`` int32, ``region`` string."""
    return _batch_at(n_rows, num_classes, rng, REGIONS, dtype)


def _batch_at(n_rows: int, num_classes: int, rng: np.random.Generator, temperatures: dict[str, float],
              dtype: type = np.float32) -> pa.RecordBatch:
    """prediction_batch with each region's model at the given temperature."""
    logits = rng.normal(0.0, 2.0, (n_rows, num_classes))
    truth = softmax(logits)
    draws = rng.random(n_rows)[:, None]
    labels = np.minimum((truth.cumsum(axis=1) < draws).sum(axis=1), num_classes - 1).astype(np.int32)
    names = np.array(list(temperatures))
    region_index = rng.integers(0, len(names), n_rows)
    temperature = np.array(list(temperatures.values()))[region_index][:, None]
    bias = np.zeros(num_classes)
    bias[0] = CLASS_BIAS
    probs = softmax(logits / temperature + bias).astype(dtype)
    flat = pa.array(probs.reshape(-1))
    return pa.record_batch({
        "probs": pa.FixedSizeListArray.from_arrays(flat, num_classes),
        "label": pa.array(labels),
        "region": pa.array(names[region_index]).dictionary_encode(),
    })


def write_predictions(path: str, n_rows: int, num_classes: int = 10, seed: int = 2026,
                      row_group_size: int = 1 << 18) -> str:
    """Write a deterministic prediction set of ``n_rows`` rows to a Parquet file, one row group at a time."""
    rng = np.random.default_rng(seed)
    writer = None
    try:
        for start in range(0, n_rows, row_group_size):
            batch = prediction_batch(min(row_group_size, n_rows - start), num_classes, rng)
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema)
            writer.write_batch(batch, row_group_size=row_group_size)
    finally:
        if writer is not None:
            writer.close()
    return path


def write_days(directory: str, days: int = 7, rows_per_day: int = 100_000, num_classes: int = 10,
               first_day: str = "2026-11-24", shift_day: int = 5, shifted_temperature: float = 0.35,
               seed: int = 2026) -> list[str]:
    """A week of daily Parquet files ``day-YYYY-MM-DD.parquet`` for monitoring walk-throughs: the demo's
    columns plus ``ts`` (a UTC timestamp in milliseconds, spread over the day), and from day ``shift_day`` on
    (0-based) the ``us`` region's model grows more overconfident (temperature ``shifted_temperature``
    instead of REGIONS' 0.6), a drift the daily windows and a stored reference should catch."""
    import os

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for day in range(days):
        start = np.datetime64(first_day, "ms") + np.timedelta64(day, "D")
        temperatures = dict(REGIONS, us=shifted_temperature) if day >= shift_day else REGIONS
        batch = _batch_at(rows_per_day, num_classes, rng, temperatures)
        instants = start + np.sort(rng.integers(0, 86_400_000, rows_per_day)).astype("timedelta64[ms]")
        table = pa.Table.from_batches([batch]).append_column("ts", pa.array(instants, pa.timestamp("ms", tz="UTC")))
        path = os.path.join(directory, f"day-{str(start)[:10]}.parquet")
        pq.write_table(table, path)
        paths.append(path)
    return paths
