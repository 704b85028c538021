"""row_fills: labels cast and per-class columns interleaved block by block, as the blocks are scored, give the
reports (bit for bit) and the errors of the whole-batch conversions."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import streamdiv
from streamdiv import row_fills
from streamdiv.errors import InvalidRowError
from streamdiv.kernels.layout import ROW_BLOCK

# the batches: one shorter than a block, then one with a head, full blocks (run on the lanes) and a tail
CUTS = (1000, 1000 + 3 * ROW_BLOCK + 777)


def _inputs(case: str) -> dict:
    rng = np.random.default_rng(11)
    n = CUTS[-1]
    if case == "binary":
        p = rng.random(n).astype(np.float32)
        return {"probs": p, "labels": (rng.random(n) < p).astype(np.int8), "weights": rng.exponential(1.0, n)}
    classes = {"columns_k10": 10, "columns_logits_k64": 64}[case]
    z = rng.normal(0.0, 2.0, (n, classes))
    labels = rng.integers(0, classes, n).astype(np.int32)
    labels[::997] = -1  # ignored
    if case == "columns_logits_k64":  # wide rows: spans shorter than a block are scored on every thread
        return {"logits": [np.ascontiguousarray(z[:, k], dtype=np.float32) for k in range(classes)],
                "labels": labels}
    q = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return {"probs": [np.ascontiguousarray(q[:, k], dtype=np.float32) for k in range(classes)],
            "labels": labels, "groups": rng.integers(0, 3, n)}


def _score(inputs: dict, metrics: str) -> bytes:
    accumulator = streamdiv.Accumulator(metrics=metrics, ignore_label=-1, on_invalid="skip")
    start = 0
    for stop in CUTS:
        part = {role: ([column[start:stop] for column in value] if isinstance(value, list) else value[start:stop])
                for role, value in inputs.items()}
        accumulator.update(**part)
        start = stop
    return accumulator.to_bytes()


def _stacked(inputs: dict) -> dict:
    """The inputs with per-class columns given as one rows x K array instead, which nothing defers."""
    return {role: np.stack(value, axis=1) if isinstance(value, list) else value for role, value in inputs.items()}


@pytest.mark.parametrize("case", ["binary", "columns_k10", "columns_logits_k64"])
@pytest.mark.parametrize("metrics", ["all", "loss"])
def test_deferred_conversions_give_the_bits_of_whole_ones(case, metrics, monkeypatch):
    inputs = _inputs(case)
    threads = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        monkeypatch.setattr(row_fills, "DEFERRED_ROWS", 1 << 62)
        whole = _score(_stacked(inputs), metrics)
        filled = []
        original = row_fills.RowFill.fill
        monkeypatch.setattr(row_fills, "DEFERRED_ROWS", 1)
        monkeypatch.setattr(row_fills.RowFill, "fill", lambda self, lo, hi: filled.append(hi - lo) or
                            original(self, lo, hi))
        deferred = _score(inputs, metrics)
    finally:
        numba.set_num_threads(threads)
    # the labels; and the columns, but for the loss of probabilities, which reads them where they lie
    fills_per_batch = 1 if case == "binary" or (case == "columns_k10" and metrics == "loss") else 2
    assert sum(filled) == fills_per_batch * CUTS[-1]  # every row filled once
    assert deferred == whole


def test_a_bad_row_in_a_deferred_batch_is_named_with_its_values(monkeypatch):
    inputs = _inputs("columns_k10")
    inputs["labels"][ROW_BLOCK + 5] = 10
    inputs["probs"][3][2 * ROW_BLOCK + 9] = np.nan
    messages = []
    for deferred_rows in (1 << 62, 1):
        monkeypatch.setattr(row_fills, "DEFERRED_ROWS", deferred_rows)
        with pytest.raises(InvalidRowError) as raised:
            streamdiv.Accumulator(ignore_label=-1).update(probs=inputs["probs"], labels=inputs["labels"])
        messages.append(str(raised.value))
    assert messages[0] == messages[1] and f"row {ROW_BLOCK + 5}," in messages[0] and "10" in messages[0]


def test_short_batches_and_int64_labels_are_not_deferred():
    fills: list[row_fills.RowFill] = []
    labels = np.arange(10, dtype=np.int64)
    assert row_fills.cast_labels(labels, fills) is labels and not fills
    short = np.arange(10, dtype=np.int32)
    assert row_fills.cast_labels(short, fills).dtype == np.int64 and not fills
    assert row_fills.filler(fills) is None
