"""What pyarrow's own reading options give on a prediction file, against the decode floor of the same run.

    python benchmarks/reader.py /tmp/bench10/hard_k10_fixed.parquet /tmp/bench10/binary.parquet
    python benchmarks/reader.py --repeats 7 FILE...
    python benchmarks/reader.py --end-to-end /tmp/bench10/hard_k10_fixed.parquet   # names from run.py's datasets

Every reader decodes all of a file's columns and does nothing with the batches (streamdiv's kernels are
``nogil`` and run beside it).  The floor is run.py's: the best of ``iter_batches`` per row group, two row
groups read in a 2-thread pool and ``pyarrow.dataset``.  Readers are interleaved round-robin in this one
process; the table gives the minimum and the median of the repeats, each as a ratio to the floor's
minimum, and the spread (max / min) says how noisy the machine was.  A benchmark, never a test.

``--end-to-end`` times instead, interleaved in this one process at 2 threads, run.py's decode floor, DuckDB's
and polars' cross-entropy alone, and ``evaluate()`` (loss metrics and the full report) with
``sources.ROW_GROUPS_IN_FLIGHT`` at 1 (one row group decoding at a time) and at 2.  The file's name is one of
run.py's datasets (hard_k10_fixed.parquet...), which says its columns.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import os
import sys
import statistics
import time
from typing import Callable, Iterator

os.environ.update({"OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2", "POLARS_MAX_THREADS": "2"})

import pyarrow as pa  # noqa: E402
import numba  # noqa: E402
import pyarrow.dataset as pads  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from streamdiv import sources  # noqa: E402
from streamdiv.kernels.layout import ROW_BLOCK  # noqa: E402
from streamdiv.sources import parquet_part, rows_per_batch  # noqa: E402

Reader = Callable[[str, list[str], int], Iterator[pa.RecordBatch]]


def per_group(**options) -> Reader:
    """A fresh ``iter_batches`` per row group (streamdiv's reader before row groups were read in flight)."""
    def read(path: str, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        parquet = pq.ParquetFile(path, **options)
        for group in range(parquet.metadata.num_row_groups):
            yield from parquet.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns)
    return read


def whole_file(path: str, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)


def row_group_tables(path: str, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    parquet = pq.ParquetFile(path)
    for group in range(parquet.metadata.num_row_groups):
        yield from parquet.read_row_group(group, columns=columns).to_batches(batch_size)


def no_threads(path: str, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    parquet = pq.ParquetFile(path)
    for group in range(parquet.metadata.num_row_groups):
        yield from parquet.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns,
                                        use_threads=False)


def two_groups_pool(path: str, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """``read_row_group`` of two row groups at once, one ParquetFile each (a shared one is not thread-safe)."""
    metadata = pq.ParquetFile(path).metadata
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        tables = pool.map(lambda g: pq.ParquetFile(path, metadata=metadata).read_row_group(g, columns=columns),
                          range(metadata.num_row_groups))
        for table in tables:
            yield from table.to_batches(batch_size)


def dataset(**options) -> Reader:
    def read(path: str, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from pads.dataset(path).to_batches(columns=columns, batch_size=batch_size, **options)
    return read


def dataset_groups(path: str, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """A dataset of one fragment per row group: the scanner reads fragments ahead as well as batches."""
    fragment = next(pads.dataset(path).get_fragments())
    fragments = fragment.split_by_row_group()
    scanned = pads.FileSystemDataset(fragments, fragment.physical_schema, pads.ParquetFileFormat())
    yield from scanned.to_batches(columns=columns, batch_size=batch_size, fragment_readahead=2)


def streamdiv_reader(path: str, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    yield from parquet_part(path).read(columns, batch_size)


READERS: dict[str, Reader] = {
    "floor: iter_batches 64Ki per row group": lambda p, c, b: per_group()(p, c, 1 << 16),
    "floor: 2 row groups, read_row_group pool": two_groups_pool,
    "floor: pyarrow.dataset to_batches": dataset(),
    "iter_batches per row group (streamdiv's batch)": per_group(),
    "  + pre_buffer=True": per_group(pre_buffer=True),
    "  + buffer_size=1 MiB": per_group(buffer_size=1 << 20),
    "  + memory_map=True": per_group(memory_map=True),
    "  use_threads=False": no_threads,
    "iter_batches over the whole file": whole_file,
    "read_row_group, one at a time": row_group_tables,
    "dataset, fragment_readahead=2 batch_readahead=4": dataset(fragment_readahead=2, batch_readahead=4),
    "dataset of row-group fragments, readahead 2": dataset_groups,
    "streamdiv parquet_part.read": streamdiv_reader,
}


def end_to_end(path: str) -> dict[str, Callable[[], object]]:
    """The methods of ``--end-to-end`` on run.py's dataset at ``path``, each a call to time."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run  # benchmarks/run.py: its datasets, floor and peers

    import streamdiv

    dataset = next(d for d in run.DATASETS if d.name == os.path.basename(path).removesuffix(".parquet"))
    columns = run._columns(dataset)
    streamdiv.evaluate(next(pq.ParquetFile(path).iter_batches(batch_size=100)), **columns)  # the JIT, warm

    def scored(in_flight: int, metrics: str) -> Callable[[], object]:
        def work() -> object:
            sources.ROW_GROUPS_IN_FLIGHT = in_flight
            return streamdiv.evaluate(path, **columns, metrics=metrics).metrics["cross_entropy"]
        return work

    peers = {"DuckDB, cross-entropy alone": ("duckdb", lambda: run.m_duckdb(dataset, path, False)),
             "polars streaming, cross-entropy alone": ("polars", lambda: run.m_polars(dataset, path))}
    return {
        "floor: pyarrow decode (run.py's best reader)": lambda: run.m_floor_decode(dataset, path),
        **{name: peer for name, (package, peer) in peers.items() if importlib.util.find_spec(package)},
        "streamdiv loss metrics, 1 row group in flight": scored(1, "loss"),
        "streamdiv loss metrics, 2 row groups in flight": scored(2, "loss"),
        "streamdiv full report, 1 row group in flight": scored(1, "all"),
        "streamdiv full report, 2 row groups in flight": scored(2, "all"),
    }


def timed_rounds(methods: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each method over ``repeats`` rounds, interleaved; a method returning (seconds, value), as
    run.py's do, times itself (the floor's best reader, a query without its connection)."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            started = time.perf_counter()
            result = method()
            elapsed = time.perf_counter() - started
            times[name].append(result[0] if isinstance(result, tuple) else elapsed)
    return times


def print_table(title: str, times: dict[str, list[float]]) -> None:
    floor = min(min(t) for name, t in times.items() if name.startswith("floor"))
    print(f"\n### {title}; floor {floor:.3f} s\n")
    print("| method | min s | x floor (min) | x floor (median) | max / min |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in times.items():
        print(f"| {name} | {min(seconds):.3f} | {min(seconds) / floor:.2f} | "
              f"{statistics.median(seconds) / floor:.2f} | {max(seconds) / min(seconds):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--end-to-end", action="store_true", help="evaluate() against the floor and peers")
    args = parser.parse_args()
    for path in args.files:
        parquet = pq.ParquetFile(path)
        title = f"{path}: {parquet.metadata.num_rows:,} rows in {parquet.metadata.num_row_groups} row groups"
        if args.end_to_end:
            print_table(title, timed_rounds(end_to_end(path), args.repeats))
            continue
        columns = parquet.schema_arrow.names
        batch_size = rows_per_batch(parquet_part(path).width(columns), ROW_BLOCK * numba.get_num_threads())

        def reading(reader: Reader) -> Callable[[], object]:
            def work() -> object:
                rows = sum(batch.num_rows for batch in reader(path, columns, batch_size))
                if rows != parquet.metadata.num_rows:
                    raise SystemExit(f"{path}: read {rows} rows of {parquet.metadata.num_rows}")
                return rows
            return work

        times = timed_rounds({name: reading(reader) for name, reader in READERS.items()}, args.repeats)
        print_table(f"{title}, batches of {batch_size:,} rows", times)


if __name__ == "__main__":
    main()
