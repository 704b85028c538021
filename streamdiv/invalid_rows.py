"""The error of an invalid row: its file, row, column, value and what is wrong with it, and the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import columns
from .errors import InvalidRowError
from .kernels.status import PREDICTION_OUT_OF_RANGE, PROBLEMS

if TYPE_CHECKING:
    from .accumulator import Location


def invalid_row_error(prepared: columns.Prepared, row: int, location: Location, n_bad: int) -> InvalidRowError:
    code = int(prepared.status[row])
    role, reason = PROBLEMS[code]
    value = _value_at(prepared.raw.get(role), row)
    column = location.column_names.get(role, role)
    file_row = location.first_row + row
    more = f" ({n_bad - 1} more bad rows in this batch)" if n_bad > 1 else ""
    hint = ("These look like logits: pass them with logits= (--logits). "
            if code == PREDICTION_OUT_OF_RANGE and _looks_like_logits(prepared, row) else "")
    message = (f"{location.path}: row {file_row}, column {column!r}: the value {value!r} {reason}{more}. {hint}"
               f"Fix the data, or skip and count such rows with on_invalid='skip' (--on-invalid skip).")
    return InvalidRowError(message, path=location.path, row=file_row, column=column, value=value, reason=reason)


def _looks_like_logits(prepared: columns.Prepared, row: int) -> bool:
    """Whether a probability row refused for a value outside [0, 1] looks like logits: every value finite, and
    one beyond [-tolerance, 1 + tolerance] (the row-sum tolerance of its storage dtype), farther out than
    rounding takes a probability."""
    values = prepared.prediction_row(row)
    tolerance = prepared.prediction_tolerance
    return bool(np.isfinite(values).all() and ((values < -tolerance) | (values > 1.0 + tolerance)).any())


def _value_at(raw: Any, row: int) -> Any:
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)):
        return [_value_at(column, row) for column in raw]
    value = raw[row]
    if hasattr(value, "as_py"):
        return value.as_py()
    return value.tolist() if hasattr(value, "tolist") else value
