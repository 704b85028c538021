"""Checkpoint and resume: a scan killed at any moment and resumed ends with the bits of one uninterrupted run.

The kill trials run ``streamdiv score`` in a subprocess, SIGKILL it at a random moment of its run, and run the
same command with ``--resume`` until it finishes; its report and its saved state must equal those of a run
that was never stopped, byte for byte.  STREAMDIV_KILL_TRIALS sets how many (10 by default):

    STREAMDIV_KILL_TRIALS=50 python -m pytest tests/test_checkpoint.py -k killed -p no:randomly
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import streamdiv
from streamdiv import checkpoint
from streamdiv.checkpoint import Every
from streamdiv.errors import CheckpointError
from streamdiv.synthetic import write_predictions

KILL_TRIALS = int(os.environ.get("STREAMDIV_KILL_TRIALS", "10"))
ROWS = 240_000


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint") / "predictions.parquet"
    write_predictions(str(path), ROWS, 10, row_group_size=40_000)
    return path


class StopAfter:
    """A progress callback that raises KeyboardInterrupt at its ``calls``-th call, as Ctrl-C would."""

    def __init__(self, calls: int):
        self.calls = calls

    def __call__(self, rows: int, nbytes: int) -> None:
        self.calls -= 1
        if self.calls == 0:
            raise KeyboardInterrupt


def interrupted_then_resumed(source, checkpoint_path, calls: int, **options):
    """The report of a run stopped by KeyboardInterrupt after ``calls`` batches, then resumed with other
    batch cuts."""
    with pytest.raises(KeyboardInterrupt):
        streamdiv.evaluate(source, checkpoint=checkpoint_path, checkpoint_every=3, progress=StopAfter(calls),
                           batch_size=6_000, **options)
    assert os.path.exists(checkpoint_path)
    return streamdiv.evaluate(source, checkpoint=checkpoint_path, resume=True, batch_size=9_000, **options)


def same_report(a, b) -> None:
    assert a.rows_read == b.rows_read
    assert a.metrics.keys() == b.metrics.keys()
    for name, value in a.metrics.items():
        assert value == b.metrics[name] or (value != value and b.metrics[name] != b.metrics[name]), name
    assert [(g["group"], g["metrics"]) for g in a.groups] == [(g["group"], g["metrics"]) for g in b.groups]


def test_checkpoint_intervals_read_as_batches_or_durations():
    assert Every.parse("100") == Every(batches=100)
    assert Every.parse(7) == Every(batches=7)
    assert Every.parse("30s") == Every(seconds=30.0)
    assert Every.parse("5min") == Every(seconds=300.0)
    assert Every.parse("2h") == Every(seconds=7200.0)
    for bad in ("0", "-3", "1.5s", "10 days", "s"):
        with pytest.raises(CheckpointError, match="checkpoint interval"):
            Every.parse(bad)
    assert Every(batches=3).due(3, 0.0) and not Every(batches=3).due(2, 1e9)
    assert Every(seconds=30.0).due(0, 30.0) and not Every(seconds=30.0).due(10**6, 29.9)


def test_a_resumed_scan_of_a_parquet_file_gives_the_uninterrupted_report(predictions, tmp_path):
    options = dict(probs="probs", labels="label", by="region")
    whole = streamdiv.evaluate(predictions, **options)
    ck = tmp_path / "scan.ckpt"
    resumed = interrupted_then_resumed(predictions, ck, calls=11, **options)
    same_report(whole, resumed)
    assert not ck.exists()  # a finished scan removes its checkpoint


@pytest.mark.parametrize("kind", ["directory", "csv", "arrow"])
def test_other_files_resume_where_they_stopped(predictions, tmp_path, kind):
    table = pq.read_table(predictions).slice(0, 60_000)
    if kind == "directory":
        source = tmp_path / "days"
        source.mkdir()
        for day in range(3):
            pq.write_table(table.slice(day * 20_000, 20_000), source / f"day{day}.parquet", row_group_size=7_000)
        options = dict(probs="probs", labels="label")
    elif kind == "csv":
        source = tmp_path / "binary.csv"
        flat = pa.table({"p": pa.array(np.random.default_rng(3).random(60_000)),
                         "label": pa.array(np.random.default_rng(4).integers(0, 2, 60_000))})
        pa_csv.write_csv(flat, source)
        options = dict(probs="p", labels="label")
    else:
        source = tmp_path / "predictions.arrow"
        table = table.unify_dictionaries().combine_chunks()  # an IPC file holds one dictionary per field
        with pa.ipc.new_file(source, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=8_000):
                writer.write_batch(batch)
        options = dict(probs="probs", labels="label")
    whole = streamdiv.evaluate(source, **options)
    same_report(whole, interrupted_then_resumed(source, tmp_path / "ck", calls=5, **options))


def test_resuming_without_a_checkpoint_starts_from_the_beginning(predictions, tmp_path):
    whole = streamdiv.evaluate(predictions, probs="probs", labels="label")
    fresh = streamdiv.evaluate(predictions, probs="probs", labels="label", checkpoint=tmp_path / "none",
                               resume=True)
    same_report(whole, fresh)


def test_a_changed_file_is_refused_naming_it(predictions, tmp_path):
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(predictions.read_bytes())
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        streamdiv.evaluate(copy, probs="probs", labels="label", checkpoint=ck, checkpoint_every=1,
                           progress=StopAfter(2), batch_size=5_000)
    os.utime(copy, ns=(os.stat(copy).st_atime_ns, os.stat(copy).st_mtime_ns + 10**9))
    with pytest.raises(CheckpointError, match=r"copy\.parquet: changed since the checkpoint .*modified_ns"):
        streamdiv.evaluate(copy, probs="probs", labels="label", checkpoint=ck, resume=True)
    write_predictions(str(copy), 1000, 10)  # other contents: size and footer differ too
    with pytest.raises(CheckpointError, match=r"footer_sha256.*remove"):
        streamdiv.evaluate(copy, probs="probs", labels="label", checkpoint=ck, resume=True)


def test_other_options_or_other_files_are_refused(predictions, tmp_path):
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        streamdiv.evaluate(predictions, probs="probs", labels="label", checkpoint=ck, checkpoint_every=1,
                           progress=StopAfter(2), batch_size=5_000)
    with pytest.raises(CheckpointError, match=r"options differ .*settings\.bins 15 -> 20"):
        streamdiv.evaluate(predictions, probs="probs", labels="label", bins=20, checkpoint=ck, resume=True)
    with pytest.raises(CheckpointError, match=r"options differ .*by \[\] -> \['region'\]"):
        streamdiv.evaluate(predictions, probs="probs", labels="label", by="region", checkpoint=ck, resume=True)
    with pytest.raises(CheckpointError, match="written for 1 file"):
        streamdiv.evaluate([predictions, predictions], probs="probs", labels="label", checkpoint=ck, resume=True)


def test_a_damaged_checkpoint_is_refused(predictions, tmp_path):
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        streamdiv.evaluate(predictions, probs="probs", labels="label", checkpoint=ck, checkpoint_every=1,
                           progress=StopAfter(2), batch_size=5_000)
    data = bytearray(ck.read_bytes())
    data[-5] ^= 0x40
    ck.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        streamdiv.evaluate(predictions, probs="probs", labels="label", checkpoint=ck, resume=True)
    ck.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a streamdiv checkpoint"):
        checkpoint.read(str(ck))


def test_data_in_memory_cannot_be_checkpointed(tmp_path):
    table = pa.table({"p": [0.2, 0.9], "label": [0, 1]})
    with pytest.raises(CheckpointError, match="not a file"):
        streamdiv.evaluate(table, probs="p", labels="label", checkpoint=tmp_path / "ck")
    with pytest.raises(streamdiv.StreamdivError, match="name it with checkpoint="):
        streamdiv.evaluate(table, probs="p", labels="label", resume=True)


# ---- the command line, in subprocesses: killed, interrupted, resumed
def score_command(source, ck, out):
    return [sys.executable, "-m", "streamdiv", "score", str(source), "--probs", "probs", "--labels", "label",
            "--by", "region", "--batch-size", "1024", "--checkpoint", str(ck), "--checkpoint-every", "1",
            "--resume", "--format", "json", "-o", str(out / "report.json"), "--save-state", str(out / "state")]


def run_to_the_end(command, timeout=120):
    finished = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert finished.returncode == 0, finished.stderr
    return finished


def outputs(out):
    return (out / "report.json").read_bytes(), (out / "state").read_bytes()


def wait_for(path, process, timeout=60.0) -> bool:
    """Wait until ``path`` exists (the scan has written its first checkpoint); False if the process ended."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture(scope="module")
def uninterrupted(predictions, tmp_path_factory):
    """The outputs of a run never stopped, how long that run took, and how long it went on after writing its
    first checkpoint (the scan itself, start-up aside)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    run_to_the_end(score_command(predictions, out / "ck", out), timeout=900)  # compiles, or loads the cache
    started = time.monotonic()
    process = subprocess.Popen(score_command(predictions, out / "ck", out), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    assert wait_for(out / "ck", process)
    scanning = time.monotonic()
    assert process.wait(timeout=120) == 0
    ended = time.monotonic()
    return outputs(out), ended - started, ended - scanning


def test_a_run_killed_at_random_moments_and_resumed_gives_the_same_bytes(predictions, uninterrupted, tmp_path):
    """SIGKILL at a random moment, then ``--resume`` to the end: in even trials a moment of the whole run
    (start-up included), in odd ones a moment of the scan (after its first checkpoint)."""
    expected, duration, scan = uninterrupted
    draw = random.Random(2026)
    mid_scan = 0
    for trial in range(KILL_TRIALS):
        out = tmp_path / f"trial{trial}"
        out.mkdir()
        command = score_command(predictions, out / "ck", out)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if trial % 2:
            wait_for(out / "ck", process)
            time.sleep(draw.uniform(0.0, 0.9) * scan)
        else:
            time.sleep(draw.uniform(0.3, 1.0) * duration)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if (out / "ck").exists():
            header, _ = checkpoint.read(str(out / "ck"))
            mid_scan += 0 < header["rows"] < ROWS
        resumed = run_to_the_end(command)
        assert outputs(out) == expected, (trial, resumed.stderr)
        assert not (out / "ck").exists()
    assert mid_scan >= KILL_TRIALS // 3, f"only {mid_scan} of {KILL_TRIALS} kills landed mid-scan"


def test_ctrl_c_exits_130_with_one_line_and_leaves_a_checkpoint_to_resume(predictions, uninterrupted, tmp_path):
    expected, _, _ = uninterrupted
    command = score_command(predictions, tmp_path / "ck", tmp_path)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(tmp_path / "ck", process)  # the scan has begun
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < 5
    assert process.returncode == 130
    assert stderr.splitlines()[-1] == "streamdiv: interrupted"
    assert "Traceback" not in stderr
    header, _ = checkpoint.read(str(tmp_path / "ck"))
    assert 0 < header["rows"] < ROWS
    resumed = run_to_the_end(command)
    assert f"resuming from {tmp_path / 'ck'}: {header['rows']:,} rows done" in resumed.stderr
    assert outputs(tmp_path) == expected


def test_the_command_line_refuses_a_checkpoint_with_every_or_resume_alone(predictions, tmp_path):
    from click.testing import CliRunner
    from streamdiv.cli import main
    runner = CliRunner()
    result = runner.invoke(main, ["score", str(predictions), "--probs", "probs", "--labels", "label",
                                  "--checkpoint", str(tmp_path / "ck"), "--every", "1000"])
    assert result.exit_code == 2 and "--checkpoint does not go with --every" in result.output
    result = runner.invoke(main, ["score", str(predictions), "--probs", "probs", "--labels", "label", "--resume"])
    assert result.exit_code == 2 and "name it with --checkpoint PATH" in result.output
    result = runner.invoke(main, ["score", str(predictions), "--probs", "probs", "--labels", "label",
                                  "--checkpoint", str(tmp_path / "ck"), "--checkpoint-every", "soon"])
    assert result.exit_code == 2 and "cannot read the checkpoint interval 'soon'" in result.output
