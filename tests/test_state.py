"""Saved states: round trips, versions, merges across processes, and what cannot be merged."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import make_hard, make_soft
from state_bytes import rewritten

import streamdiv
from streamdiv.state_format import FORMAT_VERSION, MAGIC

_, PROBS, LABELS = make_hard(n=900, num_classes=4, seed=41)
GROUPS = np.where(np.arange(900) % 3 == 0, "x", "y")


def test_bytes_round_trip_keeps_every_bit():
    accumulator = streamdiv.Accumulator(bins=7).update(probs=PROBS, labels=LABELS, groups=GROUPS)
    restored = streamdiv.Accumulator.from_bytes(accumulator.to_bytes())
    assert restored.report().to_dict() == accumulator.report().to_dict()
    assert restored.to_bytes() == accumulator.to_bytes()
    assert pickle.loads(pickle.dumps(accumulator)).report().to_dict() == accumulator.report().to_dict()


def test_resume_after_restore_equals_one_pass():
    first = streamdiv.Accumulator().update(probs=PROBS[:400], labels=LABELS[:400])
    resumed = streamdiv.Accumulator.from_bytes(first.to_bytes()).update(probs=PROBS[400:], labels=LABELS[400:])
    once = streamdiv.Accumulator().update(probs=PROBS, labels=LABELS)
    assert resumed.report().to_dict() == once.report().to_dict()  # bit for bit: the state carried over


def test_merge_of_states_from_other_processes(tmp_path):
    script = textwrap.dedent("""
        import sys, numpy as np, streamdiv
        sys.path.insert(0, {tests!r})
        from conftest import make_hard
        _, probs, labels = make_hard(n=900, num_classes=4, seed=41)
        lo, hi = int(sys.argv[1]), int(sys.argv[2])
        groups = np.where(np.arange(900) % 3 == 0, "x", "y")[lo:hi]
        acc = streamdiv.Accumulator().update(probs=probs[lo:hi], labels=labels[lo:hi], groups=groups)
        open(sys.argv[3], "wb").write(acc.to_bytes())
    """).format(tests=os.path.dirname(__file__))
    paths = []
    for lo, hi in ((0, 300), (300, 650), (650, 900)):
        path = tmp_path / f"{lo}.state"
        subprocess.run([sys.executable, "-c", script, str(lo), str(hi), str(path)], check=True)
        paths.append(path)
    merged = streamdiv.Accumulator()
    for path in paths:
        merged.merge(streamdiv.Accumulator.from_bytes(path.read_bytes()))
    once = streamdiv.Accumulator().update(probs=PROBS, labels=LABELS, groups=GROUPS).report()
    report = merged.report()
    for name, value in once.metrics.items():
        assert report.metrics[name] == (pytest.approx(value, rel=1e-15) if value is not None else None), name
    assert [g["group"] for g in report.groups] == [g["group"] for g in once.groups]


def test_version_and_corruption_are_reported():
    data = streamdiv.Accumulator().update(probs=PROBS, labels=LABELS).to_bytes()
    assert data.startswith(MAGIC)
    with pytest.raises(streamdiv.StateVersionError, match=f"format version {FORMAT_VERSION + 1}"):
        streamdiv.Accumulator.from_bytes(rewritten(data, version=FORMAT_VERSION + 1))
    with pytest.raises(streamdiv.CorruptStateError, match="truncated"):
        streamdiv.Accumulator.from_bytes(data[:-8])
    with pytest.raises(streamdiv.CorruptStateError, match="not a streamdiv state"):
        streamdiv.Accumulator.from_bytes(b"PAR1....")


@pytest.mark.parametrize("other", [
    lambda: streamdiv.Accumulator().update(probs=PROBS[:, :3] / PROBS[:, :3].sum(1, keepdims=True),
                                           labels=LABELS % 3),
    lambda: streamdiv.Accumulator(bins=10).update(probs=PROBS, labels=LABELS),
    lambda: streamdiv.Accumulator().update(probs=make_soft(n=10, num_classes=4)[1],
                                           targets=make_soft(n=10, num_classes=4)[0]),
    lambda: streamdiv.Accumulator().update(probs=PROBS, labels=LABELS, groups=GROUPS),
], ids=["classes", "bins", "soft", "groups"])
def test_incompatible_states_refuse_to_merge(other):
    base = streamdiv.Accumulator().update(probs=PROBS, labels=LABELS)
    with pytest.raises(streamdiv.IncompatibleStateError, match="differs"):
        base.merge(other())


def test_kernel_cache_loads_in_a_fresh_process_twice():
    """cache=True: a second process loads the compiled kernels from disk instead of compiling them."""
    code = ("import numpy as np, streamdiv; from streamdiv.kernels import blocks; "
            "a = streamdiv.Accumulator().update(probs=np.array([[0.7, 0.3]]), labels=np.array([1])); "
            "b = streamdiv.Accumulator().update(probs=np.array([0.3]), labels=np.array([1])); "
            "print(a.report().metrics['cross_entropy'] == b.report().metrics['cross_entropy'], "
            "sum(blocks.hard_probabilities.stats.cache_hits.values()) "
            "+ sum(blocks.binary_labels.stats.cache_hits.values()))")
    outputs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
               for _ in range(2)]
    assert all(same == "True" for same, _ in outputs)
    assert int(outputs[1][1]) == 2  # both kernels came from the cache the first process wrote (or found)


def test_results_do_not_depend_on_the_thread_count(tmp_path):
    """The same file scored under 1 and 2 numba threads gives the same bits (the kernels' sums run in row order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"p": pa.FixedSizeListArray.from_arrays(pa.array(PROBS.reshape(-1)), 4),
                             "y": LABELS}), path, row_group_size=250)
    code = (f"import json, streamdiv; print(json.dumps(streamdiv.evaluate({str(path)!r}, probs='p', labels='y', "
            f"batch_size=97).to_dict()))")
    outputs = {threads: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       env=os.environ | {"NUMBA_NUM_THREADS": threads}).stdout
               for threads in ("1", "2")}
    assert outputs["1"] == outputs["2"]


def test_a_run_of_no_rows_reports_zero_rows():
    """An empty source (or an accumulator that saw nothing) reports rows = 0 and every mean None."""
    assert streamdiv.Accumulator().report().metrics["rows"] == 0
    empty = streamdiv.evaluate({"probs": np.zeros((0, 3)), "labels": np.zeros(0, dtype=int)}, probs="probs",
                               labels="labels")
    assert empty.rows_read == 0 and empty.metrics["cross_entropy"] is None and empty.metrics["ece"] is None


def test_counts_and_weights_stay_exact_past_two_to_the_32():
    """Row counts are int64 and weights compensated float64 sums: states whose counts are near 2^32 (made by
    setting a real state's totals, not by scoring that many rows) merge, save and load to the exact sums."""
    from streamdiv.kernels.layout import ROWS, WEIGHT

    big = 2 ** 32 - 3
    parts = []
    for extra in (0, 7):
        accumulator = streamdiv.Accumulator().update(probs=PROBS, labels=LABELS)
        state = accumulator._state
        state.close_open_block()
        state.counts[0, ROWS] = big + extra
        state.sums[0, WEIGHT] = (float(big + extra), 0.0)
        parts.append(streamdiv.Accumulator.from_bytes(accumulator.to_bytes()))
    merged = streamdiv.Accumulator.from_bytes((parts[0] + parts[1]).to_bytes())
    report = merged.report()
    assert report.metrics["rows"] == 2 * big + 7 == 8_589_934_593
    assert report.metrics["weight"] == float(2 * big + 7)
    assert merged.rows == 2 * big + 7  # rows read = evaluated + skipped + ignored, none skipped
