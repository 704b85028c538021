"""Write the fuzz target's seed corpus into fuzz/corpus/: small valid inputs of every kind and column choice
that fuzz/fuzz_inputs.py reads, each prefixed by the byte that selects how it is read.

Run: python fuzz/make_corpus.py   (deterministic: the same files every time; a few KB in all)
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fuzz_scoring import COLUMN_CHOICES, CSV_COLUMN_CHOICES, KINDS  # noqa: E402

import streamdiv  # noqa: E402

ROWS = 6
NUM_CLASSES = 3
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def table(seed: int, awkward: bool) -> pa.Table:
    """Every column the column choices name; ``awkward`` adds a NaN, a null list, a bad label and a null
    weight, so that the seeds reach the invalid-row paths too."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (ROWS, NUM_CLASSES))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, NUM_CLASSES, ROWS)
    targets = np.eye(NUM_CLASSES)[labels] * 0.8 + 0.2 / NUM_CLASSES
    weights = rng.random(ROWS) + 0.5
    prob_lists = [list(row) for row in probs.astype(np.float32)]
    label_values: list = labels.tolist()
    weight_values: list = weights.tolist()
    if awkward:
        prob_lists[1][0] = float("nan")
        prob_lists[2] = None
        label_values[3] = NUM_CLASSES + 4
        weight_values[4] = None
    columns = {
        "probs": pa.array(prob_lists, pa.list_(pa.float32())),
        "logits": pa.array(logits.tolist(), pa.list_(pa.float64(), NUM_CLASSES)),
        "target": pa.array(targets.tolist(), pa.large_list(pa.float64())),
        "label": pa.array(label_values, pa.int64()),
        "w": pa.array(weight_values, pa.float64()),
        "g": pa.array([("a", "b")[i % 2] for i in range(ROWS)]),
    }
    for k in range(NUM_CLASSES):
        columns[f"p_{k}"] = pa.array(probs[:, k])
    return pa.table(columns)


def encoded(kind: str, data: pa.Table) -> bytes:
    sink = io.BytesIO()
    if kind == "parquet":
        pq.write_table(data, sink, row_group_size=ROWS // 2)
    elif kind == "arrow":
        with pa.ipc.new_file(sink, data.schema) as writer:
            writer.write_table(data, max_chunksize=ROWS // 2)
    elif kind == "arrows":
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data, max_chunksize=ROWS // 2)
    elif kind == "csv":
        pa_csv.write_csv(data.select(["label", "w", "g"] + [f"p_{k}" for k in range(NUM_CLASSES)]), sink)
    return sink.getvalue()


def state(seed: int, choice: dict[str, str]) -> bytes:
    data = table(seed, awkward=False)
    # few bins and the loss metrics for the soft case: a state's histograms are most of its bytes
    accumulator = streamdiv.Accumulator(num_classes=NUM_CLASSES, bins=4,
                                        metrics="loss" if "targets" in choice else "all")
    probs = np.array(data["probs"].to_pylist())
    if "targets" in choice:
        accumulator.update(probs=probs, targets=np.array(data["target"].to_pylist()),
                           weights=data["w"].to_numpy())
    else:
        accumulator.update(probs=probs, labels=data["label"].to_numpy(),
                           groups=data["g"] if "by" in choice else None)
    return accumulator.to_bytes()


def main() -> None:
    os.makedirs(CORPUS, exist_ok=True)
    for index, kind in enumerate(KINDS):
        choices = CSV_COLUMN_CHOICES if kind == "csv" else COLUMN_CHOICES
        for choice_index, choice in enumerate(choices):
            for on_invalid in (0,) if kind == "state" else (0, 1):  # a state reads alike either way
                selector = index + len(KINDS) * (on_invalid + 2 * choice_index)
                if kind == "state":
                    payload = state(choice_index, choice)
                else:
                    payload = encoded(kind, table(choice_index, awkward=bool(on_invalid)))
                name = f"{kind}-{choice_index}-{('error', 'skip')[on_invalid]}"
                with open(os.path.join(CORPUS, name), "wb") as handle:
                    handle.write(bytes([selector]) + payload)


if __name__ == "__main__":
    main()
