"""Compile the kernels ahead of time, for every layout they specialise on (container images, CI).

numba compiles a kernel on its first call, once per tuple of argument *types*, whatever path the rows
take, and ``cache=True`` keeps the machine code on disk: next to the sources in ``__pycache__``, under
``NUMBA_CACHE_DIR`` when that is set, or in a per-user directory when the package directory is not
writable.  A later process that finds it there loads it instead of compiling.

Which types reach the kernels is decided by :mod:`streamdiv.columns`, whatever the input: predictions and
soft targets are read-only C-contiguous float32 or float64 arrays (float16 is upcast to float32; integers
and decimals to float64; per-class columns are stacked into one such array by ``kernels.interleave``, or,
for the loss of probabilities, read where they lie by ``kernels.column_loss``; a variable list's int32 or
int64 offsets are checked for a common length by ``kernels.list_offsets``), 1-D for the binary layout;
labels and group ids are int64, weights float64, and an absent target, weight or group column is an empty
array of the same type as a present one.  Each input family (hard labels with probabilities, with logits,
the loss alone, the loss of per-class columns, soft targets, the per-row path, binary labels, the binary
loss, binary soft targets, and the label-free probabilities, logits, per-row path and binary column) has its
own entry point (``streamdiv.kernels.blocks``), compiled once per prediction and target dtype it meets; the
other settings (eps, weights and groups present, the bin count) are runtime values.  :data:`LAYOUTS` runs
every family with float32 and float64 predictions (the Gaussian kind with float32 columns); a layout whose
types are already compiled costs milliseconds.  A last step decodes a small Parquet file with
``streamdiv.parquet_decode``, whose kernels the in-memory layouts never reach.  ``tests/test_cli.py`` checks
that after a warm-up no input compiles anything new.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .evaluate import evaluate
from .parquet_decode import decode_row_group
from .parquet_part import list_array

CLASSES = ("a", "b", "c")
# Four rows, each summing to 1 exactly in float32 and float64: no layout warns about unnormalized rows.
PROBABILITIES = np.array([[0.5, 0.25, 0.25], [0.125, 0.75, 0.125], [0.25, 0.25, 0.5], [0.5, 0.5, 0.0]])
TARGETS = np.array([[0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5], [0.5, 0.25, 0.25]])
LABELS = np.array([0, 1, 2, 1], dtype=np.int32)
BINARY_PROBABILITIES = np.array([0.25, 0.75, 0.5, 0.125])
BINARY_TARGETS = np.array([0.0, 1.0, 0.5, 0.25])


@dataclass(frozen=True)
class WarmupLayout:
    """One input layout: the columns it is made of and the options of the run that scores it."""

    name: str
    prediction: str = "probs"  # or "logits"
    prediction_dtype: str = "float32"
    target_dtype: str | None = None  # soft targets of this dtype, or hard labels when None
    binary: bool = False  # one positive-class column instead of a list of K classes
    per_class: bool = False  # one column per class instead of one list column
    container: str = "fixed_size_list"  # the list column's Arrow type: fixed_size_list, list or large_list
    weights: bool = False
    groups: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # evaluate()'s metrics=, eps=, renormalize=
    gaussian: bool = False  # the Gaussian kind: mean and log variance (prediction_dtype) against a prior
    label_free: bool = False  # the predictions alone: neither labels nor targets


LAYOUTS: tuple[WarmupLayout, ...] = (
    # the eight (kernel, prediction dtype, target dtype) specialisations, each first reached here
    WarmupLayout("hard labels, float32 probabilities"),
    WarmupLayout("hard labels, float64 probabilities", prediction_dtype="float64"),
    WarmupLayout("soft targets, float32 probabilities, float32 targets", target_dtype="float32"),
    WarmupLayout("soft targets, float64 probabilities, float32 targets", prediction_dtype="float64",
                 target_dtype="float32"),
    WarmupLayout("binary, float32 probabilities, hard labels", binary=True),
    WarmupLayout("binary, float64 probabilities, hard labels", binary=True, prediction_dtype="float64"),
    WarmupLayout("binary, float32 probabilities, float32 targets", binary=True, target_dtype="float32"),
    WarmupLayout("binary, float64 probabilities, float32 targets", binary=True, prediction_dtype="float64",
                 target_dtype="float32"),
    # the rest share those types: runtime flags and other storage of the same arrays
    WarmupLayout("hard labels, float32 logits", prediction="logits"),
    WarmupLayout("hard labels, float64 logits", prediction="logits", prediction_dtype="float64"),
    WarmupLayout("hard labels, float32 per-class columns", per_class=True),  # kernels.interleave, per dtype
    WarmupLayout("hard labels, float64 per-class columns", per_class=True, prediction_dtype="float64"),
    # the loss of per-class probabilities reads the columns where they lie (kernels.column_loss), per dtype
    WarmupLayout("hard labels, float32 per-class columns, loss metrics", per_class=True,
                 options={"metrics": "loss"}),
    WarmupLayout("hard labels, float64 per-class columns, loss metrics", per_class=True,
                 prediction_dtype="float64", options={"metrics": "loss"}),
    WarmupLayout("hard labels, weights and groups", weights=True, groups=True),
    # variable lists: their offsets (int32 for list, int64 for large_list) go through kernels.list_offsets
    WarmupLayout("hard labels, list column", container="list"),
    WarmupLayout("hard labels, large list column", container="large_list"),
    WarmupLayout("hard labels, loss metrics", options={"metrics": "loss"}),
    WarmupLayout("hard labels, loss metrics, weights and groups", weights=True, groups=True,
                 options={"metrics": "loss"}),
    WarmupLayout("hard labels, logits, loss metrics", prediction="logits", options={"metrics": "loss"}),
    WarmupLayout("hard labels, eps", options={"eps": 1e-6}),
    WarmupLayout("hard labels, renormalize", options={"renormalize": True}),
    WarmupLayout("soft targets, float32 probabilities, float64 targets", target_dtype="float64"),
    WarmupLayout("soft targets, float64 probabilities, float64 targets", prediction_dtype="float64",
                 target_dtype="float64"),
    WarmupLayout("soft targets, float32 logits", prediction="logits", target_dtype="float32"),
    WarmupLayout("soft targets, renormalize", target_dtype="float32", options={"renormalize": True}),
    WarmupLayout("binary, float32 logits", binary=True, prediction="logits"),
    WarmupLayout("binary, float32 probabilities, float64 targets", binary=True, target_dtype="float64"),
    WarmupLayout("binary, float64 probabilities, float64 targets", binary=True, prediction_dtype="float64",
                 target_dtype="float64"),
    WarmupLayout("binary, loss metrics", binary=True, options={"metrics": "loss"}),
    # the families' other dtypes: each (entry point, prediction dtype, target dtype) first reached here
    WarmupLayout("hard labels, float64 probabilities, loss metrics", prediction_dtype="float64",
                 options={"metrics": "loss"}),
    WarmupLayout("hard labels, float64 probabilities, renormalize", prediction_dtype="float64",
                 options={"renormalize": True}),
    WarmupLayout("soft targets, float64 logits, float32 targets", prediction="logits", prediction_dtype="float64",
                 target_dtype="float32"),
    WarmupLayout("soft targets, float32 logits, float64 targets", prediction="logits", target_dtype="float64"),
    WarmupLayout("binary, float64 probabilities, loss metrics", binary=True, prediction_dtype="float64",
                 options={"metrics": "loss"}),
    WarmupLayout("binary, weights and groups", binary=True, weights=True, groups=True),
    # the predictions alone: each label-free entry point with float32 and float64 predictions
    WarmupLayout("label-free, float32 probabilities", label_free=True),
    WarmupLayout("label-free, float64 probabilities", prediction_dtype="float64", label_free=True),
    WarmupLayout("label-free, float32 logits", prediction="logits", label_free=True),
    WarmupLayout("label-free, float64 logits", prediction="logits", prediction_dtype="float64", label_free=True),
    WarmupLayout("label-free, float32 probabilities, renormalize", label_free=True, options={"renormalize": True}),
    WarmupLayout("label-free, float64 probabilities, renormalize", prediction_dtype="float64", label_free=True,
                 options={"renormalize": True}),
    WarmupLayout("label-free, binary, float32 probabilities", binary=True, label_free=True),
    WarmupLayout("label-free, binary, float64 probabilities", binary=True, prediction_dtype="float64",
                 label_free=True),
    WarmupLayout("label-free, weights and groups", weights=True, groups=True, label_free=True),
    # the Gaussian kind: its one family, whose prior, weights and groups are runtime values
    WarmupLayout("gaussian, float32 mean and log variance, prior, weights and groups", gaussian=True, weights=True,
                 groups=True),
)


def _distribution(values: np.ndarray, dtype: str, per_class: bool, prefix: str,
                  container: str = "fixed_size_list") -> dict[str, pa.Array]:
    """Columns of a distribution as a file holds them: one list column (of ``container``'s type), one column
    per class, or (1-D values) one float column."""
    values = values.astype(dtype)
    if values.ndim == 1:
        return {prefix: pa.array(values)}
    if per_class:
        return {f"{prefix}_{name}": pa.array(values[:, k]) for k, name in enumerate(CLASSES)}
    value_type = pa.from_numpy_dtype(values.dtype)
    kind = (pa.list_(value_type, values.shape[1]) if container == "fixed_size_list"
            else {"list": pa.list_, "large_list": pa.large_list}[container](value_type))
    return {prefix: list_array(values, kind)}


def _table_and_arguments(layout: WarmupLayout) -> tuple[pa.Table, dict[str, Any]]:
    """A four-row table of ``layout`` and the evaluate() arguments that name its columns."""
    if layout.gaussian:
        columns = {name: _distribution(values, layout.prediction_dtype, False, name)[name]
                   for name, values in (("mean", PROBABILITIES), ("log_variance", -TARGETS),
                                        ("prior_mean", TARGETS), ("prior_log_variance", PROBABILITIES))}
        arguments: dict[str, Any] = {name: name for name in columns}
    else:
        columns, arguments = _classification_columns(layout)
    if layout.weights:
        columns["weight"] = pa.array([0.5, 1.0, 2.0, 1.0])
        arguments["weights"] = "weight"
    if layout.groups:
        columns["region"] = pa.array(["eu", "us", "eu", "apac"]).dictionary_encode()
        arguments["by"] = "region"
    return pa.table(columns), arguments | layout.options


def _classification_columns(layout: WarmupLayout) -> tuple[dict[str, pa.Array], dict[str, Any]]:
    """The prediction and label (or target) columns of a classification layout, and their evaluate() arguments."""
    probabilities = BINARY_PROBABILITIES if layout.binary else PROBABILITIES
    if layout.prediction == "logits":
        with np.errstate(divide="ignore"):  # log 0 = -inf is a valid logit
            probabilities = (np.log(probabilities / (1 - probabilities)) if layout.binary else np.log(probabilities))
    columns = _distribution(probabilities, layout.prediction_dtype, layout.per_class, "prediction", layout.container)
    arguments: dict[str, Any] = {layout.prediction: "prediction_*" if layout.per_class else "prediction"}
    if layout.label_free:
        return columns, arguments
    if layout.target_dtype is None:
        columns["label"] = pa.array(LABELS % 2 if layout.binary else LABELS)
        arguments["labels"] = "label"
    else:
        columns |= _distribution(BINARY_TARGETS if layout.binary else TARGETS, layout.target_dtype,
                                 layout.per_class, "target")
        arguments["targets"] = "target_*" if layout.per_class else "target"
    return columns, arguments


def warm_up(progress: Callable[[str, float | None], None] | None = None) -> dict[str, float]:
    """Score a four-row table of every layout in :data:`LAYOUTS` with :func:`streamdiv.evaluate`, which
    compiles each kernel specialisation not yet in numba's cache (or loads it from there), then decode a small
    Parquet file (the step named :data:`PARQUET_STEP`).

    ``progress(name, None)`` is called as a layout starts and ``progress(name, seconds)`` when it is done.
    Returns the seconds each layout took, by name.
    """
    steps = [(layout.name, functools.partial(_score_layout, layout)) for layout in LAYOUTS]
    seconds = {}
    for name, step in steps + [(PARQUET_STEP, _decode_parquet)]:
        if progress is not None:
            progress(name, None)
        started = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - started
        if progress is not None:
            progress(name, seconds[name])
    return seconds


PARQUET_STEP = "parquet decoder"


def _score_layout(layout: WarmupLayout) -> None:
    table, arguments = _table_and_arguments(layout)
    evaluate(table, **arguments)


def _decode_parquet() -> None:
    """Decode a small Parquet file with every column type that streamdiv.parquet_decode reads (flat columns
    of 4- and 8-byte values, lists of float32 and float64), so that its kernels are compiled too: the scoring
    layouts above come from memory and never reach it."""
    rows = np.tile(PROBABILITIES, (2, 1))  # eight rows
    labels = np.tile(LABELS, 2)
    table = pa.table({"flat32": pa.array(rows[:, 0], pa.float32()), "flat64": pa.array(rows[:, 0]),
                      "labels32": pa.array(labels, pa.int32()), "labels64": pa.array(labels, pa.int64()),
                      "list32": list_array(rows.astype(np.float32), pa.list_(pa.float32())),
                      "list64": list_array(rows, pa.list_(pa.float64()))})
    with tempfile.TemporaryDirectory(prefix="streamdiv-warmup-") as directory:
        # compressed and not: a decompressed page is a writable array, a page read where it lies is not, and
        # numba compiles the level checks for each
        for compression in ("snappy", "none"):
            path = os.path.join(directory, f"warmup-{compression}.parquet")
            pq.write_table(table, path, compression=compression)
            decode_row_group(path, pq.ParquetFile(path).metadata, 0, table.column_names)


def cached_kernels() -> dict[str, Any]:
    """The numba dispatchers with an on-disk cache in streamdiv's loaded modules, by qualified name."""
    found = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "streamdiv" or module_name.startswith("streamdiv.")):
            continue
        for value in vars(module).values():
            # numba internals: a Dispatcher's _cache; without cache=True it is a NullCache, with no cache_path
            if hasattr(value, "signatures") and getattr(getattr(value, "_cache", None), "cache_path", None):
                found[f"{value.py_func.__module__}.{value.py_func.__qualname__}"] = value
    return found


def cache_locations() -> list[str]:
    """Where numba keeps (and looks for) the kernels' compiled code."""
    return sorted({kernel._cache.cache_path for kernel in cached_kernels().values()})
