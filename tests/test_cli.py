"""The command line: every command, option and format, exit codes, stdin, atomic writes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import make_hard
from row_accounting import assert_rows_add_up
from prometheus_client.parser import text_string_to_metric_families

import streamdiv
from streamdiv.cli import main

_, PROBS, LABELS = make_hard(n=3000, num_classes=3, seed=51)
TABLE = pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(PROBS.reshape(-1).astype(np.float32)), 3),
                  "label": LABELS.astype(np.int32), "region": np.where(np.arange(3000) % 2, "eu", "us"),
                  "w": np.linspace(0.5, 1.5, 3000)})


@pytest.fixture
def preds(tmp_path):
    path = tmp_path / "preds.parquet"
    pq.write_table(TABLE, path, row_group_size=1000)
    return str(path)


def invoke(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.stderr, result.exception)
    return result


def test_json_output_is_exactly_to_dict(preds):
    result = invoke("score", preds, "--probs", "probs", "--labels", "label", "--by", "region", "--format", "json")
    expected = streamdiv.evaluate(preds, probs="probs", labels="label", by="region").to_dict()
    assert json.loads(result.stdout) == expected


def test_options_reach_the_engine(preds):
    result = invoke("score", preds, "--probs", "probs", "--labels", "label", "--weights", "w", "--base", "2",
                    "--bins", "7", "--batch-size", "333", "--eps", "1e-9", "--format", "json")
    expected = streamdiv.evaluate(preds, probs="probs", labels="label", weights="w", base=2, bins=7, eps=1e-9)
    assert json.loads(result.stdout) == expected.to_dict()
    assert json.loads(result.stdout)["units"] == "bits"


def test_guessed_columns_are_announced(preds):
    result = invoke("score", preds, "--format", "json")
    assert "--probs probs --labels label" in result.stderr
    assert json.loads(result.stdout)["metrics"]["rows"] == 3000


def test_table_format(preds):
    """Every computed metric on a line with its value to 6 decimals (below 1e-4 in scientific notation; counts
    with thousands separators) and its unit; then one line per group with the key metrics; then one line per
    class with its calibration."""
    result = invoke("score", preds, "--probs", "probs", "--labels", "label", "--by", "region", "--format", "table")
    report = streamdiv.evaluate(preds, probs="probs", labels="label", by="region")
    overall, groups, classes = result.stdout.rstrip("\n").split("\n\n")
    lines = overall.splitlines()
    assert lines[0].split() == ["metric", "value", "unit"]
    shown = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    hidden = ("reverse_kl_divergence", "calibration_ratio", "gaussian_kl")  # soft targets, one binary column,
    # the Gaussian kind only
    assert list(shown) == [name for name in streamdiv.METRIC_NAMES if name not in hidden]
    units = {"information": ["nats"], "count": ["rows"]}

    def text(value):
        if isinstance(value, int):
            return f"{value:,}"
        return f"{value:.6e}" if 0 < abs(value) < 1e-4 else f"{value:.6f}"

    for metric in streamdiv.METRICS:
        if metric.name in shown:
            assert shown[metric.name] == [text(report.metrics[metric.name])] + units.get(metric.kind, []), metric.name
    class_header, _, *class_lines = classes.splitlines()
    class_columns = ["ece", "mean_prediction", "observed_frequency", "calibration_ratio"]
    assert class_header.split() == ["class"] + class_columns
    assert [line.split() for line in class_lines] == [[entry["class"]] + [text(entry[name]) for name in class_columns]
                                                      for entry in report.classes]
    header, _, *group_lines = groups.splitlines()
    columns = ["rows", "cross_entropy", "kl_divergence", "accuracy", "brier", "ece"]
    assert header.split() == ["region"] + columns
    by_region = {line.split()[0]: line.split()[1:] for line in group_lines}
    assert by_region == {g["group"]["region"]: [f"{g['metrics']['rows']:,}"] + [f"{g['metrics'][name]:.6f}"
                                                                             for name in columns[1:]]
                         for g in report.groups}


def test_csv_has_one_row_per_group(preds):
    import csv
    result = invoke("score", preds, "--probs", "probs", "--labels", "label", "--by", "region", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["scope"] for r in rows] == ["overall", "group", "group"]
    report = streamdiv.evaluate(preds, probs="probs", labels="label", by="region")
    assert float(rows[0]["cross_entropy"]) == report.metrics["cross_entropy"]
    assert {r["region"] for r in rows[1:]} == {"eu", "us"}


def test_prometheus_output_parses(preds):
    result = invoke("score", preds, "--probs", "probs", "--labels", "label", "--by", "region",
                    "--format", "prometheus")
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    ce = families["streamdiv_cross_entropy_nats"]
    assert {tuple(sorted(s.labels.items())) for s in ce.samples} == {(), (("region", "eu"),), (("region", "us"),)}
    overall = next(s for s in ce.samples if not s.labels)
    report = streamdiv.evaluate(preds, probs="probs", labels="label")
    assert overall.value == pytest.approx(report.metrics["cross_entropy"], rel=1e-15)
    assert "streamdiv_ece_ratio" in families and "streamdiv_rows" in families and "streamdiv_rows_rows" not in families
    assert "streamdiv_reverse_kl_divergence_nats" not in families  # null for hard labels: left out


def test_prometheus_writes_infinity():
    table = pa.table({"p": [0.0, 0.5], "y": [1, 1]})
    report = streamdiv.evaluate(table, probs="p", labels="y")
    text = streamdiv.formats.render(report, "prometheus")
    assert "streamdiv_cross_entropy_nats +Inf" in text
    assert any(f.name == "streamdiv_cross_entropy_nats" for f in text_string_to_metric_families(text))


def test_fail_if_exit_codes(preds):
    base = ["score", preds, "--probs", "probs", "--labels", "label", "--by", "region", "--format", "json"]
    passed = invoke(*base, "--fail-if", "ece>0.5", "--fail-if", "accuracy<0.01")
    assert passed.stderr == ""
    breached = invoke(*base, "--fail-if", "cross_entropy>0.01", "--fail-if", "ece>0.5", code=1)
    assert json.loads(breached.stdout)["metrics"]["rows"] == 3000  # the result is printed first
    assert "'cross_entropy>0.01' holds" in breached.stderr and "region=eu" in breached.stderr
    assert "ece>0.5" not in breached.stderr
    assert "unknown metric 'eec'" in invoke(*base, "--fail-if", "eec>0.1", code=2).stderr
    assert "METRIC OP NUMBER" in invoke(*base, "--fail-if", "ece is big", code=2).stderr


def test_usage_and_data_errors(preds, tmp_path):
    usage = invoke("score", preds, "--probs", "probs", "--labels", "label", "--base", "3", code=2)
    assert "Invalid value for '--base': '3' is not one of 'e', '2', '10'" in usage.stderr and usage.stdout == ""
    missing = invoke("score", tmp_path / "nope.parquet", "--probs", "p", "--labels", "y", code=3)
    assert "nope.parquet" in missing.stderr and "Traceback" not in missing.stderr
    bad = TABLE.set_column(1, "label", pa.array(np.where(np.arange(3000) == 2500, 7, LABELS).astype(np.int32)))
    pq.write_table(bad, tmp_path / "bad.parquet", row_group_size=1000)
    error = invoke("score", tmp_path / "bad.parquet", "--probs", "probs", "--labels", "label", code=3)
    assert "bad.parquet: row 2500, column 'label': the value 7" in error.stderr
    skipped = invoke("score", tmp_path / "bad.parquet", "--probs", "probs", "--labels", "label",
                     "--on-invalid", "skip", "--format", "json")
    assert json.loads(skipped.stdout)["metrics"]["skipped_rows"] == 1
    assert assert_rows_add_up(json.loads(skipped.stdout), 3000) == {"label_out_of_range": 1}


def test_debug_shows_the_traceback(tmp_path):
    result = CliRunner().invoke(main, ["--debug", "score", str(tmp_path / "nope.parquet"), "--probs", "p",
                                       "--labels", "y"])
    assert isinstance(result.exception, streamdiv.SourceError)


def test_output_file_and_states_merge(preds, tmp_path):
    halves = []
    for i, (lo, hi) in enumerate(((0, 1700), (1700, 3000))):
        part = tmp_path / f"part{i}.parquet"
        pq.write_table(TABLE.slice(lo, hi - lo), part)
        state = tmp_path / f"part{i}.state"
        invoke("score", part, "--probs", "probs", "--labels", "label", "--by", "region", "--save-state", state,
               "-o", tmp_path / f"part{i}.json")
        assert json.loads((tmp_path / f"part{i}.json").read_text())["metrics"]["rows"] == hi - lo
        halves.append(state)
    merged = invoke("merge", *halves, "--format", "json", "--save-state", tmp_path / "all.state")
    once = streamdiv.evaluate(preds, probs="probs", labels="label", by="region").metrics
    for name, value in json.loads(merged.stdout)["metrics"].items():
        assert value == (pytest.approx(once[name], rel=1e-15) if isinstance(value, float) else once[name]), name
    again = invoke("merge", tmp_path / "all.state", "--format", "json")
    assert json.loads(again.stdout) == json.loads(merged.stdout)
    breached = invoke("merge", halves[0], "--fail-if", "rows>10", "-o", tmp_path / "m.prom", code=1)
    assert "condition 'rows>10' holds: overall rows = 1700" in breached.stderr
    written = {f.name: f for f in text_string_to_metric_families((tmp_path / "m.prom").read_text())}
    assert next(s.value for s in written["streamdiv_rows"].samples if not s.labels) == 1700  # written first
    (tmp_path / "junk.state").write_bytes(b"nonsense")
    assert "junk.state" in invoke("merge", tmp_path / "junk.state", code=3).stderr
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_inspect(preds):
    result = invoke("inspect", preds)
    assert "3,000 rows" in result.stdout and "fixed_size_list" in result.stdout
    assert "--probs 'probs' --labels 'label'" in result.stdout
    data = json.loads(invoke("inspect", preds, "--format", "json").stdout)
    assert data["rows"] == 3000 and data["guess"] == {"probs": "probs", "labels": "label", "weights": "w"}


def test_demo_runs_small(tmp_path):
    result = invoke("demo", "--rows", "30000", "--format", "json", "--keep", tmp_path / "d.parquet")
    data = json.loads(result.stdout)
    assert data["metrics"]["rows"] == 30000
    ece = {g["group"]["region"]: g["metrics"]["ece"] for g in data["groups"]}
    assert ece["eu"] < 0.03 < min(ece["us"], ece["apac"])  # the planted miscalibration shows
    assert (tmp_path / "d.parquet").exists()


def test_every_command_has_help_with_an_example():
    for command in main.commands:
        text = invoke(command, "--help").stdout
        assert "Example:" in text, command
    assert "Exit codes" in invoke("--help").stdout
    assert streamdiv.__version__ in invoke("--version").stdout


def test_stdin_stream_in_a_subprocess(tmp_path):
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, TABLE.schema) as writer:
        writer.write_table(TABLE, max_chunksize=700)
    done = subprocess.run([sys.executable, "-m", "streamdiv", "score", "-", "--probs", "probs", "--labels", "label",
                           "--format", "json"], input=sink.getvalue(), capture_output=True, check=True)
    expected = streamdiv.evaluate(TABLE, probs="probs", labels="label").to_dict()
    assert json.loads(done.stdout) == expected


def test_killed_writer_leaves_no_partial_file(tmp_path):
    """Kill a process in the middle of write_atomically: the target is either absent or whole."""
    target = tmp_path / "out.prom"
    target.write_text("old complete content\n")
    code = ("import sys, time, streamdiv.formats as f, os\n"
            "real = os.replace\n"
            "def slow(*a):\n    print('ready', flush=True); time.sleep(30); real(*a)\n"
            "f.os.replace = slow\n"
            f"f.write_atomically({str(target)!r}, b'x' * 10_000_000)\n")
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) as process:
        assert process.stdout.readline().strip() == b"ready"  # the temporary file is written, not yet renamed
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert target.read_text() == "old complete content\n"


def test_writing_to_a_device_writes_through_it(tmp_path):
    """-o /dev/null must not rename a temporary file over the device node (as root, it would replace it)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE) as reader:
        streamdiv.formats.write_atomically(str(fifo), b"through the pipe\n")
        assert reader.communicate(timeout=10)[0] == b"through the pipe\n"
    assert os.path.exists(fifo) and not os.path.isfile(fifo)
    streamdiv.formats.write_atomically(os.devnull, b"gone")
    assert not os.path.isfile(os.devnull)


def test_thread_count_is_an_option_and_changes_no_bit(tmp_path):
    """--threads 1 and 2 over a file of several 16,384-row blocks print the same JSON; the option is applied."""
    rng = np.random.default_rng(8)
    n = 70_000
    probs = rng.dirichlet(np.ones(4), n).astype(np.float32)
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), 4),
                             "label": rng.integers(0, 4, n)}), path)
    import numba
    before = numba.get_num_threads()
    try:
        outputs = [invoke("score", path, "--threads", threads, "--format", "json").stdout for threads in (1, 2)]
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    finally:
        numba.set_num_threads(before)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["metrics"]["rows"] == n


def test_merge_keeps_the_settings_of_the_states(preds, tmp_path):
    """States saved with non-default bins and eps merge with each other (not against the defaults)."""
    state = tmp_path / "a.state"
    invoke("score", preds, "--probs", "probs", "--labels", "label", "--bins", "7", "--eps", "1e-9",
           "--save-state", state, "--format", "json")
    merged = json.loads(invoke("merge", state, state, "--format", "json").stdout)
    assert merged["metrics"]["rows"] == 6000 and len(merged["calibration"]) == 7
    assert (merged["layout"]["bins"], merged["layout"]["eps"]) == (7, 1e-9)


def _compiled_signatures():
    """Every specialisation each cached kernel of streamdiv's modules holds in this process (compiled, or
    loaded from the cache), found by module rather than by name so that a kernel added or moved is seen."""
    from streamdiv.warmup import cached_kernels
    return {name: set(kernel.signatures) for name, kernel in cached_kernels().items()}


@pytest.mark.slow  # compiles every family's every dtype: minutes on 2 cores
def test_warmup_names_every_layout_and_leaves_nothing_to_compile(tmp_path):
    from streamdiv.warmup import LAYOUTS, PARQUET_STEP
    result = invoke("warmup")
    lines = result.stdout.splitlines()
    assert [line.split(" ... ")[0] for line in lines[:-1]] == [f"compiling {name}" for name in
                                                              [layout.name for layout in LAYOUTS] + [PARQUET_STEP]]
    assert all(line.endswith(" s") for line in lines[:-1])
    assert lines[-1].startswith(f"streamdiv warmup: {len(LAYOUTS)} layouts and the {PARQUET_STEP} in ")
    warmed = _compiled_signatures()
    if not warmed:
        pytest.skip("NUMBA_DISABLE_JIT: no compiled kernels")
    # Inputs of other storage types than the warm-up's: each must reach a specialisation it compiled.
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(4), 50)
    targets = rng.dirichlet(np.ones(4), 50)
    labels = rng.integers(0, 4, 50)
    binary = rng.random(50)

    def lists(matrix, kind):
        flat = pa.array(matrix.reshape(-1)).cast(kind)
        offsets = pa.array(np.arange(0, matrix.size + 1, matrix.shape[1]), pa.int64())
        return pa.LargeListArray.from_arrays(offsets, flat)

    table = pa.table({"p16": lists(probs, pa.float16()), "p32": lists(probs, pa.float32()),
                      "t16": lists(targets, pa.float16()), "y8": labels.astype(np.int8),
                      "yu": labels.astype(np.uint64), "w32": np.ones(50, np.float32), "wi": np.ones(50, np.int16),
                      "g1": labels % 2, "g2": np.where(labels > 1, "x", "y"), "b16": binary.astype(np.float16),
                      "bool": binary > 0.5, "names": np.array(list("abcd"))[labels]}
                     | {f"c{k}": probs[:, k].astype(np.float16) for k in range(4)})
    streamdiv.evaluate(table.slice(3), probs="p16", labels="y8", weights="w32", by=["g1", "g2"])
    streamdiv.evaluate(table, probs="p32", targets="t16", weights="wi", metrics="loss")
    skipped = streamdiv.evaluate(table, probs="c*", labels="names", class_names=list("0123"), on_invalid="skip")
    assert_rows_add_up(skipped, len(table))
    streamdiv.evaluate(table, probs="b16", labels="bool", eps=1e-3)
    streamdiv.evaluate(table, probs="b16", targets="b16", renormalize=True)
    streamdiv.evaluate(table, probs="p16", weights="wi", by="g2")  # the predictions alone
    streamdiv.evaluate(table, probs="c*", renormalize=True)
    streamdiv.Accumulator().update(probs=np.asfortranarray(probs), labels=labels.astype(np.int16))
    streamdiv.Accumulator().update(logits=np.log(probs[:, ::2]).astype(np.float32)[::2], labels=labels[::2] % 2)
    streamdiv.Accumulator().update(probs=(probs * 8).round().astype(np.int64) / 8, targets=targets.astype(np.float32))
    streamdiv.Accumulator().update(probs=binary.astype(np.float32), targets=binary, weights=labels)
    saved = streamdiv.Accumulator().update(probs=probs, labels=labels, groups=labels % 3).to_bytes()
    streamdiv.Accumulator.from_bytes(saved).update(probs=probs, labels=labels, groups=labels % 3)
    # Parquet columns that streamdiv.parquet_decode reads (flat and list, 4- and 8-byte values, snappy or not)
    parquet = tmp_path / "warm.parquet"
    for compression in ("snappy", "none"):
        pq.write_table(table.select(["p32", "y8", "w32"]).append_column("b64", pa.array(binary))
                       .append_column("y64", pa.array(labels % 2)), parquet, compression=compression)
        streamdiv.evaluate(str(parquet), probs="p32", labels="y8", weights="w32")
        streamdiv.evaluate(str(parquet), probs="b64", labels="y64")
    assert _compiled_signatures() == warmed


def wait_until_idle(pid: int, quiet_seconds: float = 1.0, timeout: float = 120.0) -> None:
    """Return once process ``pid`` has used no CPU time for ``quiet_seconds`` (Linux: /proc/PID/stat)."""
    import time

    def cpu_ticks() -> int:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    deadline = time.monotonic() + timeout
    last, quiet_since = cpu_ticks(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu_ticks()
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_seconds:
            return
    raise AssertionError(f"process {pid} kept busy for {timeout} s")


def test_ctrl_c_exits_130_with_one_line(tmp_path):
    """An interrupted job exits with the shell's 130, not a breach's 1, and says so in one line."""
    import signal

    import pyarrow as pa

    table = pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(np.full(300, 1 / 3)), 3),
                      "label": pa.array(np.zeros(100, dtype=np.int32))})
    process = subprocess.Popen([sys.executable, "-m", "streamdiv", "score", "-", "--probs", "probs", "--labels",
                                "label", "--format", "json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    writer = pa.ipc.new_stream(process.stdin, table.schema)
    writer.write_table(table)  # the stream stays open: the job waits for more
    process.stdin.flush()
    wait_until_idle(process.pid)  # started, scored what came, and waiting for more (not still importing)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.decode().splitlines()[-1] == "streamdiv: interrupted"
