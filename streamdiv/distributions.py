r"""The prediction distributions of a run: three histograms of what a model predicted, which need no labels, for
drift measures between a reference run and a current one.

With w_i a row's weight, q_i its predicted distribution over K classes (one binary column: (1 - p_i, p_i))
and c_i = max_k q_ik its confidence (one binary column: c_i = p_i), over the valid rows:

.. math::

    \text{predicted\_class}_k = \sum_i w_i [\arg\max_j q_{ij} = k]   \qquad
    \text{mean\_prediction}_k = \sum_i w_i q_{ik}                     \qquad
    \text{confidence}_b = \sum_{i: c_i \in [l_b, u_b)} w_i

The argmax is the first maximum on ties, of the row as given (logits or probabilities), as accuracy takes it;
for one binary column the predicted class is 1 where p > 0.5.  The confidence bins are the report's
calibration bins (edges k/M with binning="uniform"; equal-weight cuts of the fine histogram with "quantile",
:attr:`streamdiv.totals.Totals.calibration`), the last one closed at 1.  Each is kept as raw weights, not
normalised: they add up across merged states, and a caller chooses the normalisation.  Its *shares* are
s_k = x_k / sum_j x_j (undefined, None, when the sum is 0); mean_prediction's sum is the total weight W when
every row sums to 1.

For drift between a reference with shares a and a current run with shares b over the same classes or bins
(smoothing, for empty bins, is the caller's):

.. math::

    KL(b \| a) = \sum_k b_k \ln(b_k / a_k), \quad
    JS(a, b) = \tfrac12 KL(a \| m) + \tfrac12 KL(b \| m),\ m = \tfrac12 (a + b), \quad
    PSI = \sum_k (b_k - a_k) \ln(b_k / a_k)

Equal-weight bins have edges of each run's own data: compare a current run on the reference's bins with
``prediction_distributions(current, confidence_edges=reference.confidence.edges)``, which regroups the
current state's stored bins at those edges (each must be one of its stored edges: the fine histogram's, with
binning="quantile", holds every quantile edge).

A distribution is None where the state does not hold it: the loss metric set and the Gaussian kind fill none
of them, and a state saved by an earlier streamdiv may lack the predicted-class weights (``absent_slots``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import StreamdivError
from .kernels import layout
from .kernels.layout import BIN_WEIGHT
from .totals import Totals, group_totals

if TYPE_CHECKING:
    from .state import State

DISTRIBUTIONS = ("predicted_class", "mean_prediction", "confidence")  # the names of Distributions' fields


@dataclass(frozen=True)
class Histogram:
    """Weights over bins [lower[b], upper[b]) (the last closed at 1)."""

    lower: np.ndarray
    upper: np.ndarray
    weight: np.ndarray

    @property
    def edges(self) -> np.ndarray:
        """The M + 1 edges: lower[0], ..., lower[M - 1], upper[M - 1]."""
        return np.concatenate([self.lower, self.upper[-1:]])


@dataclass(frozen=True)
class Distributions:
    """The raw weights of a run's three prediction distributions (see the module's docstring); each None
    where the state does not hold it."""

    predicted_class: np.ndarray | None  # per class: sum w [argmax q = k]
    mean_prediction: np.ndarray | None  # per class: sum w q_k
    confidence: Histogram | None  # per calibration bin: sum w

    def weights(self, name: str) -> np.ndarray | None:
        """The raw weights of the distribution ``name`` (one of DISTRIBUTIONS)."""
        if name not in DISTRIBUTIONS:
            raise ValueError(f"no distribution {name!r}; the distributions are {', '.join(DISTRIBUTIONS)}")
        value = getattr(self, name)
        return value.weight if isinstance(value, Histogram) else value

    def shares(self, name: str) -> np.ndarray | None:
        """The distribution ``name`` normalised to sum to 1: x_k / sum_j x_j; None without weight."""
        return shares(self.weights(name))

    def to_dict(self) -> dict[str, Any]:
        """As ``Report.distributions`` gives them: the shares of each class, and each confidence bin's edges,
        weight and share; each None without weight or where the state does not hold it."""
        result: dict[str, Any] = {}
        for name in ("predicted_class", "mean_prediction"):
            values = self.shares(name)
            result[name] = None if values is None else [float(value) for value in values]
        bins, values = self.confidence, self.shares("confidence")
        result["confidence"] = None if bins is None or values is None else [
            {"lower": float(low), "upper": float(high), "weight": float(weight), "share": float(share)}
            for low, high, weight, share in zip(bins.lower, bins.upper, bins.weight, values)]
        return result


def shares(weights: np.ndarray | None) -> np.ndarray | None:
    """Weights normalised to sum to 1 (math.fsum of them), None when they are None or sum to 0 or less."""
    if weights is None:
        return None
    total = math.fsum(weights)
    return np.asarray(weights, dtype=np.float64) / total if total > 0 else None


def prediction_distributions(totals: Totals, confidence_edges: np.ndarray | None = None) -> Distributions:
    """The prediction distributions of one group's (or a whole run's) totals, ``totals.calibration``'s bins
    for the confidence, or the state's stored bins regrouped at ``confidence_edges`` (see the module's
    docstring)."""
    if totals.slot_layout.kind == layout.GAUSSIAN:
        return Distributions(None, None, None)
    predicted = totals.class_values("predicted_class") if totals.has("class.predicted_class") else None
    mean = totals.class_values("prediction_mass") if totals.has("class.prediction_mass") else None
    confidence = None
    if totals.has("bin.weight"):
        if confidence_edges is None:
            bins = totals.calibration
            confidence = Histogram(bins.lower, bins.upper, bins.weight)
        else:
            confidence = regrouped(totals, np.asarray(confidence_edges, dtype=np.float64))
    return Distributions(predicted, mean, confidence)


def state_distributions(state: State, group: int | None = None,
                        confidence_edges: np.ndarray | None = None) -> Distributions:
    """prediction_distributions of a state's whole run, or of its group number ``group`` (the position of its
    key in ``state.group_keys``)."""
    return prediction_distributions(group_totals(state, group), confidence_edges)


def regrouped(totals: Totals, edges: np.ndarray) -> Histogram:
    """The weights of the state's stored top-label bins added up between consecutive ``edges``: ascending,
    from 0 to 1, each one of the stored bins' edges (k/M for uniform bins, ``layout.fine_edges()`` for the
    fine histogram)."""
    stored = layout.fine_edges() if totals.binning == "quantile" else np.arange(totals.bins + 1) / totals.bins
    at = np.searchsorted(stored, edges)
    inside = (at < len(stored)) & (stored[np.minimum(at, len(stored) - 1)] == edges)
    if (len(edges) < 2 or not inside.all() or edges[0] != 0.0 or edges[-1] != 1.0
            or (np.diff(edges) < 0).any()):
        raise StreamdivError(f"confidence edges must ascend from 0 to 1, each an edge of the state's own bins "
                             f"({len(stored) - 1} {totals.binning} bins); got {len(edges)} edges "
                             f"from {edges[:1].tolist()} to {edges[-1:].tolist()}")
    weight = totals.bin_field(BIN_WEIGHT)
    return Histogram(edges[:-1].copy(), edges[1:].copy(),
                     np.array([math.fsum(weight[start:stop]) for start, stop in zip(at[:-1], at[1:])]))


def report_distributions(totals: Totals) -> dict[str, Any] | None:
    """``Report.distributions`` (and each group's): ``prediction_distributions(totals).to_dict()``; None for
    the Gaussian kind, which predicts no classes."""
    if totals.slot_layout.kind == layout.GAUSSIAN:
        return None
    return prediction_distributions(totals).to_dict()
