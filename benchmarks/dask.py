"""Scale-out on Dask on this machine: throughput of streamdiv.dask.evaluate on a LocalCluster of 1 and of 2 worker
processes against evaluate() in one process, and the cost of one more task.

    python benchmarks/dask.py                           # 8 M rows of the demo's data, 32 row groups
    python benchmarks/dask.py --rows 2000000 --repeats 3

Every worker has one Dask thread and one kernel thread, so 1 and 2 workers use 1 and 2 cores; evaluate()
runs at 1 and 2 kernel threads (decoding runs ahead on a thread of its own in both).  The file's row groups
go one to a task, then four ("4 rg/task": a task reads ahead within its own row groups, not across tasks).
Imports, starting the clusters and a first run on each (the workers load numba's cache) come before the
clock; repetitions are interleaved; the tables give medians and ratios.  The cost of a task: a file of
``--tiny-groups`` row groups of 1,000 rows, scored with one task per row group and with one task in all, on
the cluster of one worker: (many - one) / (tasks - 1).  A benchmark, never a test: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

# This file is named dask.py: its folder must not stand first on the path, or `import dask` would find it.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != HERE]

KEYWORDS = dict(probs="probs", labels="label", by="region")


def one_process(path: str, threads: int) -> Callable[[], Any]:
    import numba

    import streamdiv

    def run() -> Any:
        numba.set_num_threads(threads)
        try:
            return streamdiv.evaluate(path, **KEYWORDS)
        finally:
            numba.set_num_threads(2)
    return run


def on_cluster(client: Any, path: str, per_task: int = 1) -> Callable[[], Any]:
    import streamdiv.dask as streamdiv_dask

    def run() -> Any:
        with client.as_current():
            return streamdiv_dask.evaluate(path, row_groups_per_task=per_task, **KEYWORDS)
    return run


def timed(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each run, after one untimed run each; repetitions interleaved."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def _kernel_threads() -> int:
    import numba

    return numba.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8_000_000)
    parser.add_argument("--row-groups", type=int, default=32)
    parser.add_argument("--tiny-groups", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    # Here, not at the top: the workers import this file too (as multiprocessing's __mp_main__), and their
    # kernels must run on the one thread their environment says.
    os.environ.setdefault("NUMBA_NUM_THREADS", "2")  # before numba loads: evaluate() at 1 and 2 threads
    from distributed import Client, LocalCluster

    from streamdiv.synthetic import write_predictions

    with tempfile.TemporaryDirectory(prefix="streamdiv-dask-bench-") as scratch:
        big, tiny = os.path.join(scratch, "big.parquet"), os.path.join(scratch, "tiny.parquet")
        write_predictions(big, args.rows, row_group_size=-(-args.rows // args.row_groups))
        write_predictions(tiny, args.tiny_groups * 1000, row_group_size=1000)
        one_process(big, 1)()  # compile, or load the cache, before the workers start
        environment = {"NUMBA_NUM_THREADS": "1"}
        with LocalCluster(n_workers=1, threads_per_worker=1, env=environment, dashboard_address=":0") as single, \
                LocalCluster(n_workers=2, threads_per_worker=1, env=environment, dashboard_address=":0") as double, \
                Client(single, set_as_default=False) as one_worker, Client(double, set_as_default=False) as two_workers:
            for client in (one_worker, two_workers):
                assert set(client.run(_kernel_threads).values()) == {1}
            seconds = timed({"evaluate(), 1 thread": one_process(big, 1),
                             "evaluate(), 2 threads": one_process(big, 2),
                             "dask, 1 worker": on_cluster(one_worker, big),
                             "dask, 2 workers": on_cluster(two_workers, big),
                             "dask, 1 worker, 4 rg/task": on_cluster(one_worker, big, 4),
                             "dask, 2 workers, 4 rg/task": on_cluster(two_workers, big, 4)}, args.repeats)
            task = timed({"many": on_cluster(one_worker, tiny), "one": on_cluster(one_worker, tiny, args.tiny_groups),
                          "many, 2 workers": on_cluster(two_workers, tiny),
                          "evaluate()": one_process(tiny, 1)}, args.repeats)
    print(f"{args.rows:,} rows (K=10 float32, by region) in {args.row_groups} row groups; median of "
          f"{args.repeats}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'run':27s} {'seconds':>8s} {'M rows/s':>9s} {'vs evaluate() 1 thread':>23s} {'vs 2 threads':>13s}")
    for name, value in seconds.items():
        print(f"{name:27s} {value:8.3f} {args.rows / value / 1e6:9.2f} "
              f"{seconds['evaluate(), 1 thread'] / value:22.2f}x {seconds['evaluate(), 2 threads'] / value:12.2f}x")
    for suffix in ("", ", 4 rg/task"):
        print(f"2 workers / 1 worker{suffix}: "
              f"{seconds['dask, 1 worker' + suffix] / seconds['dask, 2 workers' + suffix]:.2f}x the throughput")
    extra = (task["many"] - task["one"]) / (args.tiny_groups - 1)
    rows_alike = extra * args.rows / seconds["dask, 1 worker"]
    print(f"a task's cost: {extra * 1e3:.1f} ms on one worker, the time it scores {rows_alike:,.0f} rows of the "
          f"big file in ({args.tiny_groups} row groups of 1,000 rows: one task each {task['many']:.3f} s, one "
          f"task in all {task['one']:.3f} s, one task each on 2 workers {task['many, 2 workers']:.3f} s; "
          f"evaluate() {task['evaluate()']:.3f} s)")


if __name__ == "__main__":
    main()
