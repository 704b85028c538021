"""Block-compensated sums: the state's bits depend on the rows only, never on batches, lanes or threads.

Blocks of ``ROW_BLOCK`` rows are aligned on the stream's row index; these inputs span several blocks, so
the parallel lanes, the open block carried between batches and its serialisation all take part.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_soft
from row_accounting import assert_rows_add_up
from state_bytes import header_of, legacy

import streamdiv
from streamdiv.kernels import layout
from streamdiv.state_format import LEGACY_SLOTS
from streamdiv import accumulator as accumulator_module
from streamdiv.kernels import driver
from streamdiv.kernels.layout import ROW_BLOCK

N = 4 * ROW_BLOCK + 1234


def _inputs() -> dict[str, dict]:
    rng = np.random.default_rng(5)
    logits = rng.normal(0.0, 3.0, (N, 4)).astype(np.float32)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, N)
    labels[rng.random(N) < 0.01] = 7  # out of range: skipped and counted
    targets, soft_probs = make_soft(n=N, num_classes=4, seed=9)
    binary = rng.random(N)
    return {
        "hard, weighted, grouped": dict(probs=probs, labels=labels, weights=rng.exponential(1.0, N),
                                        groups=rng.integers(0, 5, N)),
        "logits": dict(logits=logits, labels=labels),
        "soft": dict(probs=soft_probs, targets=targets),
        "binary": dict(probs=binary, labels=(rng.random(N) < binary).astype(np.int8)),
    }


INPUTS = _inputs()


def _score(inputs: dict, batch: int) -> streamdiv.Accumulator:
    accumulator = streamdiv.Accumulator(on_invalid="skip")
    for start in range(0, N, batch):
        accumulator.update(**{name: value[start: start + batch] for name, value in inputs.items()})
    assert_rows_add_up(accumulator.report(), N)
    return accumulator


@pytest.mark.parametrize("layout", list(INPUTS))
def test_batches_and_lanes_do_not_change_a_bit(layout, monkeypatch):
    reference = _score(INPUTS[layout], N).to_bytes()
    for lanes in (0, 2, 3, 16):
        monkeypatch.setattr(driver.Lanes, "count_for", classmethod(lambda cls, *shape_and_rows: lanes))
        for batch in (N, ROW_BLOCK, 3 * ROW_BLOCK - 1, 40_000, 777):
            assert _score(INPUTS[layout], batch).to_bytes() == reference, (lanes, batch)


@pytest.mark.parametrize("layout", ["logits", "binary"])
def test_rows_without_weights_give_the_bits_of_unit_weights(layout):
    """Unweighted rows count their 0/1 slots and add each count once; rows weighted 1.0 add them row by row.
    Exact either way, so the bits are the same, also when a block mixes fractional weights and none (the
    counted path must then step aside: its partials hold fractions)."""
    inputs = INPUTS[layout]
    ones = np.ones(N)
    assert _score(inputs, 5000).to_bytes() == _score(inputs | {"weights": ones}, 5000).to_bytes()
    if layout != "binary":  # the mixed case below needs 13377 valid rows in a row (binary has no bad row)
        return
    # One row weighing 20.36382877857492, then 13377 rows without weights, in one block.  Neumaier's steps of
    # 1.0 from that fraction end in (13397.363828778574, 6.04e-13); steps of 256.0 (the binary kernel's rows
    # per call) would end in (13397.363828778576, -1.22e-12), crossing two binades in a step and rounding twice.
    # So only the row-by-row path gives the bits of the weighted run.
    # (Later rows of the block can bring the two back to the same bits; the state saved inside it cannot.)
    weights = ones.copy()
    weights[0] = 20.36382877857492
    rows = slice(0, 13378)
    mixed = streamdiv.Accumulator(on_invalid="skip")
    mixed.update(**{k: v[:1] for k, v in inputs.items()}, weights=weights[:1])
    mixed.update(**{k: v[1:13378] for k, v in inputs.items()})
    weighted = streamdiv.Accumulator(on_invalid="skip").update(**{k: v[rows] for k, v in inputs.items()},
                                                               weights=weights[rows])
    assert mixed.to_bytes() == weighted.to_bytes()
    assert_rows_add_up(mixed.report(), 13378)


UNGROUPED = {
    "hard": {k: INPUTS["hard, weighted, grouped"][k] for k in ("probs", "labels")},
    "hard, weighted": {k: INPUTS["hard, weighted, grouped"][k] for k in ("probs", "labels", "weights")},
    "logits": INPUTS["logits"], "soft": INPUTS["soft"], "binary": INPUTS["binary"],
}


@pytest.mark.parametrize("layout", list(UNGROUPED))
def test_one_group_gives_the_bits_of_no_groups(layout):
    """Without groups the rows take the pass for one group (running sums in local variables, unit slots
    counted); with groups it is chosen run by run.  One group must give the same bits."""
    inputs = UNGROUPED[layout]
    plain = _score(inputs, 5000)._state.settled()
    grouped = _score(inputs | {"groups": np.zeros(N, dtype=np.int64)}, 5000)._state.settled()
    for mine, theirs in zip(plain, grouped):
        assert mine.shape == theirs.shape and mine.tobytes() == theirs.tobytes()


def _in_runs(inputs: dict, groups: np.ndarray) -> dict:
    """The rows of each block reordered so that each group's rows form one run, in their order."""
    order = np.concatenate([start + np.argsort(groups[start: start + ROW_BLOCK], kind="stable")
                            for start in range(0, N, ROW_BLOCK)])
    return {name: value[order] for name, value in (inputs | {"groups": groups}).items()}


RUN_GROUPS = np.random.default_rng(8).choice(6, N, p=[0.3, 0.3, 0.2, 0.15, 0.045, 0.005])
RUN_GROUPS[:6] = np.arange(6)  # first seen in the same order either way, so the states' bytes compare
RUN_CASES = {**UNGROUPED, "binary, weighted": INPUTS["binary"] | {"weights": INPUTS["hard, weighted, grouped"]
                                                                    ["weights"]}}


@pytest.mark.parametrize("metrics", ["all", "loss"])
@pytest.mark.parametrize("layout", list(RUN_CASES))
def test_runs_of_one_group_give_the_bits_of_mixed_rows(layout, metrics):
    """Rows of one group in a run of at least kernels.runs.LONG_RUN take the pass for one group; mixed rows, and
    runs shorter than that (group 5 here: about 80 rows a block), are added row by row into their groups'
    slots.  Each group sees the same rows in the same order in the same blocks either way: the same bits."""
    inputs = RUN_CASES[layout]
    mixed = inputs | {"groups": RUN_GROUPS}
    runs = _in_runs(inputs, RUN_GROUPS)
    for batch in (N, 5000):
        one = streamdiv.Accumulator(on_invalid="skip", metrics=metrics)
        other = streamdiv.Accumulator(on_invalid="skip", metrics=metrics)
        for start in range(0, N, batch):
            one.update(**{name: value[start: start + batch] for name, value in mixed.items()})
            other.update(**{name: value[start: start + batch] for name, value in runs.items()})
        assert one.to_bytes() == other.to_bytes(), batch
        assert_rows_add_up(one.report(), N)


@pytest.mark.parametrize("layout", list(INPUTS))
def test_a_long_update_is_fed_in_slices_with_the_bits_of_one_batch(layout, monkeypatch):
    reference = _score(INPUTS[layout], N).to_bytes()
    monkeypatch.setattr(accumulator_module, "UPDATE_SLICE_ROWS", ROW_BLOCK + 5)
    assert accumulator_module._slices(INPUTS[layout], None)[1] == (ROW_BLOCK + 5, 2 * ROW_BLOCK + 10)
    assert _score(INPUTS[layout], N).to_bytes() == reference


def test_a_bad_row_in_a_later_slice_is_named_by_its_row_in_the_batch(monkeypatch):
    monkeypatch.setattr(accumulator_module, "UPDATE_SLICE_ROWS", ROW_BLOCK)
    inputs = UNGROUPED["hard"] | {"labels": np.where(UNGROUPED["hard"]["labels"] == 7, 0, UNGROUPED["hard"]["labels"])}
    inputs["labels"][[2 * ROW_BLOCK + 10, 3 * ROW_BLOCK + 3]] = 7
    accumulator = streamdiv.Accumulator()
    with pytest.raises(streamdiv.InvalidRowError, match=rf"row {2 * ROW_BLOCK + 10}, .*\(1 more bad rows"):
        accumulator.update(**inputs)
    assert accumulator.rows == N and accumulator.report().metrics["skipped_rows"] == 2


def test_a_state_saved_inside_a_block_resumes_bit_for_bit():
    inputs = INPUTS["hard, weighted, grouped"]
    cut = ROW_BLOCK + 5000  # the saved state has an open block
    first = streamdiv.Accumulator(on_invalid="skip").update(**{k: v[:cut] for k, v in inputs.items()})
    resumed = streamdiv.Accumulator.from_bytes(first.to_bytes(), on_invalid="skip")
    resumed.update(**{k: v[cut:] for k, v in inputs.items()})
    assert resumed.to_bytes() == _score(inputs, N).to_bytes()
    assert_rows_add_up(resumed.report(), N)


def test_merge_closes_the_open_blocks_and_adds_the_rows():
    inputs = INPUTS["soft"]
    cut = 2 * ROW_BLOCK + 3
    parts = [streamdiv.Accumulator().update(**{k: v[s] for k, v in inputs.items()})
             for s in (slice(0, cut), slice(cut, N))]
    merged = parts[0] + parts[1]
    once = _score(inputs, N).report().to_dict()
    assert merged.rows == N
    assert merged._state.rows_read == N
    for name, value in merged.report().to_dict()["metrics"].items():
        # counts, None and "inf" exactly; sums merged after their blocks were closed, to rounding
        expected = once["metrics"][name]
        assert value == (pytest.approx(expected, rel=1e-14, abs=1e-15) if isinstance(value, float) else expected), name


def test_version_1_states_are_still_read():
    """A version-1 state (no open block, the slots of its time) written by hand in that format reads back with
    the same results; the metrics of the slots it lacks are None."""
    accumulator = streamdiv.Accumulator(on_invalid="skip", classwise=False).update(**INPUTS["logits"])
    state = accumulator._state
    state.close_open_block()
    counts, sums = state.settled()
    header = header_of(accumulator.to_bytes())
    legacy_layout = {name: list(slots) for name, slots in LEGACY_SLOTS.items()} | {
        "bins": header["layout"]["bins"], "classes": header["layout"]["classes"]}
    now_counts, now_sums = layout.positions(header["layout"])
    then_counts, then_sums = layout.positions(legacy_layout)
    counts = counts[:, [now_counts.index(slot) for slot in then_counts]]
    sums = sums[:, [now_sums.index(slot) for slot in then_sums]]
    header["counts_shape"], header["sums_shape"] = list(counts.shape), list(sums.shape)
    del header["layout"], header["config"]["metrics"]  # version 1 recorded neither
    for later in ("binning", "classwise", "absent_slots"):
        del header["config"][later]
    version_1 = legacy(header, counts.astype("<i8").tobytes() + sums.astype("<f8").tobytes(), version=1)
    restored = streamdiv.Accumulator.from_bytes(version_1)
    lacking = {"class.prediction_mass", "class.target_squares", "class.predicted_class", "bin.weight_squares",
               "double_softmax"} | {slot.name for slot in layout.SKIP_REASON_SLOTS}
    assert set(restored._state.config.absent_slots) == lacking
    expected = accumulator.report().to_dict()
    for metric in streamdiv.METRICS:
        if lacking & set(metric.reads):
            expected["metrics"][metric.name] = None
    expected["distributions"] |= {"predicted_class": None, "mean_prediction": None}  # their slots are absent
    assert expected["metrics"]["skipped_rows"] > 0
    expected["skipped_by_reason"] = None  # the rows it skipped, of reasons it did not record
    assert restored.report().to_dict() == expected
    assert restored.rows == accumulator.rows == restored._state.rows_read


def _score_in_child(queue) -> None:
    queue.put(_score(INPUTS["binary"], N).to_bytes())


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_a_forked_child_scores_after_the_parent_used_threads():
    """GNU OpenMP cannot run a parallel region in a fork()ed child of a process that used it: the child
    must fall back to one thread, with the same bits, and not hang."""
    reference = _score(INPUTS["binary"], N).to_bytes()  # the parent runs lanes (when it has 2+ threads)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_score_in_child, args=(queue,))
    child.start()
    result = queue.get(timeout=300)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert result == reference


def test_thread_counts_give_the_same_bits():
    """1, 2 and 3 numba threads (real threads, in fresh processes) over a stream of several blocks."""
    code = ("import sys, numpy as np, streamdiv; rng = np.random.default_rng(2); "
            f"q = rng.dirichlet(np.ones(6), {N}); y = rng.integers(0, 6, {N}); "
            "a = streamdiv.Accumulator().update(probs=q, labels=y, groups=y % 2); "
            "sys.stdout.write(a.to_bytes().hex())")
    outputs = {threads: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       env=os.environ | {"NUMBA_NUM_THREADS": threads}).stdout
               for threads in ("1", "2", "3")}
    assert outputs["1"] == outputs["2"] == outputs["3"]


def _wide_inputs() -> dict[str, dict]:
    """Rows of 300 classes, with bad rows: spans of them shorter than a block are scored on several threads."""
    rng = np.random.default_rng(11)
    n, k = 2500, 300
    logits = rng.normal(0.0, 3.0, (n, k)).astype(np.float32)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, k, n)
    labels[::97] = k + 3  # out of range
    probs[5::89, 7] = np.nan
    logits[6::89, 2] = np.inf
    targets = rng.dirichlet(np.full(k, 0.3), n)
    targets[9::101, 4] = -0.5
    return {"hard": dict(probs=probs, labels=labels), "logits": dict(logits=logits, labels=labels),
            "soft": dict(probs=probs, targets=targets)}


WIDE = _wide_inputs()


@pytest.mark.parametrize("layout", list(WIDE))
def test_wide_rows_scored_on_threads_give_the_bits_of_one_thread(layout, monkeypatch):
    """Batches of wide rows hold no full block: their rows are scored on every thread, each into its own
    columns of the span's table, then added in row order.  Any number of threads, any batch: the same bits."""
    inputs = WIDE[layout]
    n = len(inputs["probs"] if "probs" in inputs else inputs["logits"])

    def score(batch: int) -> bytes:
        accumulator = streamdiv.Accumulator(on_invalid="skip")
        for start in range(0, n, batch):
            accumulator.update(**{name: value[start: start + batch] for name, value in inputs.items()})
        return accumulator.to_bytes()

    monkeypatch.setattr(driver, "scoring_threads", lambda: 1)
    reference = score(n)
    assert streamdiv.Accumulator.from_bytes(reference).report().metrics["skipped_rows"] > 20  # the bad rows
    assert_rows_add_up(streamdiv.Accumulator.from_bytes(reference).report(), n)
    for threads in (2, 3, 7):
        monkeypatch.setattr(driver, "scoring_threads", lambda: threads)
        for batch in (n, 1000, 901, 333):  # 901 x 300 values and more are scored in parallel
            assert score(batch) == reference, (threads, batch)
