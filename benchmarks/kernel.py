"""In-memory kernel cost: ns per row of ``Accumulator.update`` on numpy arrays, at 1 and 2 numba threads.

    python benchmarks/kernel.py                 # 4 M rows per layout
    python benchmarks/kernel.py --rows 1000000 --repeats 9
    NUMBA_NUM_THREADS=1 python benchmarks/kernel.py --only binary --statistic min

Each layout runs in this one process, interleaved over repetitions with a memory floor (the float64 sum of the
layout's predictions and labels, numpy on one thread) for the ratio in the last column; ``--only`` keeps the
layouts whose name contains the word.  The table gives medians (or minima) and the speed-up of 2 threads
over 1.  A benchmark, never a test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

from streamdiv import Accumulator


def layouts(rows: int) -> dict[str, dict]:
    rng = np.random.default_rng(3)

    def softmax(k: int, n: int) -> np.ndarray:
        z = rng.normal(0.0, 2.0, (n, k))
        q = np.exp(z - z.max(axis=1, keepdims=True))
        return (q / q.sum(axis=1, keepdims=True)).astype(np.float32)

    q10 = softmax(10, rows)
    labels10 = (rng.random(rows)[:, None] < q10.cumsum(axis=1)).argmax(axis=1).astype(np.int32)
    p10 = softmax(10, rows)
    p10[p10 < 0.03] = 0.0
    p10 /= p10.sum(axis=1, keepdims=True)
    q100 = softmax(100, rows // 10)
    binary = rng.random(rows).astype(np.float32)
    binary_labels = (rng.random(rows) < binary).astype(np.int8)
    return {
        "hard K=10 probs": {"probs": q10, "labels": labels10},
        "hard K=10 probs, classwise off": {"probs": q10, "labels": labels10, "classwise": False},
        "hard K=10 probs, metrics=loss": {"probs": q10, "labels": labels10, "metrics": "loss"},
        "hard K=10 logits": {"logits": np.log(q10), "labels": labels10},
        "K=10 probs, label-free": {"probs": q10},
        "K=10 logits, label-free": {"logits": np.log(q10)},
        "hard K=100 probs (rows/10)": {"probs": q100, "labels": rng.integers(0, 100, rows // 10)},
        "hard K=100 probs (rows/10), classwise off": {"probs": q100, "labels": rng.integers(0, 100, rows // 10),
                                                      "classwise": False},
        "soft K=10 probs": {"probs": q10, "targets": p10},
        "binary probs": {"probs": binary, "labels": binary_labels},
        "binary probs, metrics=loss": {"probs": binary, "labels": binary_labels, "metrics": "loss"},
        "binary probs, label-free": {"probs": binary},
        "hard K=10 by 8 groups, mixed": {"probs": q10, "labels": labels10, "groups": rng.integers(0, 8, rows)},
        "hard K=10 by 8 groups, in runs": {"probs": q10, "labels": labels10,
                                           "groups": np.repeat(np.arange(8), -(-rows // 8))[:rows]},
    }


def time_once(inputs: dict) -> float:
    options = {name: inputs[name] for name in ("metrics", "classwise") if name in inputs}
    arrays = {name: value for name, value in inputs.items() if name not in options}
    accumulator = Accumulator(**options)
    started = time.perf_counter()
    accumulator.update(**arrays)
    return time.perf_counter() - started


def floor_once(inputs: dict) -> float:
    """Seconds to read the layout's predictions and labels once: their sums on one thread."""
    started = time.perf_counter()
    for name in ("probs", "logits", "labels", "targets"):
        if name in inputs:
            inputs[name].sum(dtype=np.float64)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="keep the layouts whose name contains this")
    parser.add_argument("--statistic", choices=("median", "min"), default="median")
    args = parser.parse_args()
    cases = {name: inputs for name, inputs in layouts(args.rows).items() if args.only in name}
    statistic = statistics.median if args.statistic == "median" else min
    threads = [1, 2] if numba.config.NUMBA_NUM_THREADS >= 2 else [1]
    for inputs in cases.values():  # compile (or load from cache) before timing
        time_once({k: v if k in ("metrics", "classwise") else v[:1000] for k, v in inputs.items()})
    times: dict[tuple[str, int], list[float]] = {(name, t): [] for name in cases for t in threads}
    floors: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, inputs in cases.items():
            floors[name].append(floor_once(inputs))
            for t in threads:
                numba.set_num_threads(t)
                times[name, t].append(time_once(inputs))
    print("| layout | rows | " + " | ".join(f"{t} thread{'s' * (t > 1)} ns/row" for t in threads)
          + (" | speed-up" if len(threads) > 1 else "") + " | floor ns/row | 1 thread x floor |")
    print("|---|---:|" + "---:|" * len(threads) + ("---:|" if len(threads) > 1 else "") + "---:|---:|")
    for name, inputs in cases.items():
        n = len(inputs["probs"] if "probs" in inputs else inputs["logits"])
        values = [statistic(times[name, t]) for t in threads]
        floor = statistic(floors[name])
        cells = " | ".join(f"{m / n * 1e9:.1f}" for m in values)
        speedup = f" | {values[0] / values[-1]:.2f}x" if len(threads) > 1 else ""
        print(f"| {name} | {n:,} | {cells}{speedup} | {floor / n * 1e9:.2f} | {values[0] / floor:.1f} |")


if __name__ == "__main__":
    main()
