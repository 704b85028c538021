"""A batch of the Gaussian kind (a VAE's posterior mean and log variance, optionally a prior's) checked and
converted to the numpy arrays its kernel reads, with the same column layouts and row checks as predictions
(streamdiv.columns)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .columns import RawColumn, _length, distribution, readonly, weight_values
from .errors import SchemaError
from .kernels.status import (NULL_LOG_VARIANCE, NULL_MEAN, NULL_PRIOR_LOG_VARIANCE, NULL_PRIOR_MEAN,
                             WRONG_LENGTH_LOG_VARIANCE, WRONG_LENGTH_MEAN, WRONG_LENGTH_PRIOR_LOG_VARIANCE,
                             WRONG_LENGTH_PRIOR_MEAN)


@dataclass
class GaussianPrepared:
    """One batch of the Gaussian kind ready for its kernel: rows x dimensions arrays of one float dtype (an
    absent prior column is None), plus what is needed to describe a bad row."""

    mean: np.ndarray
    log_variance: np.ndarray
    prior_mean: np.ndarray | None
    prior_log_variance: np.ndarray | None
    weights: np.ndarray | None
    status: np.ndarray
    dimensions: int
    raw: dict[str, RawColumn] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.status)


# The Gaussian kind's roles in the order a row's first problem is looked for, with their null and length codes
GAUSSIAN_ROLES: dict[str, tuple[int, int]] = {
    "mean": (NULL_MEAN, WRONG_LENGTH_MEAN),
    "log_variance": (NULL_LOG_VARIANCE, WRONG_LENGTH_LOG_VARIANCE),
    "prior_mean": (NULL_PRIOR_MEAN, WRONG_LENGTH_PRIOR_MEAN),
    "prior_log_variance": (NULL_PRIOR_LOG_VARIANCE, WRONG_LENGTH_PRIOR_LOG_VARIANCE),
}


def prepare_gaussian(*, mean: RawColumn, log_variance: RawColumn, prior_mean: RawColumn = None,
                     prior_log_variance: RawColumn = None, weights: RawColumn = None,
                     expected_dimensions: int | None = None) -> GaussianPrepared:
    """Validate and convert one batch of the Gaussian kind: each role a list, fixed-size list or 2-D array
    (rows x dimensions), per-dimension columns, or one float column (one dimension).  Every role has the
    dimensions of ``mean`` (of ``expected_dimensions`` once a batch fixed them); a list row of another length,
    or a null row, is flagged in the status.  Arrays of mixed float dtypes are all made float64."""
    if mean is None or log_variance is None:
        raise SchemaError("give both mean= and log_variance= (the Gaussian kind's columns)")
    given = {"mean": mean, "log_variance": log_variance, "prior_mean": prior_mean,
             "prior_log_variance": prior_log_variance}
    n_rows = _length(mean)
    status = np.zeros(n_rows, dtype=np.uint8)
    matrices: dict[str, np.ndarray] = {}
    dimensions = expected_dimensions
    for role, values in given.items():
        if values is None:
            continue
        null_code, length_code = GAUSSIAN_ROLES[role]
        matrix = distribution(values, role, dimensions, status, null_code, length_code, unit="dimensions")
        matrix = matrix.reshape(-1, 1) if matrix.ndim == 1 else matrix
        if len(matrix) != n_rows:
            raise SchemaError(f"{role} has {len(matrix)} rows but mean has {n_rows}")
        if dimensions is not None and matrix.shape[1] != dimensions:
            raise SchemaError(f"{role} has {matrix.shape[1]} dimensions per row but "
                              f"{'mean has' if expected_dimensions is None else 'earlier batches had'} {dimensions}")
        dimensions = matrix.shape[1]
        matrices[role] = matrix
    if not dimensions:
        raise SchemaError("mean has no dimensions")
    dtypes = {matrix.dtype for matrix in matrices.values()}
    common = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float64)  # one kernel specialisation per dtype
    arrays = {role: readonly(matrix.astype(common, copy=False)) for role, matrix in matrices.items()}
    weight_array = None
    if weights is not None:
        weight_array = readonly(weight_values(weights, status))
        if len(weight_array) != n_rows:
            raise SchemaError(f"weights has {len(weight_array)} rows but mean has {n_rows}")
    raw = {role: values for role, values in given.items() if values is not None}
    if weights is not None:
        raw["weights"] = weights
    return GaussianPrepared(mean=arrays["mean"], log_variance=arrays["log_variance"],
                            prior_mean=arrays.get("prior_mean"), prior_log_variance=arrays.get("prior_log_variance"),
                            weights=weight_array, status=status, dimensions=int(dimensions), raw=raw)
