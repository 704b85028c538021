"""End to end on Parquet, in one process: streamdiv (its own list decoder on and off) against the pyarrow
decode floor and DuckDB's cross-entropy alone, interleaved, ratios to the floor within the run.

    python benchmarks/end_to_end.py --data-dir /tmp/bench10 --scale 0.1 --repeats 3

The files are benchmarks/run.py's datasets (written there when missing, as run.py names them).  Unlike
run.py, every method runs in this one process (no fresh process, no peak RSS): a quick A/B of the reader
paths.  Times are the minimum over the repeats, after one warm-up run of each method.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (benchmarks/run.py: the datasets and the peers' queries)

from streamdiv import parquet_part  # noqa: E402


def streamdiv_with(own: bool, metrics: str):
    def method(ds, path):
        parquet_part.OWN_DECODER = own
        return run.m_streamdiv(ds, path, metrics)
    return method


METHODS = {
    "pyarrow decode floor": run.m_floor_decode,
    "streamdiv loss": streamdiv_with(True, "loss"),
    "streamdiv loss, pyarrow reader": streamdiv_with(False, "loss"),
    "streamdiv full": streamdiv_with(True, "all"),
    "streamdiv full, pyarrow reader": streamdiv_with(False, "all"),
    "DuckDB CE alone": lambda ds, path: run.m_duckdb(ds, path, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="binary,hard_k10_fixed,hard_k10_list,hard_k10_wide,hard_k100_fixed")
    args = parser.parse_args()
    for ds in [d for d in run.DATASETS if d.name in args.only.split(",")]:
        path = os.path.join(args.data_dir, f"{ds.name}_{args.scale}.parquet")
        if not os.path.exists(path):
            run.write_dataset(ds, path, ds.rows(args.scale))
        times: dict[str, list[float]] = {name: [] for name in METHODS}
        for repeat in range(args.repeats + 1):
            for name, method in METHODS.items():
                seconds, _ = method(ds, path)
                if repeat:  # the first round warms caches and the JIT
                    times[name].append(seconds)
        floor = min(times["pyarrow decode floor"])
        print(f"\n{ds.name} ({ds.rows(args.scale):,} rows)\n\n| method | min s | x floor |\n|---|---:|---:|")
        for name, values in times.items():
            print(f"| {name} | {min(values):.3f} | {min(values) / floor:.2f} |", flush=True)


if __name__ == "__main__":
    main()
