"""The time of drift from two stored states: reading both state files and computing every figure.

    python benchmarks/drift.py                  # K=10, 15 bins; 1, 8 and 8 x 30 daily windows of groups
    python benchmarks/drift.py --classes 100 --repeats 21

The states are made once (their scoring is not timed); the table gives the median time of
``streamdiv.drift.drift(reference_path, current_path)`` and, beside it, of ``Accumulator.from_bytes`` on the
current state alone, the part that is reading.  A benchmark, never a test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import streamdiv
from streamdiv import drift


def _state(rows: int, classes: int, temperature: float, groups: int, windows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, (rows, classes)) / temperature
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    labels = (rng.random(rows)[:, None] < q.cumsum(axis=1)).argmax(axis=1)
    accumulator = streamdiv.Accumulator(window="1d" if windows else None)
    keys = {"segment": rng.integers(0, groups, rows)} if groups > 1 else None
    time_column = (np.datetime64("2026-11-01") + rng.integers(0, windows, rows).astype("timedelta64[D]")
                   if windows else None)
    accumulator.update(probs=q, labels=labels, groups=keys, time=time_column)
    return accumulator.to_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    print(f"K={args.classes}, median of {args.repeats}, milliseconds")
    print(f"{'states':28s} {'bytes':>10s} {'read one':>9s} {'drift':>8s}")
    with tempfile.TemporaryDirectory() as scratch:
        for label, groups, windows in (("ungrouped", 1, 0), ("8 groups", 8, 0), ("8 groups x 30 days", 8, 30)):
            paths = []
            for side, temperature in (("reference", 1.0), ("current", 0.7)):
                path = os.path.join(scratch, f"{side}.state")
                with open(path, "wb") as handle:
                    handle.write(_state(args.rows, args.classes, temperature, groups, windows if side == "current"
                                        else 0, seed=len(paths)))
                paths.append(path)
            drift(*paths)  # imports, first calls
            reading, drifting = [], []
            for _ in range(args.repeats):
                started = time.perf_counter()
                with open(paths[1], "rb") as handle:
                    streamdiv.Accumulator.from_bytes(handle.read())
                reading.append(time.perf_counter() - started)
                started = time.perf_counter()
                drift(*paths)
                drifting.append(time.perf_counter() - started)
            size = os.path.getsize(paths[1])
            print(f"{label:28s} {size:10,d} {statistics.median(reading) * 1e3:9.2f} "
                  f"{statistics.median(drifting) * 1e3:8.2f}")


if __name__ == "__main__":
    main()
