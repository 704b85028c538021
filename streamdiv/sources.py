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
from typing import Any, BinaryIO, Callable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .errors import SourceError
from .file_schemas import unified_schema

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
IPC_FILE_SUFFIXES = (".arrow", ".feather", ".ipc")
IPC_STREAM_SUFFIXES = (".arrows",)
CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".csv.bz2", ".csv.zst")


@dataclass
class Chunk:
    """A record batch and where it came from: ``first_row`` is the row number of its row 0 within ``path``."""

    batch: pa.RecordBatch
    path: str
    first_row: int


BATCH_BYTES = 4 << 20  # decoded bytes per batch when the rows per batch are left to streamdiv
MAX_BATCH_BYTES = 64 << 20  # a batch may grow to this to hold ``multiple_of`` rows
MAX_BATCH_ROWS = 1 << 20
DEFAULT_BATCH_ROWS = 1 << 16  # where a part cannot tell its bytes per row
WIDTH_PROBE_ROWS = 1024  # rows decoded to measure a Parquet file's bytes per row


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


@dataclass
class Part:
    """One readable piece of a source (a file, or an in-memory object) with its schema and size, if known.
    ``width`` gives the decoded bytes per row of the named columns, where the part can tell; ``first_row`` is
    the row number within ``name`` of the part's first row (not 0 for some row groups of a file)."""

    name: str
    schema: pa.Schema
    read: Callable[[list[str], int], Iterator[pa.RecordBatch]]
    rows: int | None = None
    bytes: int | None = None
    width: Callable[[list[str]], float | None] = lambda columns: None
    first_row: int = 0


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

    def chunks(self, columns: list[str], batch_size: int | None = None, multiple_of: int = 1) -> Iterator[Chunk]:
        """Record batches of at most ``batch_size`` rows holding only ``columns``, in order; by default
        about BATCH_BYTES of decoded columns each, in a multiple of ``multiple_of`` rows."""
        for part in self.parts:
            missing = [name for name in columns if part.schema.get_field_index(name) < 0]
            if missing:
                raise SourceError(f"{part.name}: no column named {', '.join(map(repr, missing))}; it has "
                                  f"{', '.join(part.schema.names)}")
            if batch_size is None:
                part_batch_size = rows_per_batch(part.width(columns), multiple_of)
            else:
                part_batch_size = batch_size
            first_row = part.first_row
            try:
                for batch in part.read(columns, part_batch_size):
                    for start in range(0, batch.num_rows, part_batch_size):
                        piece = batch.slice(start, part_batch_size)
                        yield Chunk(piece, part.name, first_row)
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


def parquet_part(path: str, *, row_groups: Sequence[int] | None = None, filesystem: Any = None,
                 first_row: int = 0) -> Part:
    """A Parquet file, or only its ``row_groups`` (whose first row is row ``first_row`` of the file), read
    through a pyarrow ``filesystem`` when given (a local path when None)."""
    parquet = pq.ParquetFile(filesystem.open_input_file(path) if filesystem is not None else path)
    metadata = parquet.metadata
    groups = range(metadata.num_row_groups) if row_groups is None else list(row_groups)

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        # One iterator per row group: a single iter_batches over the whole file keeps growing Arrow's pool
        # with every row group it passes, while a fresh one per row group keeps memory flat.
        for group in groups:
            yield from parquet.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns,
                                            use_threads=True)

    def width(columns: list[str]) -> float | None:
        """Decoded bytes per row of the columns, measured on the first WIDTH_PROBE_ROWS rows (None for a file
        without rows, or whose first rows cannot be decoded: reading it then says why).  Not from the
        footer's per-column counts: pyarrow's RowGroupMetaData.column() aborts the process on a damaged
        column chunk's statistics (a C++ exception that its binding does not catch)."""
        holding_rows = [group for group in groups if metadata.row_group(group).num_rows]
        if not holding_rows:
            return None
        try:
            probe = next(parquet.iter_batches(batch_size=WIDTH_PROBE_ROWS, row_groups=holding_rows[:1],
                                              columns=columns, use_threads=False), None)
        except (OSError, pa.ArrowException):
            return None
        return probe.nbytes / probe.num_rows if probe is not None and probe.num_rows else None

    rows = sum(metadata.row_group(group).num_rows for group in groups)
    size = filesystem.get_file_info(path).size if filesystem is not None else os.path.getsize(path)
    return Part(path, parquet.schema_arrow, read, rows=rows, bytes=size, width=width, first_row=first_row)


def _ipc_file_part(path: str) -> Part:
    reader = pa.ipc.open_file(pa.memory_map(path, "r"))
    rows = sum(reader.get_record_batch(i).num_rows for i in range(reader.num_record_batches))

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        for i in range(reader.num_record_batches):
            yield _validated(reader.get_record_batch(i).select(columns))

    return Part(path, reader.schema, read, rows=rows, bytes=os.path.getsize(path))


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

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        scanner = ds.Scanner.from_fragment(fragment, schema=schema, columns=columns, batch_size=batch_size)
        yield from scanner.to_batches()

    row_groups = getattr(fragment, "row_groups", None)
    rows = sum(group.num_rows for group in row_groups) if row_groups else (
        fragment.metadata.num_rows if hasattr(fragment, "metadata") else None)
    size = os.path.getsize(name) if os.path.exists(name) else None
    return Part(name, schema, read, rows=rows, bytes=size, first_row=first_row)


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
