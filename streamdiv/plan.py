"""Which columns to read and what each means: the user's column arguments resolved against a schema."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import pyarrow as pa

from .errors import MissingColumnError, SchemaError
from .windows import check_time_type


@dataclass
class ColumnPlan:
    """Resolved columns.  A distribution is one list/scalar column (``str``) or one column per class (``list``)."""

    prediction_role: str  # "probs" or "logits"
    prediction: str | list[str]
    labels: str | None = None
    targets: str | list[str] | None = None
    weights: str | None = None
    by: list[str] = field(default_factory=list)
    class_names: tuple[str, ...] | None = None
    time: str | None = None  # the time column of a windowed run

    @property
    def columns(self) -> list[str]:
        """Every column to read, each once, in a stable order."""
        names: list[str] = []
        for spec in (self.prediction, self.labels, self.targets, self.weights, self.by, self.time):
            for name in ([spec] if isinstance(spec, str) else (spec or [])):
                if name not in names:
                    names.append(name)
        return names

    def column_names(self) -> dict[str, str]:
        """Display names per role, for error messages."""
        return {"prediction": _display(self.prediction), "labels": _display(self.labels),
                "targets": _display(self.targets), "weights": _display(self.weights), "time": _display(self.time)}

    def extract(self, batch: pa.RecordBatch) -> tuple[dict[str, Any], list[pa.Array]]:
        """The batch's arrays for :func:`streamdiv.columns.prepare`, and its group columns."""
        def get(spec: str | list[str] | None) -> Any:
            if spec is None:
                return None
            if isinstance(spec, str):
                return batch.column(spec)
            return [batch.column(name) for name in spec]

        inputs = {self.prediction_role: get(self.prediction), "labels": get(self.labels),
                  "targets": get(self.targets), "weights": get(self.weights)}
        if self.time is not None:
            inputs["time"] = batch.column(self.time)
        return inputs, [batch.column(name) for name in self.by]


@dataclass
class GaussianPlan:
    """Resolved columns of the Gaussian kind: each role one list/scalar column (``str``) or one column per
    dimension (``list``); the prior's are None for the standard normal."""

    mean: str | list[str]
    log_variance: str | list[str]
    prior_mean: str | list[str] | None = None
    prior_log_variance: str | list[str] | None = None
    weights: str | None = None
    by: list[str] = field(default_factory=list)
    class_names: None = None  # the Gaussian kind has no classes
    time: str | None = None  # the time column of a windowed run

    def _specs(self) -> dict[str, str | list[str] | None]:
        specs = {"mean": self.mean, "log_variance": self.log_variance, "prior_mean": self.prior_mean,
                 "prior_log_variance": self.prior_log_variance, "weights": self.weights}
        return specs | ({"time": self.time} if self.time is not None else {})

    @property
    def columns(self) -> list[str]:
        """Every column to read, each once, in a stable order."""
        names: list[str] = []
        for spec in [*self._specs().values(), self.by]:
            for name in ([spec] if isinstance(spec, str) else (spec or [])):
                if name not in names:
                    names.append(name)
        return names

    def column_names(self) -> dict[str, str]:
        """Display names per role, for error messages."""
        return {role: _display(spec) for role, spec in self._specs().items()}

    def extract(self, batch: pa.RecordBatch) -> tuple[dict[str, Any], list[pa.Array]]:
        """The batch's arrays for :func:`streamdiv.gaussian_columns.prepare_gaussian`, and its group columns."""
        def get(spec: str | list[str] | None) -> Any:
            if spec is None:
                return None
            return batch.column(spec) if isinstance(spec, str) else [batch.column(name) for name in spec]

        return {role: get(spec) for role, spec in self._specs().items()}, [batch.column(name) for name in self.by]


def resolve_gaussian(schema: pa.Schema, *, mean: Any, log_variance: Any, prior_mean: Any = None,
                     prior_log_variance: Any = None, weights: str | None = None, by: Any = None,
                     time: str | None = None) -> GaussianPlan:
    """Check the Gaussian kind's columns against ``schema`` (globs expand into per-dimension columns): every
    role whose dimensions the schema tells (a fixed-size list, per-dimension columns, one float column) must
    have the mean's."""
    if mean is None or log_variance is None:
        raise SchemaError("name both mean= and log_variance= (the Gaussian kind's columns)")
    roles = {"mean": mean, "log_variance": log_variance, "prior_mean": prior_mean,
             "prior_log_variance": prior_log_variance}
    resolved = {role: _distribution(schema, spec, role)[0] for role, spec in roles.items() if spec is not None}
    widths = {role: _width(schema, spec) for role, spec in resolved.items()}
    for role, width in widths.items():
        if width is not None and widths["mean"] is not None and width != widths["mean"]:
            raise SchemaError(f"{role}={_display(resolved[role])!r} has {width} dimensions per row but "
                              f"mean={_display(resolved['mean'])!r} has {widths['mean']}: they must agree")
    if weights is not None:
        _require(schema, weights)
    by_columns = [by] if isinstance(by, str) else list(by or [])
    for name in by_columns:
        _require(schema, name)
    return GaussianPlan(resolved["mean"], resolved["log_variance"], resolved.get("prior_mean"),
                        resolved.get("prior_log_variance"), weights, by_columns, time=_time_column(schema, time))


def _time_column(schema: pa.Schema, time: str | None) -> str | None:
    """The time column, checked to exist and to hold timestamps or dates."""
    if time is not None:
        _require(schema, time)
        check_time_type(time, schema.field(time).type)
    return time


def _width(schema: pa.Schema, spec: str | list[str]) -> int | None:
    """Values per row that a column's type (or a list of per-dimension columns) fixes; None for a list column
    of any length."""
    if not isinstance(spec, str):
        return len(spec)
    kind = schema.field(spec).type
    if pa.types.is_fixed_size_list(kind):
        return kind.list_size
    return None if pa.types.is_list(kind) or pa.types.is_large_list(kind) else 1


def _display(spec: str | list[str] | None) -> str:
    if spec is None:
        return ""
    return spec if isinstance(spec, str) else ",".join(spec)


def resolve(schema: pa.Schema, *, probs: Any = None, logits: Any = None, labels: str | None = None,
            targets: Any = None, weights: str | None = None, by: Any = None,
            class_names: Sequence[str] | None = None, mean: Any = None, log_variance: Any = None,
            prior_mean: Any = None, prior_log_variance: Any = None,
            time: str | None = None) -> ColumnPlan | GaussianPlan:
    """Check the named columns against ``schema``; expand globs (``"p_*"``) into per-class columns.  With
    neither ``labels`` nor ``targets`` the predictions are scored alone (label-free).  With
    ``mean``/``log_variance`` (the Gaussian kind) see :func:`resolve_gaussian`; the classification roles are
    then refused.  ``time`` names a windowed run's time column (a timestamp or a date)."""
    gaussian = {"mean": mean, "log_variance": log_variance, "prior_mean": prior_mean,
                "prior_log_variance": prior_log_variance}
    if any(spec is not None for spec in gaussian.values()):
        mixed = [role for role, spec in (("probs", probs), ("logits", logits), ("labels", labels),
                                         ("targets", targets), ("class_names", class_names)) if spec is not None]
        if mixed:
            raise SchemaError(f"mean=, log_variance= and the prior's columns (the Gaussian kind) do not go with "
                              f"{', '.join(role + '=' for role in mixed)}: score one kind of input at a time")
        return resolve_gaussian(schema, **gaussian, weights=weights, by=by, time=time)
    if (probs is None) == (logits is None):
        raise SchemaError("name exactly one of probs= (probabilities) and logits= (the prediction columns)")
    if labels is not None and targets is not None:
        raise SchemaError("name at most one of labels= (hard labels) and targets= (soft targets); with neither, "
                          "the predictions are scored alone")
    role = "probs" if probs is not None else "logits"
    prediction, derived_names = _distribution(schema, probs if probs is not None else logits, role)
    target_columns = None
    if targets is not None:
        target_columns, _ = _distribution(schema, targets, "targets")
    for name in [labels, weights]:
        if name is not None:
            _require(schema, name)
    by_columns = [by] if isinstance(by, str) else list(by or [])
    for name in by_columns:
        _require(schema, name)
    names = tuple(str(n) for n in class_names) if class_names is not None else derived_names
    return ColumnPlan(role, prediction, labels, target_columns, weights, by_columns, names, _time_column(schema, time))


def _require(schema: pa.Schema, name: str) -> None:
    if schema.get_field_index(name) < 0:
        raise MissingColumnError(f"no column named {name!r}; the columns are: {', '.join(schema.names)}")


def _distribution(schema: pa.Schema, spec: Any, role: str) -> tuple[str | list[str], tuple[str, ...] | None]:
    """A list/scalar column name, or per-class columns with their class names."""
    if isinstance(spec, str) and any(ch in spec for ch in "*?["):
        matched = [name for name in schema.names if fnmatch.fnmatchcase(name, spec)]
        if not matched:
            raise MissingColumnError(f"{role}={spec!r} matches no column; the columns are: "
                                     f"{', '.join(schema.names)}")
        return matched, _glob_class_names(spec, matched)
    if isinstance(spec, str):
        _require(schema, spec)
        return spec, None
    names = [str(name) for name in spec]
    for name in names:
        _require(schema, name)
    return names, tuple(names)


def _glob_class_names(pattern: str, matched: list[str]) -> tuple[str, ...]:
    """The part of each name that a single ``*`` matched (``p_*`` over ``p_cat`` gives ``cat``)."""
    if pattern.count("*") != 1 or "?" in pattern or "[" in pattern:
        return tuple(matched)
    prefix, suffix = pattern.split("*")
    # DOTALL: fnmatch's * matches a newline too, and a column name may hold one (a quoted CSV header)
    regex = re.compile(re.escape(prefix) + "(.*)" + re.escape(suffix) + r"\Z", re.DOTALL)
    return tuple(regex.match(name).group(1) for name in matched)  # type: ignore[union-attr]


# ---- guessing, for the command line's `inspect` and for `score` without column options
PROBABILITY_WORDS = ("prob", "proba", "probs", "probabilities", "pred", "preds", "prediction", "predictions",
                     "score", "scores", "output", "p", "yhat", "y_pred")
LOGIT_WORDS = ("logit", "logits")
LABEL_WORDS = ("label", "labels", "y", "y_true", "truth", "target", "class", "gt", "actual", "outcome")
SOFT_TARGET_WORDS = ("target", "targets", "soft_target", "soft_targets", "teacher", "soft_label", "soft_labels")
WEIGHT_WORDS = ("weight", "weights", "sample_weight", "w")


def guess(schema: pa.Schema, *, label_prefixes: bool = True) -> dict[str, Any]:
    """Guess the role of each column from its name and type: {"probs"|"logits", "labels"|"targets", "weights"}.

    A name matches a role's word exactly (case-insensitive) or, failing that, starts with it; with
    ``label_prefixes`` False a label or target column must match exactly (``score`` takes no 'year' for 'y',
    no 'target_date' for 'target': it scores the predictions alone rather than against a column that only
    looks like labels; ``inspect`` still suggests one)."""
    found: dict[str, Any] = {}
    fields = list(schema)

    def first(words: tuple[str, ...], test: Any, prefixes: bool = True) -> str | None:
        for word in words:
            for f in fields:
                if f.name.lower() == word and test(f.type):
                    return f.name
        for word in words if prefixes else ():
            for f in fields:
                if f.name.lower().startswith(word) and test(f.type):
                    return f.name
        return None

    logits = first(LOGIT_WORDS, _is_float_list) or first(LOGIT_WORDS, pa.types.is_floating)
    if logits:
        found["logits"] = logits
    else:
        probs = first(PROBABILITY_WORDS, _is_float_list)
        wide = _wide_probability_glob(schema)
        if probs:
            found["probs"] = probs
        elif wide:
            found["probs"] = wide
        else:
            scalar = first(PROBABILITY_WORDS, pa.types.is_floating)
            if scalar:
                found["probs"] = scalar
    taken = {found.get("probs"), found.get("logits")}
    soft = first(SOFT_TARGET_WORDS, _is_float_list, label_prefixes)
    if soft and soft not in taken:
        found["targets"] = soft
    else:
        label = first(LABEL_WORDS, lambda t: pa.types.is_integer(t) or pa.types.is_boolean(t)
                      or pa.types.is_string(t) or pa.types.is_dictionary(t), label_prefixes)
        if label:
            found["labels"] = label
    weight = first(WEIGHT_WORDS, lambda t: pa.types.is_floating(t) or pa.types.is_integer(t))
    if weight and weight not in taken:
        found["weights"] = weight
    return found


def _is_float_list(kind: pa.DataType) -> bool:
    return ((pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind))
            and pa.types.is_floating(kind.value_type))


def _wide_probability_glob(schema: pa.Schema) -> str | None:
    for prefix in ("p_", "prob_", "proba_", "probability_", "score_"):
        matched = [f for f in schema if f.name.startswith(prefix) and pa.types.is_floating(f.type)]
        if len(matched) >= 2:
            return prefix + "*"
    return None
