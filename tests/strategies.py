"""Hypothesis strategies for streamdiv's inputs, and the reference metrics of what they draw.

Hypothesis draws the shape of a problem (layout, rows, classes, which awkward values, which options) and one
seed; numpy builds the arrays from that seed.  Drawing every float through hypothesis would make the large
cases (up to 40,000 rows, across the 16,384-row compensation blocks) slow to generate and to shrink.

A :class:`Problem` knows which of its rows must be skipped (NaN, a probability outside [0, 1], a bad label,
a bad weight) and which ignored (``ignore_label``), so that the properties can check the row counts and
compare the valid rows against ``reference.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference
import streamdiv

# The kernels' compensation block (kernels.ROW_BLOCK): blocks are aligned on the stream's row index, and a
# batch cut inside one leaves an open block in the state.  Cuts are drawn around its multiples; the properties
# hold for any value, so a change of it makes these cases less pointed, not wrong.
BLOCK_ROWS = 16_384

HARD_KINDS = ("hard", "logits", "binary", "binary_logits")  # labels: ignore_label and bad labels apply
SOFT_KINDS = ("soft", "soft_logits", "binary_soft")
KINDS = HARD_KINDS + SOFT_KINDS
IGNORE = -100  # the label that the problems' ignored rows carry


@dataclass
class Problem:
    """One stream: the keyword arguments of ``Accumulator.update`` and of ``Accumulator``, and the expected
    fate of each row."""

    kind: str
    columns: dict[str, np.ndarray]  # probs or logits, labels or targets, and weights
    groups: np.ndarray | None
    options: dict[str, Any]  # Accumulator(...) keywords: eps, ignore_label, bins, metrics, on_invalid="skip"
    bad: np.ndarray  # rows that must be skipped and counted in skipped_rows
    ignored: np.ndarray  # rows whose label is ignore_label: counted in ignored_rows
    num_classes: int = 2

    @property
    def n(self) -> int:
        return len(self.bad)

    @property
    def valid(self) -> np.ndarray:
        return ~self.bad & ~self.ignored

    def arguments(self, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        """``update`` keywords for rows [lo, hi)."""
        rows = slice(lo, self.n if hi is None else hi)
        arguments = {name: values[rows] for name, values in self.columns.items()}
        if self.groups is not None:
            arguments["groups"] = self.groups[rows]
        return arguments

    def new(self) -> streamdiv.Accumulator:
        return streamdiv.Accumulator(**self.options)

    def accumulate(self, cuts: list[int] | tuple[int, ...] = (), lo: int = 0, hi: int | None = None,
                   into: streamdiv.Accumulator | None = None) -> streamdiv.Accumulator:
        """Rows [lo, hi) fed in batches cut at ``cuts`` (positions in the whole stream; those outside are
        ignored, repeated ones give empty batches)."""
        hi = self.n if hi is None else hi
        accumulator = self.new() if into is None else into
        edges = [lo, *sorted(c for c in cuts if lo <= c <= hi), hi]
        for start, stop in zip(edges[:-1], edges[1:]):
            accumulator.update(**self.arguments(start, stop))
        return accumulator

    def reference(self, rows: np.ndarray | None = None) -> dict[str, Any]:
        """reference.metrics over the valid rows (of the mask ``rows``), with the row counts."""
        mask = self.valid if rows is None else self.valid & rows
        p, q, log_q, top, binary = self._distributions(mask)
        weights = self.columns.get("weights")
        expected = reference.metrics(p, q, None if weights is None else weights[mask], bins=self.options["bins"],
                                     binary=binary, log_q=log_q, eps=self.options["eps"], top=top)
        everything = np.ones(self.n, bool) if rows is None else rows
        expected["skipped_rows"] = int((self.bad & everything).sum())
        expected["ignored_rows"] = int((self.ignored & everything).sum())
        expected["unnormalized_rows"] = 0  # every drawn row sums to 1 within its float's rounding
        return expected

    def reference_stderr(self) -> float | None:
        p, q, log_q, _, _ = self._distributions(self.valid)
        return reference.cross_entropy_stderr(p, q, self._valid_weights(), log_q, self.options["eps"])

    def reference_cross_entropies(self) -> tuple[np.ndarray, np.ndarray]:
        """(per-row cross-entropy, weight) of the valid rows, from reference.per_row."""
        p, q, log_q, _, _ = self._distributions(self.valid)
        weights = self._valid_weights()
        return (reference.per_row(p, q, log_q, self.options["eps"])["cross_entropy"],
                np.ones(len(p)) if weights is None else weights)

    def _valid_weights(self) -> np.ndarray | None:
        weights = self.columns.get("weights")
        return None if weights is None else weights[self.valid]

    def _distributions(self, mask: np.ndarray):
        """(P, Q, log Q or None, predicted class or None, binary) of the rows in ``mask``, as reference.py
        takes them."""
        columns = self.columns
        kind = self.kind
        binary = kind.startswith("binary")
        log_q = top = None
        if "logits" in columns:
            z = columns["logits"][mask].astype(np.float64)
            rows = reference.binary_logit_rows(z) if binary else z
            q = reference.softmax(rows)
            log_q = reference.log_softmax_rows(rows)
            top = rows.argmax(axis=1)
        else:
            q = columns["probs"][mask].astype(np.float64)
            if binary:
                q = np.stack([1.0 - q, q], axis=1)
        if "labels" in columns:
            p = reference.one_hot(columns["labels"][mask], self.num_classes)
        else:
            p = columns["targets"][mask].astype(np.float64)
            if binary:
                p = np.stack([1.0 - p, p], axis=1)
        return p, q, log_q, top, binary

    def take(self, order: np.ndarray) -> Problem:
        """The same problem with its rows in ``order``."""
        return Problem(kind=self.kind, columns={name: values[order] for name, values in self.columns.items()},
                       groups=None if self.groups is None else self.groups[order], options=self.options,
                       bad=self.bad[order], ignored=self.ignored[order], num_classes=self.num_classes)

    def row_masses(self) -> np.ndarray:
        """(sum P + sum Q) / 2 of each valid row with weight (1 within rounding)."""
        p, q, _, _, _ = self._distributions(self.valid)
        weights = self._valid_weights()
        masses = (p.sum(axis=1) + q.sum(axis=1)) / 2
        return masses if weights is None else masses[weights > 0]

    def predicted_distribution(self) -> np.ndarray:
        """Q of every valid row as reference.py computes it (for the assumptions about discontinuities)."""
        return self._distributions(self.valid)[1]


# ---- sizes and cuts

def row_counts(large: bool = True) -> st.SearchStrategy[int]:
    """Mostly a few rows; with ``large``, sometimes a stream of more than one block (up to ~40,000 rows),
    including lengths one row either side of a block."""
    small = st.integers(1, 60)
    if not large:
        return small
    around = st.sampled_from([BLOCK_ROWS - 1, BLOCK_ROWS, BLOCK_ROWS + 1, 2 * BLOCK_ROWS + 3])
    return st.one_of(small, small, small, around, st.integers(BLOCK_ROWS + 2, 40_000))


@st.composite
def batch_cuts(draw, n: int, max_cuts: int = 6) -> list[int]:
    """Positions in [0, n] where the stream is cut into batches: anywhere, and one row either side of a
    block boundary; a position may repeat (an empty batch)."""
    anywhere = st.integers(0, n)
    boundaries = [m * BLOCK_ROWS + d for m in range(1, n // BLOCK_ROWS + 1) for d in (-1, 0, 1)
                  if 0 <= m * BLOCK_ROWS + d <= n]
    position = st.one_of(anywhere, st.sampled_from(boundaries)) if boundaries else anywhere
    return sorted(draw(st.lists(position, max_size=max_cuts)))


# ---- the values, built with numpy from a seed

def hard_probabilities(rng: np.random.Generator, n: int, k: int, shape: float, zero_fraction: float,
                       one_hot_fraction: float) -> np.ndarray:
    """Rows of K probabilities: gamma(shape) mass (shape 0.05: a few large values and many tiny ones), exact
    zeros, some rows one-hot; rows sum to 1 within rounding."""
    raw = rng.gamma(shape, size=(n, k))
    raw[rng.random((n, k)) < zero_fraction] = 0.0
    raw[np.arange(n), rng.integers(0, k, n)] += 1e-3  # every row keeps some mass
    one_hot = rng.random(n) < one_hot_fraction
    raw[one_hot] = reference.one_hot(rng.integers(0, k, int(one_hot.sum())), k)
    return raw / raw.sum(axis=1, keepdims=True)


def logits_matrix(rng: np.random.Generator, n: int, k: int, scale: float, offset: float,
                  minus_infinity_fraction: float) -> np.ndarray:
    """Rows of K logits N(offset, scale^2) (scale 1e4: rows that are one-hot to float64), some -inf (a class
    masked out), never a whole row of them."""
    z = rng.normal(offset, scale, (n, k))
    z[rng.random((n, k)) < minus_infinity_fraction] = -np.inf
    keep = rng.integers(0, k, n)
    z[np.arange(n), keep] = rng.normal(offset, scale, n)
    return z


def soft_targets(rng: np.random.Generator, n: int, k: int, concentration: float,
                 zero_fraction: float) -> np.ndarray:
    """Dirichlet rows with exact zeros, renormalized (each keeps its mass on at least one class)."""
    targets = rng.dirichlet(np.full(k, concentration), n)
    targets[rng.random((n, k)) < zero_fraction] = 0.0
    targets[np.arange(n), rng.integers(0, k, n)] += 0.5
    return targets / targets.sum(axis=1, keepdims=True)


def unit_values(rng: np.random.Generator, n: int, exact_fraction: float) -> np.ndarray:
    """Uniform values in [0, 1), some exactly 0 or 1 (binary probabilities or targets)."""
    values = rng.random(n)
    exact = rng.random(n) < exact_fraction
    values[exact] = rng.integers(0, 2, int(exact.sum()))
    return values


def weight_values(rng: np.random.Generator, n: int, kind: str) -> np.ndarray | None:
    if kind == "none":
        return None
    if kind == "counts":  # whole numbers, a fifth of them zero
        return rng.integers(0, 5, n).astype(np.float64)
    weights = rng.exponential(1.0, n)
    weights[rng.random(n) < 0.2] = 0.0
    return weights


def group_values(rng: np.random.Generator, n: int, kind: str) -> np.ndarray | None:
    """None; few groups or many, mixed; few groups sorted (one run each); or runs of random lengths (some
    long enough for the kernels' pass over one group's run, some not)."""
    if kind == "none":
        return None
    if kind == "few":
        return rng.integers(0, 3, n)
    if kind == "many":
        return rng.integers(0, max(2, min(n // 4, 300)), n)
    if kind == "sorted":
        return np.sort(rng.integers(0, 4, n))
    lengths = rng.geometric(1 / 200, n // 20 + 2)
    return np.resize(np.repeat(rng.integers(0, 5, len(lengths)), lengths), n)


def _spoil(rng: np.random.Generator, problem_columns: dict[str, np.ndarray], kind: str, num_classes: int,
           rows: np.ndarray, ignore_label: int | None) -> np.ndarray:
    """Make each row of ``rows`` invalid in one of the ways that apply to its layout; return the mask of rows
    that are now invalid (all of them)."""
    n = len(next(iter(problem_columns.values())))
    ways = []
    if "probs" in problem_columns:
        ways += ["probability NaN", "probability above 1", "probability below 0"]
    if "logits" in problem_columns:
        ways += ["logit NaN", "logit +inf"] + ([] if kind == "binary_logits" else ["logits all -inf"])
    if "labels" in problem_columns:
        ways += ["label too large", "label negative"]
    if "targets" in problem_columns:
        ways += ["target NaN", "target above 1", "target below 0"]
    if "weights" in problem_columns:
        ways += ["weight negative", "weight NaN", "weight infinite"]
    chosen = rng.integers(0, len(ways), len(rows))
    for row, way in zip(rows, (ways[i] for i in chosen)):
        column = {"probability": "probs", "logit": "logits", "logits": "logits", "label": "labels",
                  "target": "targets", "weight": "weights"}[way.split()[0]]
        values = problem_columns[column]
        where = (row,) if values.ndim == 1 else (row, rng.integers(0, values.shape[1]))
        if way == "logits all -inf":
            values[row] = -np.inf
        elif way == "label too large":
            values[row] = num_classes if rng.random() < 0.5 else 2 ** 40
        elif way == "label negative":
            values[row] = -1 if ignore_label != -1 else -2
        else:
            values[where] = {"NaN": np.nan, "above": 1.5, "below": -0.25, "+inf": np.inf, "negative": -1.0,
                             "infinite": np.inf}[way.split()[1]]
    bad = np.zeros(n, bool)
    bad[rows] = True
    return bad


@st.composite
def problems(draw, kinds: tuple[str, ...] = KINDS, large: bool = True, invalid: bool = True,
             metric_sets: tuple[str, ...] = ("all", "loss")) -> Problem:
    """A stream of one layout of ``kinds``, with weights, groups, eps, ignore_label and invalid rows drawn."""
    kind = draw(st.sampled_from(kinds))
    n = draw(row_counts(large))
    binary = kind.startswith("binary")
    k = 2 if binary else draw(st.sampled_from([2, 3, 5, 8, 40]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    columns: dict[str, np.ndarray] = {}
    if kind in ("hard", "soft"):
        probs = hard_probabilities(rng, n, k, draw(st.sampled_from([0.05, 0.5, 2.0])),
                                   draw(st.sampled_from([0.0, 0.2])), draw(st.sampled_from([0.0, 0.1])))
        # float32 storage for hard labels only: other layouts keep the kernels' signatures to those the rest of
        # the suite compiles
        columns["probs"] = probs.astype(draw(st.sampled_from([np.float64, np.float32]))) if kind == "hard" else probs
    elif kind in ("logits", "soft_logits"):
        columns["logits"] = logits_matrix(rng, n, k, draw(st.sampled_from([1.0, 30.0, 1e4])),
                                          draw(st.sampled_from([0.0, 1e5])), draw(st.sampled_from([0.0, 0.3])))
    elif kind in ("binary", "binary_soft"):
        columns["probs"] = unit_values(rng, n, draw(st.sampled_from([0.0, 0.1])))
    else:
        z = rng.normal(0.0, draw(st.sampled_from([1.0, 30.0, 1e3])), n)
        z[rng.random(n) < draw(st.sampled_from([0.0, 0.1]))] = -np.inf  # q = 0: a valid binary logit
        columns["logits"] = z
    if kind in HARD_KINDS:
        labels = rng.integers(0, k, n)
        if draw(st.booleans()):
            labels[rng.random(n) < 0.1] = IGNORE
        columns["labels"] = labels
        ignore_label = draw(st.sampled_from([None, IGNORE, 0]))
    else:
        columns["targets"] = (soft_targets(rng, n, k, draw(st.sampled_from([0.3, 3.0])),
                                           draw(st.sampled_from([0.0, 0.3])))
                              if not binary else unit_values(rng, n, draw(st.sampled_from([0.0, 0.1]))))
        ignore_label = None
    weights = weight_values(rng, n, draw(st.sampled_from(["none", "counts", "real"])))
    if weights is not None:
        columns["weights"] = weights
    groups = group_values(rng, n, draw(st.sampled_from(["none", "few", "many", "sorted", "runs"])))
    options = {"eps": draw(st.sampled_from([None, 1e-12, 1e-7, 1e-3])), "ignore_label": ignore_label,
               "bins": draw(st.sampled_from([15, 4])), "metrics": draw(st.sampled_from(metric_sets)),
               "on_invalid": "skip"}
    fraction = draw(st.sampled_from([0.0, 0.02, 0.2])) if invalid else 0.0
    spoiled = np.zeros(n, bool)
    rows = np.flatnonzero(rng.random(n) < fraction)
    if len(rows):
        spoiled = _spoil(rng, columns, kind, k, rows, ignore_label)
    # ignore_label wins over any other problem of the row: its rows are counted apart, never skipped
    ignored = (columns["labels"] == ignore_label) if ignore_label is not None else np.zeros(n, bool)
    bad = spoiled.copy()
    if "labels" in columns:  # IGNORE labels that the accumulator does not ignore are bad labels
        bad |= (columns["labels"] < 0) | (columns["labels"] >= k)
    bad &= ~ignored
    return Problem(kind=kind, columns=columns, groups=groups, options=options, bad=bad, ignored=ignored,
                   num_classes=k)
