"""Scale-out on Dask: streamdiv.dask.evaluate gives the report of streamdiv.evaluate on the same data (to 1e-15
relative, counts exactly), on a LocalCluster of 2 worker processes and on the threaded scheduler, from paths
and from dask DataFrames, when a worker dies mid-run, and from the command line's --dask."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from typing import Any

import cloudpickle
import dask
import dask.dataframe as dd
import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster

import streamdiv
import streamdiv.dask as streamdiv_dask
from row_accounting import assert_rows_add_up
from streamdiv.cli import main

REL = 1e-15  # a merge of states equals one pass to this (README: the Accumulator)
ROWS, CLASSES, ROW_GROUPS = 40_000, 4, 17
BAD_ROW = 20_000  # in row group 8 of all.parquet (2353 rows a group)

CASES = {
    "groups, weights, invalid rows skipped": dict(probs="noisy", labels="label", by="region", weights="weight",
                                                  on_invalid="skip"),
    "soft targets, weights": dict(probs="probs", targets="targets", weights="weight"),
    "logits, groups, quantile bins": dict(logits="logits", labels="label", by=["region", "shard"], binning="quantile"),
    "binary, the loss metrics": dict(probs="positive", labels="happened", by="region", metrics="loss"),
    "the Gaussian kind": dict(mean="mean", log_variance="log_variance", by="region", weights="weight"),
    "windows": dict(probs="probs", labels="label", by="region", time="ts", window="1h"),
    "label-free": dict(probs="probs", by="region"),
}
MAIN_CASE = "groups, weights, invalid rows skipped"


def _table() -> pa.Table:
    rng = np.random.default_rng(18)
    logits = rng.normal(0.0, 2.0, (ROWS, CLASSES))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = (probs.cumsum(axis=1) < rng.random((ROWS, 1))).sum(axis=1)
    targets = np.exp(logits + rng.normal(0.0, 1.0, logits.shape))
    targets /= targets.sum(axis=1, keepdims=True)
    noisy = probs.copy()
    noisy[rng.random(ROWS) < 0.01] = np.nan  # invalid rows, for on_invalid="skip"
    one_bad = probs.copy()
    one_bad[BAD_ROW] = [0.5, 0.7, -0.1, -0.1]

    def rows(values: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), CLASSES)

    start = np.datetime64("2026-11-30T00:00:00", "us")
    return pa.table({
        "probs": rows(probs), "logits": rows(logits), "noisy": rows(noisy), "one_bad": rows(one_bad),
        "targets": pa.array(list(targets), type=pa.list_(pa.float64())),  # a list column of any length
        "label": labels, "region": rng.choice(["eu", "us", "apac"], ROWS), "shard": rng.integers(0, 5, ROWS),
        "weight": rng.uniform(0.5, 2.0, ROWS),
        "positive": probs[:, 0], "happened": labels == 0,
        "mean": rows(rng.normal(0.0, 1.0, (ROWS, CLASSES))),
        "log_variance": rows(rng.normal(0.0, 0.5, (ROWS, CLASSES))),
        "ts": pa.array(start + np.sort(rng.integers(0, 6 * 3600 * 10**6, ROWS)).astype("timedelta64[us]"),
                       type=pa.timestamp("us", tz="UTC")),
    })


TABLE = _table()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Any:
    """all.parquet (17 row groups) and part-{0,1,2}.parquet (the same rows in 3 files)."""
    folder = tmp_path_factory.mktemp("dask")
    pq.write_table(TABLE, folder / "all.parquet", row_group_size=-(-ROWS // ROW_GROUPS))
    for index, start in enumerate(range(0, ROWS, -(-ROWS // 3))):
        pq.write_table(TABLE.slice(start, -(-ROWS // 3)), folder / f"part-{index}.parquet", row_group_size=5000)
    assert pq.ParquetFile(folder / "all.parquet").metadata.num_row_groups == ROW_GROUPS
    return folder


@pytest.fixture(scope="module")
def client() -> Any:
    """A LocalCluster of 2 worker processes, one thread each (and one kernel thread: 2 cores).  The parent
    compiles every layout first (or loads it), so that the workers only load numba's cache."""
    for keywords in CASES.values():
        streamdiv.evaluate(TABLE.slice(0, 100), **keywords)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env={"NUMBA_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
        yield client


def assert_same_report(got: streamdiv.Report, want: streamdiv.Report) -> None:
    """Every value of to_dict() equal, floats to REL relative; the warnings too."""
    assert got.warnings == want.warnings
    _assert_close(got.to_dict(), want.to_dict(), "report")


def _assert_close(got: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for key in want:
            _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), where
        for index, (mine, theirs) in enumerate(zip(got, want)):
            _assert_close(mine, theirs, f"{where}[{index}]")
    elif isinstance(want, float) and not math.isnan(want):
        assert isinstance(got, float) and math.isclose(got, want, rel_tol=REL, abs_tol=0.0), (where, got, want)
    elif isinstance(want, float):
        assert isinstance(got, float) and math.isnan(got), where
    else:
        assert type(got) is type(want) and got == want, (where, got, want)  # counts, names: exactly


def _paths(files: Any, partitions: int) -> tuple[Any, int]:
    """(paths, row groups per task) that make ``partitions`` tasks."""
    if partitions == 3:
        return str(files / "part-*.parquet"), 100
    return str(files / "all.parquet"), {1: ROW_GROUPS, 17: 1}[partitions]


def _frame(partitions: int, columns: list[str] | None = None) -> dd.DataFrame:
    table = TABLE if columns is None else TABLE.select(columns)
    frame = dd.from_pandas(table.to_pandas(types_mapper=pd.ArrowDtype), npartitions=partitions)
    assert frame.npartitions == partitions
    return frame


def _matrix() -> list[Any]:
    """Every case at 17 partitions, and the main case (groups, weights, skipped rows) at 1 and 3; the other
    cases at 1 and 3 are slow tests."""
    return [pytest.param(name, partitions, id=f"{name}-{partitions}",
                         marks=pytest.mark.slow if partitions != 17 and name != MAIN_CASE else ())
            for partitions in (1, 3, 17) for name in CASES]


def _score_tasks(graph: Any) -> int:
    return sum(str(key).startswith("streamdiv-score") for key in dict(graph.dask))


@pytest.mark.parametrize(("case", "partitions"), _matrix())
def test_paths_give_the_report_of_one_pass(client, files, case, partitions):
    paths, per_task = _paths(files, partitions)
    want = streamdiv.evaluate(paths, **CASES[case])
    assert _score_tasks(streamdiv_dask.delayed_state(paths, row_groups_per_task=per_task, **CASES[case])) == partitions
    got = streamdiv_dask.evaluate(paths, row_groups_per_task=per_task, **CASES[case])
    assert_same_report(got, want)
    if CASES[case].get("on_invalid") == "skip":
        assert_rows_add_up(got, ROWS)


@pytest.mark.parametrize(("case", "partitions"), _matrix())
def test_dask_dataframes_give_the_report_of_one_pass(client, case, partitions):
    want = streamdiv.evaluate(TABLE, **CASES[case])
    assert_same_report(streamdiv_dask.evaluate(_frame(partitions), **CASES[case]), want)


def test_dask_read_parquet_with_pyarrow_dtypes_gives_the_report_of_one_pass(client, files):
    paths = str(files / "part-*.parquet")
    frame = dd.read_parquet(paths, dtype_backend="pyarrow")
    assert isinstance(frame.dtypes["targets"], pd.ArrowDtype)  # list columns included
    keywords = CASES["soft targets, weights"] | {"by": "region"}
    assert_same_report(streamdiv_dask.evaluate(frame, **keywords), streamdiv.evaluate(paths, **keywords))


def test_a_hive_partitioned_directory_gives_the_report_of_one_pass(client, tmp_path):
    pq.write_to_dataset(TABLE.drop_columns(["ts"]), tmp_path / "hive", partition_cols=["region"], row_group_size=4000)
    keywords = dict(probs="probs", labels="label", by=["region", "shard"], weights="weight")
    want = streamdiv.evaluate(str(tmp_path / "hive"), **keywords)
    graph = streamdiv_dask.delayed_state(str(tmp_path / "hive"), **keywords)
    assert _score_tasks(graph) > 3  # the row groups of each region's file
    assert_same_report(streamdiv_dask.evaluate(str(tmp_path / "hive"), **keywords), want)


def test_a_deeper_merge_tree_keeps_the_groups_in_order(client, files):
    keywords = CASES[MAIN_CASE] | {"by": ["region", "shard"]}
    want = streamdiv.evaluate(str(files / "all.parquet"), **keywords)
    for split_every in (2, 3, 17):
        got = streamdiv_dask.evaluate(str(files / "all.parquet"), split_every=split_every, **keywords)
        assert_same_report(got, want)


def test_an_invalid_row_names_the_file_row_group_row_and_column(client, files):
    path = str(files / "all.parquet")
    with pytest.raises(streamdiv.InvalidRowError) as one_pass:
        streamdiv.evaluate(path, probs="one_bad", labels="label")
    with pytest.raises(streamdiv.InvalidRowError) as on_dask:
        streamdiv_dask.evaluate(path, probs="one_bad", labels="label")
    group = BAD_ROW // -(-ROWS // ROW_GROUPS)
    assert str(on_dask.value) == f"{one_pass.value} The row is in row group {group}."
    assert str(one_pass.value).startswith(f"{path}: row {BAD_ROW}, column 'one_bad': the value [0.5, 0.7, -0.1, -0.1]")
    error = on_dask.value
    assert (error.path, error.row, error.column, error.row_group) == (path, BAD_ROW, "one_bad", group)


def test_an_invalid_row_of_a_dataframe_names_its_partition_and_row(client):
    with pytest.raises(streamdiv.InvalidRowError, match=r"^<dask partition 1>: row 6666, column 'one_bad'"):
        streamdiv_dask.evaluate(_frame(3), probs="one_bad", labels="label")  # partitions of 13334 rows


def test_the_threaded_scheduler_and_an_fsspec_filesystem(files):
    """memory:// lives in this process alone: the threaded scheduler reads it, through fsspec."""
    memory = fsspec.filesystem("memory")
    for name in ("all.parquet", "part-0.parquet", "part-1.parquet", "part-2.parquet"):
        memory.pipe(f"/streamdiv-test/{name}", (files / name).read_bytes())
    keywords = CASES[MAIN_CASE]
    with dask.config.set(scheduler="threads"):
        for local, remote in (("all.parquet", "all.parquet"), ("part-*.parquet", "part-*.parquet")):
            got = streamdiv_dask.evaluate(f"memory://streamdiv-test/{remote}", row_groups_per_task=2, **keywords)
            assert_same_report(got, streamdiv.evaluate(str(files / local), **keywords))
    memory.rm("/streamdiv-test", recursive=True)


def test_an_accumulator_given_receives_the_clusters_state(client, files):
    paths, _ = _paths(files, 3)
    keywords = CASES["soft targets, weights"]
    accumulator = streamdiv.Accumulator(bins=10)
    streamdiv.evaluate(TABLE.slice(0, 1000), accumulator=accumulator, **keywords)
    streamdiv_dask.evaluate(paths, accumulator=accumulator, **keywords)
    want = streamdiv.Accumulator(bins=10)
    for source in (TABLE.slice(0, 1000), paths):
        streamdiv.evaluate(source, accumulator=want, **keywords)
    assert accumulator.rows == ROWS + 1000
    assert_same_report(accumulator.report(), want.report())


def test_arguments_are_checked_before_any_task_runs(files, tmp_path):
    path = str(files / "all.parquet")
    with pytest.raises(streamdiv.StreamdivError, match="split_every must be"):
        streamdiv_dask.evaluate(path, probs="probs", split_every=1)
    with pytest.raises(streamdiv.StreamdivError, match="row_groups_per_task must be"):
        streamdiv_dask.evaluate(path, probs="probs", row_groups_per_task=0)
    with pytest.raises(streamdiv.StreamdivError, match="dashboard"):
        streamdiv_dask.evaluate(path, probs="probs", progress=lambda rows, size: None)
    with pytest.raises(streamdiv.SchemaError, match="no column named 'nope'"):
        streamdiv_dask.evaluate(path, probs="nope")
    with pytest.raises(streamdiv.SourceError, match="no file matches"):
        streamdiv_dask.evaluate(str(tmp_path / "*.parquet"), probs="probs")
    (tmp_path / "preds.csv").write_text("p,y\n0.5,1\n")
    with pytest.raises(streamdiv.SourceError, match="cannot read it as Parquet.*dask.dataframe.read_csv"):
        streamdiv_dask.evaluate(str(tmp_path / "preds.csv"), probs="p", labels="y")
    with pytest.raises(TypeError, match="not a int"):
        streamdiv_dask.evaluate(3, probs="probs")


def _slowly(partition: pd.DataFrame) -> pd.DataFrame:
    time.sleep(0.3)  # long enough to kill a worker while the others still run
    return partition


def _finished_scores(dask_scheduler: Any) -> dict[str, list[str]]:
    return {str(task.key): [worker.address for worker in task.who_has]
            for task in dask_scheduler.tasks.values()
            if str(task.key).startswith("streamdiv-score") and task.state == "memory"}


def test_a_worker_killed_mid_run_changes_nothing(client):
    """Killing a worker that holds finished states loses them: Dask runs those tasks again, elsewhere or on the
    restarted worker, and the report is the same."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _slowly and _finished_scores, for the workers
    keywords = CASES[MAIN_CASE]
    want = streamdiv.evaluate(TABLE, **keywords)
    columns = ["noisy", "label", "region", "weight"]  # the graph holds the data: only what is scored
    frame = _frame(17, columns).map_partitions(_slowly, meta=_frame(1, columns)._meta)
    future = client.compute(streamdiv_dask.delayed_state(frame, **keywords))
    deadline = time.monotonic() + 60
    while not (finished := client.run_on_scheduler(_finished_scores)) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = next(iter(finished.values()))[0]
    before = client.run(os.getpid)
    os.kill(before[victim], signal.SIGKILL)
    assert not future.done()
    data = future.result(timeout=120)
    assert_same_report(streamdiv.Accumulator.from_bytes(data, predictions="probs").report(), want)
    client.wait_for_workers(2, timeout=60)
    assert before[victim] not in client.run(os.getpid).values()  # it died, and the nanny started another


@pytest.mark.slow  # about 10 s: a process that starts a cluster of two more
def test_the_command_line_scores_on_a_local_cluster(files):
    path = str(files / "all.parquet")
    args = ["score", path, "--probs", "noisy", "--labels", "label", "--by", "region", "--weights", "weight",
            "--on-invalid", "skip", "--format", "json"]
    one_pass = CliRunner().invoke(main, args)
    assert one_pass.exit_code == 0, one_pass.output
    run = subprocess.run([sys.executable, "-m", "streamdiv", *args, "--dask", "local:2"], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "streamdiv: scoring on Dask at tcp://127.0.0.1:" in run.stderr
    _assert_close(json.loads(run.stdout), json.loads(one_pass.stdout), "json")
    assert_rows_add_up(json.loads(run.stdout), ROWS)
    bad = subprocess.run([sys.executable, "-m", "streamdiv", "score", path, "--probs", "one_bad", "--labels", "label",
                          "--dask", "local:2"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 3  # bad data, in one paragraph: the workers' own log of the error is silenced
    assert bad.stderr.splitlines()[-1].startswith(f"streamdiv: error: {path}: row {BAD_ROW}, column 'one_bad'")
    assert bad.stderr.splitlines()[-1].endswith("The row is in row group 8.")
    assert "Traceback" not in bad.stderr and "Compute Failed" not in bad.stderr


def test_the_command_line_without_the_extra_names_it(files, monkeypatch):
    for name in ("dask", "distributed", "streamdiv.dask"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    monkeypatch.delattr(streamdiv, "dask")
    result = CliRunner().invoke(main, ["score", str(files / "all.parquet"), "--probs", "probs", "--dask", "local"])
    assert result.exit_code == 2
    assert result.stderr == 'streamdiv: error: --dask needs Dask and distributed: pip install "streamdiv[dask]"\n'


def test_the_command_line_refuses_a_dask_address_it_cannot_read(files):
    result = CliRunner().invoke(main, ["score", str(files / "all.parquet"), "--probs", "probs", "--dask", "loc:2"])
    assert result.exit_code == 2
    assert "expected local, local:N (N worker processes) or a scheduler's address" in result.stderr
