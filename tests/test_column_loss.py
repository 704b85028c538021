"""kernels.column_loss: the loss of probabilities held one column per class, read where the columns lie, gives
the state (bit for bit) and the errors of the same rows given as one rows x K array."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import streamdiv
from streamdiv import row_fills
from streamdiv.errors import InvalidRowError
from streamdiv.kernels.layout import ROW_BLOCK

CUTS = (7, 1000, 1000 + 3 * ROW_BLOCK + 777)  # a tiny batch, one shorter than a block, one with full blocks


def _rows(classes: int, dtype: str, seed: int = 5) -> dict:
    """Probabilities with every kind of bad row: NaN, out of [0, 1], a label outside [0, K), an ignored label;
    weights (one negative) and groups."""
    rng = np.random.default_rng(seed)
    n = CUTS[-1]
    z = rng.normal(0.0, 2.0, (n, classes))
    q = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(dtype)
    q[3, 0] = np.nan
    q[1500, classes - 1] = 1.25
    q[1501, 0] = -0.5
    q[1501, classes - 1] = np.nan  # NaN wins over out of range
    q[2 * ROW_BLOCK + 11, 0] = 0.0  # an infinite cross-entropy where the label is 0
    labels = rng.integers(0, classes, n)
    labels[2 * ROW_BLOCK + 11] = 0
    labels[::997] = -1  # ignored
    labels[5000] = classes
    weights = rng.exponential(1.0, n)
    weights[7000] = -1.0
    return {"probs": q, "labels": labels, "weights": weights, "groups": rng.integers(0, 3, n)}


def _state(inputs: dict, per_class: bool, **options) -> bytes:
    accumulator = streamdiv.Accumulator(metrics="loss", ignore_label=-1, on_invalid="skip", **options)
    start = 0
    for stop in CUTS:
        part = {role: value[start:stop] for role, value in inputs.items()}
        if per_class:
            part["probs"] = [np.ascontiguousarray(part["probs"][:, k]) for k in range(part["probs"].shape[1])]
        accumulator.update(**part)
        start = stop
    return accumulator.to_bytes()


@pytest.mark.parametrize("classes", [1, 3, 10, 40])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("roles", [("labels",), ("labels", "weights"), ("labels", "weights", "groups")])
def test_columns_give_the_bits_of_the_stacked_rows(classes, dtype, roles):
    rows = _rows(classes, dtype)
    inputs = {"probs": rows["probs"], **{role: rows[role] for role in roles}}
    threads = numba.get_num_threads()
    try:
        for count in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(count)
            assert _state(inputs, True) == _state(inputs, False)
            assert _state(inputs, True, eps=1e-4) == _state(inputs, False, eps=1e-4)
    finally:
        numba.set_num_threads(threads)


def test_the_columns_are_read_where_they_lie(monkeypatch):
    """The loss of probabilities never interleaves the columns; the full report still does."""
    interleaved = []
    original = row_fills.RowFill.fill
    monkeypatch.setattr(row_fills.RowFill, "fill", lambda self, lo, hi: (interleaved.append(hi - lo)
                                                                         if self.interleaves else None)
                        or original(self, lo, hi))
    rows = _rows(10, "float32")
    columns = [np.ascontiguousarray(rows["probs"][:, k]) for k in range(10)]
    loss = streamdiv.Accumulator(metrics="loss", on_invalid="skip", ignore_label=-1)
    loss.update(probs=columns, labels=rows["labels"])
    assert interleaved == [] and loss.rows == len(rows["labels"])
    streamdiv.Accumulator(on_invalid="skip", ignore_label=-1).update(probs=columns, labels=rows["labels"])
    assert sum(interleaved) == len(rows["labels"])


@pytest.mark.parametrize("bad", ["logits", "nan", "label"])
def test_a_bad_row_is_named_as_for_the_stacked_rows(bad):
    """The error names the row, the column and the values read from the columns themselves (pred is never
    filled): a row of logits gets the hint."""
    rng = np.random.default_rng(2)
    q = rng.dirichlet(np.ones(4), 50_000).astype(np.float32)
    labels = rng.integers(0, 4, 50_000)
    row = 40_001
    if bad == "logits":
        q[row] = [2.5, -1.0, 0.3, 4.0]
    elif bad == "nan":
        q[row, 2] = np.nan
    else:
        labels[row] = 9
    messages = []
    for probs in (q, [np.ascontiguousarray(q[:, k]) for k in range(4)]):
        with pytest.raises(InvalidRowError) as raised:
            streamdiv.Accumulator(metrics="loss").update(probs=probs, labels=labels)
        messages.append(str(raised.value))
    assert f"row {row}," in messages[1]
    assert ("look like logits" in messages[1]) == (bad == "logits")
    # the stacked input's column is the one list column; the per-class columns' value is the row's list
    assert messages[0].split("column")[0] == messages[1].split("column")[0]
