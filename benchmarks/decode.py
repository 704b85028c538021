"""streamdiv.parquet_decode against pyarrow's decode floor and DuckDB, 1 and 2 threads, in one process.

    python benchmarks/decode.py --data-dir /tmp/bench-decode --repeats 5

The files are benchmarks/run.py's datasets (written with its ``write_dataset`` if missing).  Every method
decodes every column of every row group and keeps nothing; "2 threads" decodes two row groups at once
(pyarrow: ``read_row_group`` in a 2-thread pool, one ParquetFile per read; DuckDB: ``SET threads=2``).  DuckDB
runs ``sum(probs[label + 1])`` (the sum of each column on binary and per-class files), which makes it decode
every column.
Repetitions are interleaved round-robin; the table gives the minimum and the spread (max / min) of each.

Measured (``--repeats 5``, scale 0.1, commit d1fae33; 2 shared cores at load average 8.6-11.2, spreads
1.1-3.3x, so only the ratios within the run mean anything), seconds, min of 5, 1 thread / 2 threads:

| file | pyarrow read_row_group | pyarrow iter_batches | DuckDB | parquet_decode | best pyarrow / ours |
|---|---:|---:|---:|---:|---:|
| hard_k10_fixed | 2.28 / 2.34 | 1.31 / 1.09 | 2.09 / 1.83 | 0.49 / 0.31 | 2.7 / 3.6 |
| hard_k10_list | 2.37 / 2.11 | 1.12 / 0.93 | 1.73 / 1.57 | 0.57 / 0.43 | 2.0 / 2.2 |
| hard_k100_fixed | 1.57 / 1.31 | 1.01 / 1.02 | 1.46 / 1.37 | 0.29 / 0.34 | 3.5 / 3.0 |
| binary | 1.14 / 0.75 | 1.21 / 0.51 | 1.39 / 1.33 | 1.49 / 1.28 | 0.77 / 0.39 |

On the list layouts the values are copied (or decompressed) straight from the mapped pages into the output,
the no-null definition levels are checked a run at a time and a fixed-size list's repetition levels are not
read; pyarrow builds the nested Arrow arrays level by level.  The flat binary file has 2 columns x 50 pages
a row group (pyarrow ends a page at 20,000 rows); read page by page in Python, each page cost about 0.3 ms
held under the GIL, which is why that reader lost there.  Flat chunks are now walked in one numba call
(streamdiv/parquet_decode/flat_chunk.py); ``--data-dir /tmp/b --repeats 3 --only
binary,hard_k10_wide,hard_k10_fixed`` (scale 0.25 files, load 0.6-1.0), 1 thread / 2 threads:

| file | pyarrow read_row_group | pyarrow iter_batches | DuckDB | parquet_decode |
|---|---:|---:|---:|---:|
| binary | 0.335 / 0.205 | 0.449 / 0.353 | 0.286 / 0.206 | 0.374 / 0.171 |
| hard_k10_wide | 0.268 / 0.132 | 0.274 / 0.218 | 0.250 / 0.215 | 0.249 / 0.124 |
| hard_k10_fixed | 0.568 / 0.454 | 0.460 / 0.445 | 0.353 / 0.253 | 0.153 / 0.092 |

Level with pyarrow on flat columns (0.83-1.12x its time), well ahead of it on lists.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(__file__))
import run  # noqa: E402  (benchmarks/run.py: the datasets and their writer)

from streamdiv.parquet_decode import decode_row_group  # noqa: E402

NAMES = ["hard_k10_fixed", "hard_k10_list", "hard_k100_fixed", "binary", "hard_k10_wide"]


def _groups(path, threads, work):
    groups = range(pq.ParquetFile(path).metadata.num_row_groups)
    if threads == 1:
        return [work(g) for g in groups]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, groups))


def pyarrow_read(path, threads):
    columns = pq.ParquetFile(path).schema_arrow.names
    return _groups(path, threads, lambda g: pq.ParquetFile(path).read_row_group(
        g, columns=columns, use_threads=threads > 1).num_rows)


def pyarrow_iter(path, threads):
    pa.set_cpu_count(threads)
    file = pq.ParquetFile(path)
    return sum(b.num_rows for b in file.iter_batches(batch_size=1 << 16, use_threads=threads > 1))


def streamdiv_decode(path, threads):
    metadata = pq.ParquetFile(path).metadata
    columns = metadata.schema.to_arrow_schema().names

    def work(g):
        decoded = decode_row_group(path, metadata, g, columns)
        if decoded is None:
            raise RuntimeError(f"{path} row group {g} was not handled")
        return len(decoded[columns[0]])
    return _groups(path, threads, work)


def duckdb_query(path, threads):
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    names = pq.ParquetFile(path).schema_arrow.names
    if "probs" in names:
        expression = "sum(probs[label + 1])"
    else:  # binary (p) or per-class columns (p_0, p_1, ...)
        expression = " + ".join(f"sum({name})" for name in names)
    return con.execute(f"SELECT {expression} FROM read_parquet('{path}')").fetchone()[0]


METHODS = {"pyarrow read_row_group": pyarrow_read, "pyarrow iter_batches 64Ki": pyarrow_iter,
           "DuckDB sum(probs[label+1])": duckdb_query, "streamdiv.parquet_decode": streamdiv_decode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/tmp/bench-decode")
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=",".join(NAMES))
    arguments = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    os.makedirs(arguments.data_dir, exist_ok=True)
    compiled = False
    for name in arguments.only.split(","):
        dataset = next(d for d in run.DATASETS if d.name == name)
        path = os.path.join(arguments.data_dir, f"{name}.parquet")
        if not os.path.exists(path):
            run.write_dataset(dataset, path, dataset.rows(arguments.scale))
        if not compiled:  # the first call compiles the numba kernels, or loads them from the cache
            started = time.perf_counter()
            streamdiv_decode(path, 1)
            print(f"first decode of {name}, compile or cache load included: {time.perf_counter() - started:.2f} s")
            compiled = True
        times = {(method, threads): [] for method in METHODS for threads in (1, 2)}
        for _ in range(arguments.repeats):
            for (method, threads), seconds in times.items():
                begin = time.perf_counter()
                METHODS[method](path, threads)
                seconds.append(time.perf_counter() - begin)
        size = os.path.getsize(path) / 2**20
        groups = pq.ParquetFile(path).metadata.num_row_groups
        print(f"\n## {name}: {size:.0f} MiB, {groups} row groups; min of {arguments.repeats} (spread max/min)\n")
        print("| method | 1 thread s | 2 threads s | 1 thread x ours | 2 threads x ours |")
        print("|---|---:|---:|---:|---:|")
        ours = {t: min(times["streamdiv.parquet_decode", t]) for t in (1, 2)}
        for method in METHODS:
            cells = [f"{min(times[method, t]):.4f} ({max(times[method, t]) / min(times[method, t]):.2f})"
                     for t in (1, 2)]
            ratios = [f"{min(times[method, t]) / ours[t]:.2f}" for t in (1, 2)]
            print(f"| {method} | {cells[0]} | {cells[1]} | {ratios[0]} | {ratios[1]} |")
        print(f"\nload average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
