"""Sources: anything that holds predictions becomes a stream of Arrow record batches, each with its origin.

Accepted: a path, a glob, a list of paths, a directory (hive-partitioned Parquet included), ``-`` for an Arrow
IPC stream on stdin; Parquet, Arrow IPC files (.arrow/.feather), Arrow IPC streams and CSV; in memory, a
pyarrow Table, RecordBatch, RecordBatchReader or Dataset, any ``__arrow_c_stream__`` producer (pandas, polars,
DuckDB results) and a mapping of column name to numpy array.  Only the named columns are read, and files are
read batch by batch: never the whole file at once.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds

from .errors import SourceError
from .file_schemas import unified_schema
from .parquet_part import groups_after, parquet_part
from .part import Part, drop_rows

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
IPC_FILE_SUFFIXES = (".arrow", ".feather", ".ipc")
IPC_STREAM_SUFFIXES = (".arrows",)
CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".csv.bz2", ".csv.zst")


@dataclass
class Chunk:
    """A record batch and where it came from: ``first_row`` is the row number of its row 0 within ``path``,
    ``part`` the index of its part in the source (a checkpoint's position is a part and a row of it)."""

    batch: pa.RecordBatch
    path: str
    first_row: int
    part: int = 0


BATCH_BYTES = 4 << 20  # decoded bytes per batch when the rows per batch are left to streamdiv
MAX_BATCH_BYTES = 64 << 20  # a batch may grow to this to hold ``multiple_of`` rows
MAX_BATCH_ROWS = 1 << 20
DEFAULT_BATCH_ROWS = 1 << 16  # where a part cannot tell its bytes per row


def rows_per_batch(bytes_per_row: float | None, multiple_of: int = 1) -> int:
    """Rows in a batch of about BATCH_BYTES of decoded columns: 98304 rows of 10 float32 probabilities and
    a label, 800k rows of a binary layout, 32 rows of a 32000-class vocabulary.  Measured end to end on this
    machine's Parquet files, batches of 3-5 MB scored fastest: smaller ones pay Python's per-batch cost (binary
    1.52 s at 65536 rows against 1.39 s at 1M), larger ones overlap decoding and scoring worse (K=10: 0.36 s
    at 65536 rows against 0.45-0.57 s at 1M).

    Rounded to the nearest ``multiple_of`` rows (the caller's row blocks for all its threads), and grown to
    one such multiple while that stays within MAX_BATCH_BYTES (100 classes: 32768 rows, 13 MB): batches that
    end where the kernels' row blocks end, with a block for each thread, keep every thread busy."""
    rows = DEFAULT_BATCH_ROWS if not bytes_per_row else int(min(MAX_BATCH_ROWS, max(1, BATCH_BYTES // bytes_per_row)))
    if rows < multiple_of and bytes_per_row and multiple_of * bytes_per_row <= MAX_BATCH_BYTES:
        rows = multiple_of
    if rows >= multiple_of:
        rows = max(1, round(rows / multiple_of)) * multiple_of
    return rows


class Source:
    """The parts of a source, read one after the other; ``schema`` is the first part's."""

    def __init__(self, parts: list[Part]):
        if not parts:
            raise SourceError("the source holds no data")
        self.parts = parts

    @property
    def schema(self) -> pa.Schema:
        return self.parts[0].schema

    @property
    def total_rows(self) -> int | None:
        rows = [part.rows for part in self.parts]
        return None if any(r is None for r in rows) else sum(rows)  # type: ignore[misc]

    @property
    def total_bytes(self) -> int | None:
        sizes = [part.bytes for part in self.parts]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]

    def chunks(self, columns: list[str], batch_size: int | None = None, multiple_of: int = 1,
               start: tuple[int, int] = (0, 0)) -> Iterator[Chunk]:
        """Record batches of at most ``batch_size`` rows holding only ``columns``, in order; by default
        about BATCH_BYTES of decoded columns each, in a multiple of ``multiple_of`` rows.  ``start`` (part
        index, rows of that part already read) resumes a scan where a checkpoint left it."""
        start_part, skip = start
        for index, part in enumerate(self.parts):
            if index < start_part:
                continue
            missing = [name for name in columns if part.schema.get_field_index(name) < 0]
            if missing:
                raise SourceError(f"{part.name}: no column named {', '.join(map(repr, missing))}; it has "
                                  f"{', '.join(part.schema.names)}")
            if batch_size is None:
                part_batch_size = rows_per_batch(part.width(columns), multiple_of)
            else:
                part_batch_size = batch_size
            skipped = skip if index == start_part else 0
            first_row = part.first_row + skipped
            try:
                for batch in part.batches(columns, part_batch_size, skipped):
                    for offset in range(0, batch.num_rows, part_batch_size):
                        piece = batch.slice(offset, part_batch_size)
                        yield Chunk(piece, part.name, first_row, index)
                        first_row += piece.num_rows
            except (OSError, pa.ArrowException) as error:
                raise SourceError(f"{part.name}: cannot read it after row {first_row}: {error}") from error


def open_source(source: Any) -> Source:
    """Turn anything the API accepts into a :class:`Source` (see the module docstring); a Source stays itself."""
    if isinstance(source, Source):
        return source
    if isinstance(source, (str, os.PathLike)):
        return Source(_path_parts(os.fspath(source)))
    if isinstance(source, pa.Table):
        return Source([_table_part("<table>", source)])
    if isinstance(source, pa.RecordBatch):
        return Source([_table_part("<record batch>", pa.Table.from_batches([source]))])
    if isinstance(source, pa.RecordBatchReader):
        return Source([_reader_part("<record batch reader>", source)])
    if isinstance(source, ds.Dataset):
        return Source(_dataset_parts(source))
    if isinstance(source, Mapping):
        return Source([_table_part("<arrays>", _table_from_arrays(source))])
    if hasattr(source, "__arrow_c_stream__"):
        return Source([_reader_part(f"<{type(source).__name__}>", pa.RecordBatchReader.from_stream(source))])
    if hasattr(source, "read"):
        return Source([_ipc_stream_part(getattr(source, "name", "<stream>"), source)])
    if isinstance(source, Sequence) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        return Source([part for path in source for part in _path_parts(os.fspath(path))])
    raise TypeError(
        "cannot read predictions from a " + type(source).__name__ + ": expected a path, glob, directory or "
        "list of paths, '-' for stdin, a pyarrow Table, RecordBatch, RecordBatchReader or Dataset, an object "
        "with __arrow_c_stream__ (pandas, polars, DuckDB), a binary file object, or a dict of numpy arrays")


def _path_parts(path: str) -> list[Part]:
    if path == "-":
        return [_ipc_stream_part("<stdin>", sys.stdin.buffer)]
    if glob.has_magic(path):
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise SourceError(f"no file matches {path!r}")
        return [part for match in matches for part in _path_parts(match)]
    if os.path.isdir(path):
        return _directory_parts(path)
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file or directory")
    kind = _file_kind(path)
    try:
        if kind == "parquet":
            return [_named_in_utf8(parquet_part(path))]
        if kind == "ipc_file":
            return [_named_in_utf8(_ipc_file_part(path))]
        if kind == "ipc_stream":
            return [_named_in_utf8(_ipc_stream_file_part(path))]
        return [_named_in_utf8(_csv_part(path))]
    except (OSError, pa.ArrowException) as error:
        raise SourceError(f"{path}: cannot open it as {kind.replace('_', ' ')}: {error}") from error
    except UnicodeDecodeError as error:  # pq.ParquetFile decodes its column paths as it opens
        raise SourceError(f"{path}: a column name is not UTF-8 text ({error})") from None


def _named_in_utf8(part: Part) -> Part:
    """``part``, once its column names are known to be UTF-8: a file may hold any bytes there, and pyarrow
    decodes them only when asked, deep in the lookup of a column (a UnicodeDecodeError naming no file)."""
    try:
        part.schema.names
    except UnicodeDecodeError as error:
        raise SourceError(f"{part.name}: a column name is not UTF-8 text ({error})") from None
    return part


def _file_kind(path: str) -> str:
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(IPC_FILE_SUFFIXES):
        return "ipc_file" if _magic(path).startswith(b"ARROW1") else "ipc_stream"
    if lower.endswith(IPC_STREAM_SUFFIXES):
        return "ipc_stream"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    head = _magic(path)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1"):
        return "ipc_file"
    if head.startswith(b"\xff\xff\xff\xff"):
        return "ipc_stream"
    raise SourceError(f"{path}: not a Parquet, Arrow or CSV file (by its name and its first bytes); "
                      f"name it .parquet, .arrow, .arrows or .csv")


def _magic(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(8)


def _ipc_file_part(path: str) -> Part:
    """An Arrow IPC file, read a record batch at a time through an ordinary file, the named columns alone.
    Not memory-mapped: a mapped file's pages stay resident once read, so the process's RSS grew with the file
    (1.4 GiB for a 1.2 GB file, tests/test_memory.py), while batches read into Arrow's pool are freed."""
    with pa.OSFile(path, "rb") as handle:
        reader = pa.ipc.open_file(handle)
        schema, rows = reader.schema, reader.count_rows()

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        fields = [schema.get_field_index(name) for name in columns]
        with pa.OSFile(path, "rb") as handle:
            reader = pa.ipc.open_file(handle, options=pa.ipc.IpcReadOptions(included_fields=fields))
            for i in range(reader.num_record_batches):
                yield _validated(reader.get_record_batch(i).select(columns))

    return Part(path, schema, read, rows=rows, bytes=os.path.getsize(path))


def _ipc_stream_part(name: str, stream: BinaryIO) -> Part:
    try:
        reader = pa.ipc.open_stream(stream)
    except (OSError, pa.ArrowException) as error:
        raise SourceError(f"{name}: not an Arrow IPC stream: {error}") from error
    return _named_in_utf8(_reader_part(name, reader, validate=True))


def _ipc_stream_file_part(path: str) -> Part:
    with pa.OSFile(path, "rb") as handle:
        schema = pa.ipc.open_stream(handle).schema

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(path, "rb") as handle:
            for batch in pa.ipc.open_stream(handle):
                yield _validated(batch.select(columns))

    return Part(path, schema, read, bytes=os.path.getsize(path))


def _reader_part(name: str, reader: pa.RecordBatchReader, validate: bool = False) -> Part:
    """A stream of record batches, read once; ``validate`` checks each batch's bytes (see _validated)."""
    used = []

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        if used:
            raise SourceError(f"{name}: a stream can be read only once")
        used.append(True)
        for batch in reader:
            yield _validated(batch.select(columns)) if validate else batch.select(columns)

    return Part(name, reader.schema, read)


def _validated(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch``, once its offsets and strings are checked (an ArrowInvalid otherwise, which the reading
    loop words as a SourceError naming the file): Arrow IPC reads its buffers as they are written, and a
    damaged file's list or string offsets past their data crash pyarrow's compute functions and the kernels
    (a segfault, not an error).  Parquet's decoder builds its arrays itself."""
    batch.validate(full=True)
    return batch


def _csv_part(path: str) -> Part:
    schema = pa_csv.open_csv(path).schema

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        options = pa_csv.ConvertOptions(include_columns=columns)
        yield from pa_csv.open_csv(path, convert_options=options)

    return Part(path, schema, read, bytes=os.path.getsize(path))


def _table_part(name: str, table: pa.Table) -> Part:
    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from table.select(columns).to_batches(max_chunksize=batch_size)

    def width(columns: list[str]) -> float | None:
        return table.select(columns).nbytes / table.num_rows if table.num_rows else None

    return Part(name, table.schema, read, rows=table.num_rows, bytes=table.nbytes, width=width)


def _directory_parts(path: str) -> list[Part]:
    files = sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    if not files:
        raise SourceError(f"{path}: the directory holds no data files")
    kinds = {_file_kind(f) for f in files}
    if len(kinds) > 1:
        raise SourceError(f"{path}: the directory mixes file formats ({', '.join(sorted(kinds))})")
    kind = kinds.pop()
    if kind == "csv":
        return [_csv_part(f) for f in files]
    fmt = "parquet" if kind == "parquet" else ("ipc" if kind == "ipc_file" else None)
    if fmt is None:
        return [part for f in files for part in _path_parts(f)]
    dataset = ds.dataset(path, format=fmt, partitioning="hive")
    return _dataset_parts(ds.dataset(path, format=fmt, partitioning="hive", schema=unified_schema(path, dataset)))


def _dataset_parts(dataset: ds.Dataset) -> list[Part]:
    """One part per fragment (file), so rows are numbered within their file; partition columns included."""
    parts = [fragment_part(fragment, dataset.schema) for fragment in dataset.get_fragments()]
    if not parts:
        raise SourceError("the dataset holds no files")
    return parts


def fragment_part(fragment: ds.Fragment, schema: pa.Schema, first_row: int = 0) -> Part:
    """A fragment of a dataset (a file, or some of its row groups, whose first row is row ``first_row`` of the
    file) read with the dataset's ``schema``: its partition columns included."""
    name = getattr(fragment, "path", "<fragment>")

    def read(columns: list[str], batch_size: int, piece: ds.Fragment = fragment) -> Iterator[pa.RecordBatch]:
        scanner = ds.Scanner.from_fragment(piece, schema=schema, columns=columns, batch_size=batch_size)
        yield from scanner.to_batches()

    row_groups = getattr(fragment, "row_groups", None)
    rows = sum(group.num_rows for group in row_groups) if row_groups else (
        fragment.metadata.num_rows if hasattr(fragment, "metadata") else None)
    size = os.path.getsize(name) if os.path.exists(name) else None
    def read_from(columns: list[str], batch_size: int, skip: int) -> Iterator[pa.RecordBatch]:
        """A Parquet fragment's batches from the row group that holds row ``skip`` on."""
        later, within = groups_after([group.id for group in row_groups],
                                      [group.num_rows for group in row_groups], skip)
        if later:
            yield from drop_rows(read(columns, batch_size, fragment.subset(row_group_ids=later)), within)

    return Part(name, schema, read, rows=rows, bytes=size, first_row=first_row,
                read_from=read_from if row_groups else None)


def _table_from_arrays(arrays: Mapping[str, Any]) -> pa.Table:
    """Columns from numpy arrays, zero-copy; a 2-D array becomes a fixed-size list column (rows x classes)."""
    columns = {}
    for name, values in arrays.items():
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            columns[str(name)] = values
            continue
        array = np.asarray(values)
        if array.ndim == 2:
            flat = pa.array(np.ascontiguousarray(array).reshape(-1))
            columns[str(name)] = pa.FixedSizeListArray.from_arrays(flat, array.shape[1])
        elif array.ndim == 1:
            columns[str(name)] = pa.array(array)
        else:
            raise SourceError(f"array {name!r} is {array.ndim}-D; expected 1-D or 2-D (rows x classes)")
    return pa.table(columns)
