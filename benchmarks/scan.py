"""What the running view costs: scan() against evaluate() on the same Parquet file, in one process.

    python benchmarks/scan.py                          # 2 M rows, 10 classes, grouped by region
    python benchmarks/scan.py --rows 500000 --repeats 3

scan() runs the kernels twice over every row (the running accumulator and the step's own) and derives two
reports per step, so its cost over evaluate() is about 2x the scoring plus the reports; decoding, which
runs ahead on the background thread in both, is paid once.  The file (streamdiv.synthetic, seeded) is
written into a temporary directory; the kernels are warmed on it before the clock starts; repetitions are
interleaved round-robin and the table shows the median and its ratio to evaluate() measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import streamdiv  # noqa: E402
from streamdiv.synthetic import write_predictions  # noqa: E402

COLUMNS = {"probs": "probs", "labels": "label", "by": "region"}


def methods(path: str) -> dict[str, Callable[[], float]]:
    """Each method returns the overall cross-entropy, a checksum that must agree between them."""
    def scanned(every: int | None) -> Callable[[], float]:
        def run() -> float:
            last = None
            for last in streamdiv.scan(path, **COLUMNS, every=every):
                pass
            assert last is not None
            return float(last.running.metrics["cross_entropy"])
        return run

    return {
        "evaluate()": lambda: float(streamdiv.evaluate(path, **COLUMNS).metrics["cross_entropy"]),
        "scan(), a step per batch": scanned(None),
        "scan(every=100_000)": scanned(100_000),
        "scan(every=10_000)": scanned(10_000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="streamdiv-scan-bench-") as scratch:
        path = os.path.join(scratch, "preds.parquet")
        write_predictions(path, options.rows, options.classes)
        started = time.perf_counter()
        streamdiv.evaluate(path, **COLUMNS)  # compiles the kernels, or loads them from numba's cache
        print(f"warm-up (compile or cache load, then one evaluate()): {time.perf_counter() - started:.2f} s")
        timed = methods(path)
        seconds: dict[str, list[float]] = {name: [] for name in timed}
        checksums: dict[str, float] = {}
        for _ in range(options.repeats):
            for name, run in timed.items():
                started = time.perf_counter()
                checksums[name] = run()
                seconds[name].append(time.perf_counter() - started)
    baseline = statistics.median(seconds["evaluate()"])
    print(f"{options.rows:,} rows, {options.classes} classes, by region, {options.repeats} repeats, "
          f"{os.cpu_count()} cores")
    print(f"{'method':28s} {'median s':>9s} {'ratio':>6s}  cross_entropy")
    for name, times in seconds.items():
        median = statistics.median(times)
        print(f"{name:28s} {median:9.3f} {median / baseline:6.2f}  {checksums[name]!r}")
    if len(set(checksums.values())) != 1:
        raise SystemExit("the methods disagree on the cross-entropy")


if __name__ == "__main__":
    main()
