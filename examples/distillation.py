"""Knowledge distillation: a teacher's soft targets against a student's logits.

What it shows: ``streamdiv.evaluate`` with ``targets=`` (the teacher's distribution per row) and ``logits=``
(the student's raw scores, log-softmaxed inside the kernel in float64), giving the forward KL(teacher ||
student) that distillation minimises, the reverse KL(student || teacher), Jensen-Shannon, and the identity

    cross_entropy = entropy + kl_divergence,    H(P, Q) = H(P) + KL(P || Q),

checked on the real numbers: with soft targets H(P) is not 0, so the loss a trainer logs (cross-entropy) and
the gap to the teacher (KL) differ by the teacher's own entropy.  A second case, label smoothing, has
targets (1 - e) one-hot + e/K, whose entropy is known in closed form.

The data is made here with numpy: teacher logits z ~ N(0, 3^2), softened at temperature T, and a student
whose logits are the teacher's plus noise, compared at the same temperature (as in Hinton et al. 2015).

Run it:
    python examples/distillation.py            # 100,000 rows, 100 classes
    python examples/distillation.py --quick    # 2,000 rows (or STREAMDIV_EXAMPLE_QUICK=1)
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import streamdiv


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def show_identity(report: streamdiv.Report) -> None:
    """Print both sides of cross_entropy = entropy + kl_divergence and their difference."""
    metrics = report.metrics
    both = metrics["entropy"] + metrics["kl_divergence"]
    print(f"  cross_entropy                 = {metrics['cross_entropy']:.15f} nats")
    print(f"  entropy + kl_divergence       = {both:.15f} nats"
          f"  ({metrics['entropy']:.6f} + {metrics['kl_divergence']:.6f})")
    print(f"  identity difference           = {abs(metrics['cross_entropy'] - both):.3e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("STREAMDIV_EXAMPLE_QUICK") == "1",
                        help="a few thousand rows, for the test suite")
    args = parser.parse_args()
    rows, classes, temperature = (2_000 if args.quick else 100_000), 100, 2.0
    rng = np.random.default_rng(2026)

    # --- Case 1: the teacher's softened distribution against the student's logits at the same temperature
    teacher_logits = rng.normal(0.0, 3.0, (rows, classes))
    student_logits = teacher_logits + rng.normal(0.0, 1.0, (rows, classes))
    teacher = softmax(teacher_logits / temperature)
    report = streamdiv.evaluate({"teacher": teacher, "student": student_logits / temperature},
                                targets="teacher", logits="student")
    metrics = report.metrics
    print(f"distillation: {metrics['rows']:,} rows, {classes} classes, temperature {temperature}")
    print(f"  forward KL(teacher||student)  = {metrics['kl_divergence']:.6f} nats   (kl_divergence)")
    print(f"  reverse KL(student||teacher)  = {metrics['reverse_kl_divergence']:.6f} nats   (reverse_kl_divergence)")
    print(f"  Jensen-Shannon                = {metrics['js_divergence']:.6f} nats   (js_divergence, at most ln 2)")
    print(f"  teacher's entropy H(P)        = {metrics['entropy']:.6f} nats")
    print(f"  student's entropy H(Q)        = {metrics['prediction_entropy']:.6f} nats   (prediction_entropy)")
    print(f"  student agrees with teacher   = {metrics['accuracy']:.4f}   (argmax Q = argmax P)")
    show_identity(report)

    # The same forward KL written out in numpy, row by row, in float64: a reader's check
    log_student = student_logits / temperature
    log_student = log_student - log_student.max(axis=1, keepdims=True)
    log_student -= np.log(np.exp(log_student).sum(axis=1, keepdims=True))
    numpy_kl = float(np.mean(np.sum(teacher * (np.log(teacher) - log_student), axis=1)))
    print(f"  numpy's KL, written out       = {numpy_kl:.6f} nats   "
          f"(relative difference {abs(numpy_kl - metrics['kl_divergence']) / numpy_kl:.1e})")

    # --- Case 2: label smoothing, targets (1 - e) one-hot + e/K against the student's logits
    smoothing = 0.1
    labels = teacher.argmax(axis=1)
    smoothed = np.full((rows, classes), smoothing / classes)
    smoothed[np.arange(rows), labels] += 1.0 - smoothing
    smoothed_report = streamdiv.evaluate({"smoothed": smoothed, "student": student_logits},
                                         targets="smoothed", logits="student")
    hard_report = streamdiv.evaluate({"label": labels, "student": student_logits}, labels="label", logits="student")
    top, rest = 1.0 - smoothing + smoothing / classes, smoothing / classes
    closed_form = -(top * np.log(top) + (classes - 1) * rest * np.log(rest))
    print(f"\nlabel smoothing e = {smoothing}: the same student against smoothed labels")
    print(f"  entropy of the smoothed targets = {smoothed_report.metrics['entropy']:.12f} nats")
    print(f"  closed form -(t ln t + (K-1) r ln r) = {closed_form:.12f} nats   (t = 1 - e + e/K, r = e/K)")
    show_identity(smoothed_report)
    print(f"  against the hard labels: cross_entropy = {hard_report.metrics['cross_entropy']:.6f}, "
          f"entropy = {hard_report.metrics['entropy']:.1f}, kl_divergence = {hard_report.metrics['kl_divergence']:.6f}"
          f" (hard labels: cross-entropy is KL)")


if __name__ == "__main__":
    main()
