"""A scikit-learn classifier's calibration, before and after CalibratedClassifierCV, scored by streamdiv.

What it shows: a Gaussian naive Bayes model on scikit-learn's handwritten digits (``load_digits``, shipped
with scikit-learn: 1,797 images of 10 classes), its ``predict_proba`` scored by ``streamdiv.evaluate``
(accuracy, cross-entropy, Brier, ECE, and the class table: each digit's ECE, mean prediction and observed
frequency), then the same model wrapped in ``CalibratedClassifierCV`` (isotonic), with ECE before and after,
and the two reliability diagrams side by side, drawn by ``Report.plot("reliability", ax=...)`` on one
matplotlib Figure and saved as ``reliability_before_after.png``.

Naive Bayes is known to be overconfident: its mean confidence is near 0.99 where its accuracy is near 0.83,
and it gives some test digits a probability of exactly 0 for their true class, so its cross-entropy is
``inf`` (``infinite_rows`` counts them; ``cross_entropy_finite`` is the mean over the others).

Run it:
    python examples/sklearn_calibration.py                        # the PNG goes to the current directory
    python examples/sklearn_calibration.py --output-directory DIR
    python examples/sklearn_calibration.py --quick    # 3 folds instead of 5 (or STREAMDIV_EXAMPLE_QUICK=1);
                                                      # the data set is small either way
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB

import streamdiv

BINS = 10  # fewer than the default 15: the test half holds 899 rows


def score(name: str, probabilities: np.ndarray, labels: np.ndarray) -> streamdiv.Report:
    """Score one model's test-set probabilities and print what a reader would look at."""
    report = streamdiv.evaluate({"probs": probabilities, "label": labels}, probs="probs", labels="label",
                                bins=BINS)
    metrics = report.metrics
    print(f"{name}: {metrics['rows']} test rows")
    print(f"  accuracy {metrics['accuracy']:.4f}  mean_confidence {metrics['mean_confidence']:.4f}  "
          f"ece {metrics['ece']:.4f}  mce {metrics['mce']:.4f}  brier {metrics['brier']:.4f}")
    print(f"  cross_entropy {metrics['cross_entropy']}  (infinite_rows {metrics['infinite_rows']}, "
          f"cross_entropy_finite {metrics['cross_entropy_finite']:.4f})  classwise_ece {metrics['classwise_ece']:.4f}")
    print("  class       ece  mean_prediction  observed_frequency")
    for entry in report.classes:
        print(f"  {entry['class']:>5}  {entry['ece']:.4f}  {entry['mean_prediction']:15.4f}  "
              f"{entry['observed_frequency']:18.4f}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("STREAMDIV_EXAMPLE_QUICK") == "1",
                        help="3 cross-validation folds instead of 5, for the test suite")
    parser.add_argument("--output-directory", default=".", help="where to write the PNG (default: here)")
    args = parser.parse_args()
    folds = 3 if args.quick else 5

    features, labels = load_digits(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.5, random_state=0,
                                                        stratify=labels)

    model = GaussianNB().fit(train_x, train_y)
    before = score("GaussianNB", model.predict_proba(test_x), test_y)
    calibrated = CalibratedClassifierCV(GaussianNB(), method="isotonic", cv=folds).fit(train_x, train_y)
    after = score(f"CalibratedClassifierCV(GaussianNB, isotonic, cv={folds})", calibrated.predict_proba(test_x),
                  test_y)
    print(f"ECE before calibration {before.metrics['ece']:.4f}, after calibration {after.metrics['ece']:.4f}")

    # Both reliability diagrams on one Figure (no pyplot: nothing global, no display needed); each plot
    # titles its own axes with its ECE and row count
    figure = Figure(figsize=(12, 5.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    before.plot("reliability", ax=left)
    after.plot("reliability", ax=right)
    figure.suptitle("load_digits, test half: GaussianNB (left) and CalibratedClassifierCV, isotonic (right)")
    os.makedirs(args.output_directory, exist_ok=True)
    path = os.path.join(args.output_directory, "reliability_before_after.png")
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
