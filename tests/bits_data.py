"""The seeded data of the bits fixture's configurations (``bits_configurations``): made with the PCG64 stream of
``np.random.default_rng(seed)`` and +, -, *, / only, no ``np.exp`` or ``np.log``, whose SIMD versions numpy
picks by CPU, so that the fixture depends on streamdiv's arithmetic and not on the machine's numpy.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

Columns = dict[str, Any]  # update() keyword -> whole-stream array ("groups": an array or {name: array})

def _sharp_rows(rng: np.random.Generator, n: int, classes: int, zero_fraction: float = 0.0) -> np.ndarray:
    """Rows of a distribution: uniform draws cubed (a few large values per row), normalised; with
    ``zero_fraction``, that share of the values set to exactly 0, the row's largest kept."""
    values = rng.random((n, classes))
    values = values * values * values
    if zero_fraction:
        zero = rng.random((n, classes)) < zero_fraction
        zero[np.arange(n), values.argmax(axis=1)] = False
        values[zero] = 0.0
    return values / values.sum(axis=1, keepdims=True)


def _labels_near(rng: np.random.Generator, scores: np.ndarray) -> np.ndarray:
    """The argmax of each row 60% of the time, else a uniform class (so some labels have tiny or zero q)."""
    uniform = rng.integers(0, scores.shape[1], len(scores))
    return np.where(rng.random(len(scores)) < 0.6, scores.argmax(axis=1), uniform)


def _weights(rng: np.random.Generator, n: int) -> np.ndarray:
    weights = 2.0 * rng.random(n)
    weights[rng.random(n) < 0.05] = 0.0
    return weights


def _groups(rng: np.random.Generator, n: int, kind: str) -> Any:
    if kind == "mixed":  # 5 groups, interleaved row by row
        return rng.integers(0, 5, n)
    if kind in ("runs", "long_runs"):  # a sorted group column: runs of 128-639 rows, or of 2,000-7,999
        shortest, longest = (128, 640) if kind == "runs" else (2_000, 8_000)
        lengths = rng.integers(shortest, longest, n // shortest + 1)
        ends = np.cumsum(lengths)
        ends = ends[ends <= n - shortest]
        return np.searchsorted(ends, np.arange(n), side="right")
    if kind == "two_columns":  # string and integer group columns
        return {"split": np.array(["train", "valid", "test"])[rng.integers(0, 3, n)],
                "fold": rng.integers(0, 2, n)}
    raise ValueError(kind)


def _pick(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    return rng.choice(n, count, replace=False)


def multiclass(n: int, classes: int, seed: int, *, dtype: type = np.float64, logits: bool = False,
               soft: bool = False, target_zeros: bool = True, zero_fraction: float = 0.0,
               unnormalized: bool = False, weighted: bool = False, groups: str | None = None,
               ignored: bool = False, invalid: bool = False, flat: bool = False) -> Columns:
    """K-class rows: probabilities (or logits uniform in [-6, 6)) against hard labels (or soft targets, 30% of
    their values exactly 0 unless ``target_zeros`` is False); ``zero_fraction`` of the predictions 0 (-inf).
    ``flat``: rows (1 + 1.8 u_k) / sum_k (1 + 1.8 u_k), whose max/min falls on either side of e (rows that look
    softmaxed twice, or with ``logits``, probabilities passed as logits)."""
    rng = np.random.default_rng(seed)
    if flat:
        pred = 1.0 + 1.8 * rng.random((n, classes))
        pred = pred / pred.sum(axis=1, keepdims=True)
    elif logits:
        pred = 12.0 * rng.random((n, classes)) - 6.0
        if zero_fraction:  # -inf logits are zero probabilities
            pred[rng.random((n, classes)) < zero_fraction] = -np.inf
            pred[np.arange(n), rng.integers(0, classes, n)] = 1.0
    else:
        pred = _sharp_rows(rng, n, classes, zero_fraction)
    if unnormalized:  # a third of the rows scaled by 0.9 to 1.1 (values kept in [0, 1])
        scaled = rng.random(n) < 1 / 3
        pred[scaled] = np.minimum(pred[scaled] * (0.9 + 0.2 * rng.random(scaled.sum()))[:, None], 1.0)
    columns: Columns = {"logits" if logits else "probs": pred}
    if soft:
        columns["targets"] = _sharp_rows(rng, n, classes, zero_fraction=0.3 if target_zeros else 0.0)
    else:
        columns["labels"] = _labels_near(rng, pred)
    if weighted:
        columns["weights"] = _weights(rng, n)
    if invalid:
        bad = _pick(rng, n, 8)
        pred[bad[0], 0] = np.nan
        if logits:
            pred[bad[1], 1] = np.inf
            pred[bad[2], :] = -np.inf
        else:
            pred[bad[1], 1] = 1.5
            pred[bad[2], 0] = -0.25
        if soft:
            columns["targets"][bad[3], 0] = np.nan
            columns["targets"][bad[4], 1] = 2.0
        else:
            columns["labels"][bad[3]] = classes
            columns["labels"][bad[4]] = -7
        if weighted:
            columns["weights"][bad[5]] = -1.0
            columns["weights"][bad[6]] = np.nan
    if ignored:
        columns["labels"][_pick(rng, n, n // 20)] = -1
    if groups:
        columns["groups"] = _groups(rng, n, groups)
    columns[next(iter(columns))] = pred.astype(dtype)
    return columns


def binary(n: int, seed: int, *, logits: bool = False, soft: bool = False, extremes: bool = False,
           weighted: bool = False, groups: str | None = None, ignored: bool = False,
           invalid: bool = False) -> Columns:
    """One positive-class probability (or logit in [-8, 8)) per row against labels in {0, 1} (or targets);
    with ``extremes``, a tenth of the predictions (or targets) exactly 0 and a tenth exactly 1, drawn apart
    from the labels, so some are certain and wrong."""
    rng = np.random.default_rng(seed)
    pred = 16.0 * rng.random(n) - 8.0 if logits else rng.random(n)
    columns: Columns = {"logits" if logits else "probs": pred}
    if soft:
        columns["targets"] = rng.random(n)
    else:
        # P(y = 1) rises with the prediction (for logits through a made-up link, free of exp).
        positive = 0.5 + pred / (2.0 + 2.0 * np.abs(pred)) if logits else pred
        columns["labels"] = (rng.random(n) < positive).astype(np.int64)
    if extremes:
        extreme = columns["targets"] if soft else pred
        extreme[_pick(rng, n, n // 10)] = 0.0
        extreme[_pick(rng, n, n // 10)] = 1.0
    if weighted:
        columns["weights"] = _weights(rng, n)
    if invalid:
        bad = _pick(rng, n, 6)
        pred[bad[0]] = np.nan
        pred[bad[1]] = np.inf if logits else 1.5
        if soft:
            columns["targets"][bad[2]] = -0.5
        else:
            columns["labels"][bad[2]] = 2
        if weighted:
            columns["weights"][bad[3]] = -2.0
    if ignored:
        columns["labels"][_pick(rng, n, n // 20)] = -1
    if groups:
        columns["groups"] = _groups(rng, n, groups)
    return columns


def without_labels(make: Callable[[], Columns]) -> Columns:
    """The columns of ``make`` with its labels or targets left out: the predictions alone (label-free)."""
    return {role: value for role, value in make().items() if role not in ("labels", "targets")}


def gaussian(n: int, dimensions: int, seed: int, *, dtype: type = np.float64, prior: bool = False,
             weighted: bool = False, groups: str | None = None, invalid: bool = False) -> Columns:
    """Diagonal Gaussians: means uniform in [-2, 2), log variances in [-3, 3) (with a few at -700 and 700),
    and with ``prior`` a prior's, means in [-1, 1) and log variances in [-1, 1)."""
    rng = np.random.default_rng(seed)
    columns: Columns = {"mean": 4.0 * rng.random((n, dimensions)) - 2.0,
                        "log_variance": 6.0 * rng.random((n, dimensions)) - 3.0}
    columns["log_variance"][_pick(rng, n, 20), 0] = -700.0
    columns["log_variance"][_pick(rng, n, 20), 0] = 700.0
    if prior:
        columns["prior_mean"] = 2.0 * rng.random((n, dimensions)) - 1.0
        columns["prior_log_variance"] = 2.0 * rng.random((n, dimensions)) - 1.0
    if weighted:
        columns["weights"] = _weights(rng, n)
    if invalid:
        bad = _pick(rng, n, 6)
        columns["mean"][bad[0], 1] = np.nan
        columns["log_variance"][bad[1], 0] = np.inf
        columns["log_variance"][bad[2], 0] = 720.0  # finite, but its KL is +inf: counted in infinite_rows
        if prior:
            columns["prior_mean"][bad[3], 0] = -np.inf
            columns["prior_log_variance"][bad[4], 1] = np.nan
        if weighted:
            columns["weights"][bad[5]] = -1.0
    if groups:
        columns["groups"] = _groups(rng, n, groups)
    for role in ("mean", "log_variance", "prior_mean", "prior_log_variance"):
        if role in columns:
            columns[role] = columns[role].astype(dtype)
    return columns


