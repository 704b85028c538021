"""Scale-out on Dask: the report of :func:`streamdiv.evaluate`, computed by a cluster.

Each task scores one piece of the data (some row groups of a Parquet file, or one partition of a dask
DataFrame) into an :class:`~streamdiv.Accumulator` of its own, through the engine of :func:`streamdiv.evaluate`
(the same column plan, batches and error messages), and returns the state's bytes (``to_bytes()``); a tree of
merge tasks, ``split_every`` states each, adds them up in the order of the pieces, so groups come in the order
one pass gives them.  A merge of states equals one pass to 1e-15 relative, and a task's state is all or
nothing: a task that Dask runs again after losing its worker changes nothing.

It runs wherever ``dask.compute`` would: on the active ``dask.distributed`` Client (a ``LocalCluster`` or a
remote scheduler, whose dashboard shows the ``streamdiv-score`` and ``streamdiv-merge`` tasks), else on the
threaded scheduler; ``dask.config.set(scheduler=...)`` chooses another.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

try:
    import dask
    from dask.base import is_dask_collection
    from dask.delayed import Delayed
except ImportError as error:  # the command line's --dask says the same
    raise ImportError('streamdiv.dask needs Dask: pip install "streamdiv[dask]"') from error
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .accumulator import Accumulator
from .errors import InvalidRowError, SourceError, StreamdivError
from .evaluate import check_keywords, open_scoring, score_source, takes_keywords_of, warn_about
from .plan import ColumnPlan, GaussianPlan
from .report import Report
from .file_schemas import unified_schema
from .sources import Source, fragment_part, open_source, parquet_part

SPLIT_EVERY = 8  # states per merge task
FOOTER_THREADS = 16  # Parquet footers read at once while listing the pieces (object stores answer slowly)


@dataclasses.dataclass(frozen=True)
class Piece:
    """One task's share of a path source: ``row_groups`` of the Parquet file ``path`` (read through the pyarrow
    ``filesystem``), whose first row is row ``first_row`` of the file; ``group_rows`` are their row counts.
    A file of a hive-partitioned directory also carries its dataset ``fragment`` and ``schema`` (the partition
    columns).  ``name`` is the file as errors name it: as the caller spelled it, as :func:`streamdiv.evaluate`
    names it."""

    name: str
    path: str
    filesystem: pafs.FileSystem
    row_groups: tuple[int, ...]
    first_row: int
    group_rows: tuple[int, ...]
    fragment: ds.Fragment | None = None
    schema: pa.Schema | None = None

    def source(self) -> Source:
        if self.fragment is not None:
            part = fragment_part(self.fragment, self.schema, self.first_row)
        else:
            part = parquet_part(self.path, row_groups=self.row_groups, filesystem=self.filesystem,
                                first_row=self.first_row)
        return Source([dataclasses.replace(part, name=self.name)])

    def row_group_of(self, row: int) -> int:
        """The row group that holds row ``row`` of the file."""
        end = self.first_row
        for group, rows in zip(self.row_groups, self.group_rows):
            end += rows
            if row < end:
                return group
        return self.row_groups[-1]


@takes_keywords_of(open_scoring)
def evaluate(source: Any, *, split_every: int = SPLIT_EVERY, row_groups_per_task: int = 1,
             **keywords: Any) -> Report:
    """:func:`streamdiv.evaluate` on Dask: the same keywords, the same :class:`~streamdiv.Report` (to 1e-15
    relative; counts exactly).

    ``source`` is a dask DataFrame (one task per partition; pyarrow dtypes, list columns included, convert to
    Arrow as they are), or a path, glob, directory (hive partitions too) or list of them, of Parquet files on
    any filesystem pyarrow or fsspec reads (``s3://bucket/preds/*.parquet``): one task per
    ``row_groups_per_task`` row groups of a file.  The workers read the files themselves, so the paths must
    name the same files there.  ``split_every`` states are merged per task.  With ``accumulator``, the
    cluster's state is merged into it.  An invalid row raises :class:`~streamdiv.InvalidRowError` with the
    text :func:`streamdiv.evaluate` gives (file, row within the file, column, value) and the row group; with
    several bad pieces, that of the task that failed first."""
    predictions, graph, accumulator = _graph(source, keywords, split_every, row_groups_per_task)
    (data,) = dask.compute(graph)
    accumulator.merge(Accumulator.from_bytes(data, base=accumulator.base, on_invalid=accumulator.on_invalid,
                                             ignore_label=accumulator.ignore_label, predictions=predictions))
    report = accumulator.report()
    warn_about(report, stacklevel=3)
    return report


@takes_keywords_of(open_scoring)
def delayed_state(source: Any, *, split_every: int = SPLIT_EVERY, row_groups_per_task: int = 1,
                  **keywords: Any) -> Delayed:
    """The merged state's bytes as a dask ``Delayed``, not computed yet: for one graph of several runs
    (``dask.compute(a, b)``) or ``client.compute``; ``Accumulator.from_bytes(bytes).report()`` reads it.
    Takes :func:`evaluate`'s arguments; ``accumulator`` gives the settings only."""
    return _graph(source, keywords, split_every, row_groups_per_task)[1]


def first_source(source: Any) -> Source:
    """The first piece of ``source`` as a :class:`~streamdiv.sources.Source` (for a dask DataFrame, its empty
    meta): the schema that the columns are resolved against, as :func:`streamdiv.evaluate` resolves them
    against its first file's."""
    if is_dask_collection(source):
        return open_source(_meta_table(source))
    pieces = _pieces(source, 1, first_only=True)
    if not pieces:
        raise SourceError("the source holds no data")
    return pieces[0].source()


def _graph(source: Any, keywords: dict[str, Any], split_every: int,
           row_groups_per_task: int) -> tuple[str | None, Delayed, Accumulator]:
    """(what the predictions are given as, the graph of the merged state's bytes, the accumulator that
    :func:`streamdiv.evaluate` would feed); the columns are resolved and the settings checked here, before
    any task runs."""
    if keywords.get("progress") is not None:
        raise StreamdivError("progress= is for one process: on Dask, the dashboard or distributed.progress() "
                             "shows the tasks")
    if not isinstance(split_every, int) or split_every < 2:
        raise StreamdivError(f"split_every must be a whole number of states of at least 2, not {split_every!r}")
    if not isinstance(row_groups_per_task, int) or row_groups_per_task < 1:
        raise StreamdivError(f"row_groups_per_task must be a positive whole number, not {row_groups_per_task!r}")
    check_keywords("streamdiv.dask.evaluate", keywords)
    token = uuid.uuid4().hex  # never the result of an earlier run: the files may have changed since
    if is_dask_collection(source):
        scoring = open_scoring(first_source(source), **keywords)
        template = scoring.accumulator.empty_copy()
        partitions = _frame(source)[scoring.plan.columns].to_delayed()
        states = [dask.delayed(_score_partition)(partition, index, scoring.plan, template, scoring.batch_size,
                                                 dask_key_name=f"streamdiv-score-{token}-{index}")
                  for index, partition in enumerate(partitions)]
    else:
        pieces = _pieces(source, row_groups_per_task)
        if not pieces:
            raise SourceError("the source holds no data")
        scoring = open_scoring(pieces[0].source(), **keywords)
        template = scoring.accumulator.empty_copy()
        states = [dask.delayed(_score_piece)(piece, scoring.plan, template, scoring.batch_size,
                                             dask_key_name=f"streamdiv-score-{token}-{index}")
                  for index, piece in enumerate(pieces)]
    if not states:
        raise SourceError("the dask DataFrame has no partitions")
    level = 0
    while len(states) > 1:  # in order: the groups of the merged state come in the order of one pass
        states = [dask.delayed(_merged)(*states[i:i + split_every],
                                        dask_key_name=f"streamdiv-merge-{token}-{level}-{i // split_every}")
                  for i in range(0, len(states), split_every)]
        level += 1
    plan = scoring.plan
    return (plan.prediction_role if isinstance(plan, ColumnPlan) else None), states[0], scoring.accumulator


def _score_piece(piece: Piece, plan: ColumnPlan | GaussianPlan, template: Accumulator,
                 batch_size: int | None) -> bytes:
    """The state of one piece of a path source (a task)."""
    accumulator = template.empty_copy()
    try:
        score_source(accumulator, piece.source(), plan, batch_size=batch_size)
    except InvalidRowError as error:
        group = piece.row_group_of(error.row)
        located = InvalidRowError(f"{error} The row is in row group {group}.", path=error.path, row=error.row,
                                  column=error.column, value=error.value, reason=error.reason)
        located.row_group = group  # type: ignore[attr-defined]
        raise located from None
    return accumulator.to_bytes()


def _score_partition(frame: Any, index: int, plan: ColumnPlan | GaussianPlan, template: Accumulator,
                     batch_size: int | None) -> bytes:
    """The state of one partition of a dask DataFrame (a task); errors name it ``<dask partition N>``."""
    source = open_source(pa.Table.from_pandas(frame, preserve_index=False))
    source.parts = [dataclasses.replace(source.parts[0], name=f"<dask partition {index}>")]
    accumulator = template.empty_copy()
    score_source(accumulator, source, plan, batch_size=batch_size)
    return accumulator.to_bytes()


def _merged(*states: bytes) -> bytes:
    """The states added up, in order (a task of the tree)."""
    total = Accumulator.from_bytes(states[0])
    for data in states[1:]:
        total.merge(Accumulator.from_bytes(data))
    return total.to_bytes()


def _frame(source: Any) -> Any:
    """A dask DataFrame, or a TypeError naming what came."""
    if not (hasattr(source, "to_delayed") and hasattr(source, "columns") and hasattr(source, "_meta")):
        raise TypeError(f"streamdiv.dask reads a dask DataFrame or Parquet paths, not a {type(source).__name__}")
    return source


def _meta_table(source: Any) -> pa.Table:
    """The empty Arrow table of a dask DataFrame's meta, for its schema."""
    return pa.Table.from_pandas(_frame(source)._meta, preserve_index=False)


# ---- path sources: files and row groups
def _pieces(source: Any, row_groups_per_task: int, first_only: bool = False) -> list[Piece]:
    """The pieces of a path, glob, directory or list of them, in the order :func:`streamdiv.evaluate` reads
    them; ``first_only`` stops after the first file."""
    if isinstance(source, (str, os.PathLike)):
        texts = [os.fspath(source)]
    elif isinstance(source, Sequence) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        texts = [os.fspath(s) for s in source]
    else:
        raise TypeError(f"streamdiv.dask reads a dask DataFrame, or a path, glob, directory or list of paths of "
                        f"Parquet files, not a {type(source).__name__}")
    files: list[tuple[str, pafs.FileSystem, str, Any]] = []
    for text in texts:
        files += _files(text)
        if first_only and files:
            files = files[:1]
            break
    with ThreadPoolExecutor(FOOTER_THREADS) as pool:
        listed = pool.map(lambda file: _file_pieces(*file, row_groups_per_task), files)
        return [piece for pieces in listed for piece in pieces]


def _files(text: str) -> list[tuple[str, pafs.FileSystem, str, Any]]:
    """(name, filesystem, path, dataset fragment or None) of each file that ``text`` names."""
    filesystem, path, scheme = _filesystem(text)
    local = scheme is None
    shown = (lambda inner: inner) if local else (lambda inner: f"{scheme}://{inner}")
    if glob.has_magic(path):
        matches = sorted(glob.glob(text, recursive=True)) if local else _remote_glob(filesystem, path)
        if not matches:
            raise SourceError(f"no file matches {text!r}")
        return [file for match in matches for file in _files(match if local else shown(match))]
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"{text}: no such file or directory")
    if info.type != pafs.FileType.Directory:
        return [(text, filesystem, path, None)]
    dataset = ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")
    dataset = ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive",
                         schema=unified_schema(text, dataset))  # each column wide enough for every file
    named = [(os.path.join(text, os.path.relpath(f.path, path)) if local else shown(f.path), f)
             for f in dataset.get_fragments()]
    if not named:
        raise SourceError(f"{text}: the directory holds no data files")
    return [(name, filesystem, fragment.path, (fragment, dataset.schema)) for name, fragment in named]


def _filesystem(text: str) -> tuple[pafs.FileSystem, str, str | None]:
    """(pyarrow filesystem, path within it, URI scheme or None for a local path) of a path or URI: pyarrow's
    own filesystems (s3, gs, hdfs, abfs, file) first, then any fsspec implements (memory, http, ...)."""
    if "://" not in text:
        return pafs.LocalFileSystem(), os.path.abspath(text), None
    scheme = text.split("://", 1)[0]
    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
        return filesystem, path, scheme
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec.core

        implementation, path = fsspec.core.url_to_fs(text)
        return pafs.PyFileSystem(pafs.FSSpecHandler(implementation)), path, scheme


def _remote_glob(filesystem: pafs.FileSystem, pattern: str) -> list[str]:
    """The paths under ``pattern``'s fixed prefix that it matches, as :func:`glob.glob` matches ('*' and '?'
    within a name, '**' across directories), sorted."""
    fixed = re.split(r"[*?\[]", pattern, maxsplit=1)[0].rsplit("/", 1)[0]
    pieces = re.split(r"(\*\*/?|\*|\?|\[[^\]]+\])", pattern)
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    regex = re.compile("".join(wildcards.get(p, p if p.startswith("[") and len(p) > 2 else re.escape(p))
                               for p in pieces) + r"\Z")
    infos = filesystem.get_file_info(pafs.FileSelector(fixed, recursive=True, allow_not_found=True))
    return sorted(info.path for info in infos if info.type == pafs.FileType.File and regex.match(info.path))


def _file_pieces(name: str, filesystem: pafs.FileSystem, path: str, fragment: Any,
                 row_groups_per_task: int) -> list[Piece]:
    """A file's row groups, ``row_groups_per_task`` to a piece (one piece for a file of no row groups)."""
    try:
        if fragment is not None:
            fragment[0].ensure_complete_metadata()
            rows = [group.num_rows for group in fragment[0].row_groups]
        else:
            with filesystem.open_input_file(path) as handle:
                metadata = pq.read_metadata(handle)
            rows = [metadata.row_group(group).num_rows for group in range(metadata.num_row_groups)]
    except (OSError, pa.ArrowException) as error:
        raise SourceError(f"{name}: cannot read it as Parquet: {error} (streamdiv.dask reads Parquet files; for "
                          f"CSV or Arrow files, pass a dask DataFrame: dask.dataframe.read_csv)") from error
    pieces = []
    for start in range(0, max(len(rows), 1), row_groups_per_task):
        groups = tuple(range(start, min(start + row_groups_per_task, len(rows))))
        subset = None if fragment is None else fragment[0].subset(row_group_ids=list(groups))
        pieces.append(Piece(name, path, filesystem, groups, sum(rows[:start]), tuple(rows[g] for g in groups),
                            subset, None if fragment is None else fragment[1]))
    return pieces
