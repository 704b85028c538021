"""Drift against a reference: every figure against numpy from its definition, from data and from states."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import scipy.spatial.distance
import scipy.stats

import streamdiv
from streamdiv import drift
from streamdiv.drift_report import DEFAULT_SMOOTHING, divergences
from streamdiv.errors import StreamdivError

from reference import softmax


def _data(n: int, temperature: float, seed: int, num_classes: int = 4, weights: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(0.0, 2.0, (n, num_classes)) / temperature)
    labels = (rng.random(n)[:, None] < probs.cumsum(axis=1)).argmax(axis=1)
    data = {"probs": probs, "label": labels, "region": rng.choice(["eu", "us", "apac"], n)}
    if weights:
        data["w"] = rng.exponential(1.0, n)
    return data


# ---- the definitions, written out with numpy on the rows (the obviously-right twin of drift.py)

def _shares(weights: np.ndarray, smoothing: float) -> np.ndarray:
    if smoothing > 0 and (weights == 0).any():
        return (weights + smoothing) / (weights.sum() + smoothing * len(weights))
    return weights / weights.sum()


def _reference_figures(a: np.ndarray, b: np.ndarray, smoothing: float = DEFAULT_SMOOTHING) -> dict:
    kept = (a > 0) | (b > 0)
    empty = int(((a[kept] == 0) | (b[kept] == 0)).sum())
    a, b = _shares(a[kept], smoothing), _shares(b[kept], smoothing)
    kl, reverse = float(scipy.stats.entropy(b, a)), float(scipy.stats.entropy(a, b))
    js = float(scipy.spatial.distance.jensenshannon(a, b)) ** 2  # scipy gives the JS distance, its square root
    with np.errstate(divide="ignore"):
        psi = float(np.sum((b - a) * (np.log(b) - np.log(a))))
    return {"psi": psi, "js": js, "kl": kl, "reverse_kl": reverse, "empty_bins": empty}


def _distributions(data: dict, bins: int = 15) -> dict:
    q, w = data["probs"], data.get("w", np.ones(len(data["probs"])))
    confidence = q.max(axis=1)
    edges = np.arange(bins + 1) / bins
    index = np.minimum(np.searchsorted(edges, confidence, "right") - 1, bins - 1)
    return {"predicted_class": np.bincount(q.argmax(axis=1), weights=w, minlength=q.shape[1]),
            "mean_prediction": (w[:, None] * q).sum(axis=0),
            "confidence": np.bincount(index, weights=w, minlength=bins)}


@pytest.mark.parametrize("weights", [False, True])
def test_figures_match_their_definitions(weights):
    reference, current = _data(30000, 1.0, 1, weights=weights), _data(20000, 0.6, 2, weights=weights)
    keywords = {"probs": "probs", "labels": "label"} | ({"weights": "w"} if weights else {})
    report = drift(reference, current, **keywords)
    expected = {name: _reference_figures(a, b) for name, (a, b) in
                zip(_distributions(reference), zip(_distributions(reference).values(),
                                                    _distributions(current).values()))}
    for name in ("predicted_class", "mean_prediction", "confidence"):
        for figure, value in expected[name].items():
            assert report.metrics[f"{name}_{figure}"] == pytest.approx(value, rel=1e-9, abs=1e-15), (name, figure)
    assert report.metrics["confidence_psi"] > 0.1  # sharper predictions: a real shift
    psi = report.metrics["confidence_psi"]
    assert psi == pytest.approx(report.metrics["confidence_kl"] + report.metrics["confidence_reverse_kl"])


def test_a_label_free_side_drifts_on_its_predictions_alone(tmp_path):
    """Labels that arrive late: the current side without labels compares its three distributions with a
    labelled reference's (equal to the labelled current side's figures), and no label metric."""
    reference, current = _data(9000, 1.0, 1), _data(7000, 0.6, 2)
    labelled = drift(reference, current, probs="probs", labels="label")
    alone = drift(reference, {"probs": current["probs"]}, probs="probs")
    for name in ("predicted_class_psi", "mean_prediction_js", "confidence_kl", "confidence_empty_bins"):
        assert alone.metrics[name] == labelled.metrics[name]
    assert "prediction_entropy.change" in alone.metrics and "ece.change" not in alone.metrics
    assert "mean_confidence.change" in alone.metrics


def test_a_label_free_reference_compares_no_label_metric():
    """A reference scored without labels computes no label metric, so a labelled current side gets no
    accuracy.change or ece.change (not a change from zeros the label-free state never filled)."""
    data = _data(3000, 1.0, 1)
    reference = streamdiv.Accumulator().update(probs=data["probs"])
    report = drift(reference, data, probs="probs", labels="label", by="region")
    for scope in [report.metrics] + [group["metrics"] for group in report.groups]:
        assert not any(name.startswith(("accuracy.", "ece.", "brier.", "cross_entropy.")) for name in scope)
        assert scope["prediction_entropy.change"] is not None and scope["mean_confidence.reference"] is not None
    assert report.metrics["confidence_psi"] == 0.0


def test_metric_comparisons_are_both_reports_side_by_side():
    reference, current = _data(10000, 1.0, 1), _data(10000, 0.6, 2)
    report = drift(reference, current, probs="probs", labels="label")
    before = streamdiv.evaluate(reference, probs="probs", labels="label").metrics
    after = streamdiv.evaluate(current, probs="probs", labels="label").metrics
    for metric in ("ece", "cross_entropy", "accuracy", "brier", "rows"):
        assert report.metrics[f"{metric}.reference"] == before[metric]
        assert report.metrics[f"{metric}.current"] == after[metric]
        assert report.metrics[f"{metric}.change"] == after[metric] - before[metric]
    assert report.metrics["ece.relative_change"] == (after["ece"] - before["ece"]) / before["ece"]
    assert report.metrics["rows.relative_change"] == 0.0
    assert "reverse_kl_divergence.change" not in report.metrics  # None on both sides (hard labels)


def test_a_stored_reference_gives_the_same_figures_as_its_data(tmp_path):
    reference, current = _data(8000, 1.0, 1), _data(8000, 0.8, 2)
    accumulator = streamdiv.Accumulator(bins=10)
    accumulator.update(probs=reference["probs"], labels=reference["label"])
    path = tmp_path / "reference.state"
    path.write_bytes(accumulator.to_bytes())
    from_data = drift(reference, current, probs="probs", labels="label", bins=10)
    for stored in (path, str(path), accumulator.to_bytes(), accumulator):
        from_state = drift(stored, current, probs="probs", labels="label")  # bins=10 from the state
        assert from_state.metrics == from_data.metrics


def test_empty_bins_are_smoothed_only_where_they_are():
    a, b = np.array([5.0, 3.0, 0.0, 2.0, 0.0]), np.array([4.0, 4.0, 2.0, 0.0, 0.0])
    figures = divergences(a, b, 0.5)
    assert figures == pytest.approx(_reference_figures(a, b, 0.5))
    assert figures["empty_bins"] == 2  # the bin empty on both sides is left out
    unsmoothed = divergences(a, b, 0.0)
    assert unsmoothed["kl"] == math.inf and unsmoothed["reverse_kl"] == math.inf
    assert unsmoothed["js"] == pytest.approx(_reference_figures(a, b, 0.0)["js"])  # JS stays finite
    full = np.array([1.0, 2.0, 3.0])
    assert divergences(full, full * 2, 0.5) == {"psi": 0.0, "js": 0.0, "kl": 0.0, "reverse_kl": 0.0, "empty_bins": 0}
    assert divergences(np.zeros(3), full)["psi"] is None


def test_groups_are_compared_with_the_same_group_or_the_whole_reference():
    reference, current = _data(9000, 1.0, 1), _data(9000, 0.7, 2)
    grouped = drift(reference, current, probs="probs", labels="label", by="region")
    for group in grouped.groups:
        region = group["group"]["region"]
        assert group["against"] == {"region": region}
        alone = drift({k: v[reference["region"] == region] for k, v in reference.items()},
                      {k: v[current["region"] == region] for k, v in current.items()}, probs="probs",
                      labels="label")
        for name in ("confidence_psi", "mean_prediction_kl", "ece.change"):
            assert group["metrics"][name] == pytest.approx(alone.metrics[name], rel=1e-12)
    ungrouped_reference = streamdiv.Accumulator()
    ungrouped_reference.update(probs=reference["probs"], labels=reference["label"])
    against_whole = drift(ungrouped_reference, current, probs="probs", labels="label", by="region")
    whole = drift(reference, {k: v[current["region"] == "eu"] for k, v in current.items()}, probs="probs",
                  labels="label")
    eu = next(g for g in against_whole.groups if g["group"]["region"] == "eu")
    assert eu["against"] is None
    assert eu["metrics"]["confidence_psi"] == pytest.approx(whole.metrics["confidence_psi"], rel=1e-12)


def test_a_windowed_current_side_gives_a_drift_series():
    reference, current = _data(6000, 1.0, 1), _data(6000, 0.7, 2)
    days = np.datetime64("2026-11-30") + (np.arange(6000) % 3).astype("timedelta64[D]")
    current["ts"] = days.astype("datetime64[ms]")
    reference["ts"] = (np.datetime64("2026-10-01") + (np.arange(6000) % 5).astype("timedelta64[D]")).astype(
        "datetime64[ms]")
    report = drift(reference, current, probs="probs", labels="label", time="ts", window="1d")
    series = report.series("confidence_psi")
    assert [start for start, _ in series] == ["2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"]
    for day, (start, value) in enumerate(series):
        chosen = np.arange(6000) % 3 == day
        alone = drift({k: v for k, v in reference.items() if k != "ts"},
                      {k: v[chosen] for k, v in current.items() if k != "ts"}, probs="probs", labels="label")
        assert value == pytest.approx(alone.metrics["confidence_psi"], rel=1e-12)
        assert report.groups[day]["against"] is None


def test_quantile_bins_compare_on_the_reference_edges():
    reference, current = _data(20000, 1.0, 1), _data(20000, 0.7, 2)
    report = drift(reference, current, probs="probs", labels="label", bins=10, binning="quantile")
    edges = streamdiv.evaluate(reference, probs="probs", labels="label", bins=10, binning="quantile").calibration
    cuts = [row["lower"] for row in edges] + [1.0]
    def histogram(data):
        c = data["probs"].max(axis=1)
        return np.array([((c >= lo) & ((c < hi) if hi < 1.0 else (c <= hi))).sum() for lo, hi in zip(cuts[:-1], cuts[1:])],
                        dtype=float)
    a, b = histogram(reference), histogram(current)
    assert a.sum() == b.sum() == 20000
    assert report.metrics["confidence_psi"] == pytest.approx(_reference_figures(a, b)["psi"], rel=1e-9)


def test_sides_that_cannot_be_compared_are_refused():
    four, three = _data(500, 1.0, 1), _data(500, 1.0, 2, num_classes=3)
    with pytest.raises(StreamdivError, match="differ in num_classes: 4 and 3"):
        drift(four, three, probs="probs", labels="label")
    stored = streamdiv.Accumulator(bins=10)
    stored.update(probs=four["probs"], labels=four["label"])
    with pytest.raises(StreamdivError, match="differ in bins: 10 and 15"):
        drift(stored, four, probs="probs", labels="label", bins=15)
    with pytest.raises(StreamdivError, match="smoothing must be a number >= 0"):
        drift(four, four, probs="probs", labels="label", smoothing=-1)


def test_a_misspelt_keyword_is_named_as_drifts():
    four = _data(50, 1.0, 1)
    with pytest.raises(TypeError, match=r"^drift\(\) got an unexpected keyword argument 'prob'; did you mean 'probs'\?"):
        drift(four, four, prob="probs", labels="label")


def test_fail_if_reads_drift_names():
    from streamdiv.conditions import Condition, breaches
    from streamdiv.drift_report import COMPARED_NAMES, DRIFT_NAMES

    report = drift(_data(5000, 1.0, 1), _data(5000, 0.5, 2), probs="probs", labels="label", by="region")
    names = DRIFT_NAMES + COMPARED_NAMES
    lines = breaches(report, [Condition.parse("confidence_psi>0.2", names), Condition.parse("ece.change>1", names)])
    assert len(lines) == 1 and lines[0].startswith("condition 'confidence_psi>0.2' holds: overall confidence_psi =")
    with pytest.raises(StreamdivError, match="unknown metric 'confidence_pis'"):
        Condition.parse("confidence_pis>0.2", names)
    light = drift(_data(500, 1.0, 1), _data(500, 0.5, 2), probs="probs", labels="label", metrics="loss")
    with pytest.raises(StreamdivError, match="ece.change is not computed on both sides"):
        breaches(light, [Condition.parse("ece.change>0", names)])
    assert light.metrics["confidence_psi"] is None  # the loss pass keeps no calibration bins


def _parquet(tmp_path, name: str, data: dict) -> str:
    import pyarrow.parquet as pq

    columns = {key: (pa.FixedSizeListArray.from_arrays(pa.array(value.ravel()), value.shape[1]) if value.ndim == 2
                     else value) for key, value in data.items()}
    path = str(tmp_path / name)
    pq.write_table(pa.table(columns), path)
    return path


def test_the_command_line_compares_with_a_stored_reference(tmp_path):
    import json

    from click.testing import CliRunner

    from streamdiv.cli import main

    reference, current = _data(6000, 1.0, 1), _data(4000, 0.5, 2)
    reference_path, current_path = _parquet(tmp_path, "ref.parquet", reference), _parquet(tmp_path, "cur.parquet", current)
    state, saved = str(tmp_path / "ref.state"), str(tmp_path / "cur.state")
    runner = CliRunner()
    result = runner.invoke(main, ["score", reference_path, "--probs", "probs", "--labels", "label", "--bins", "10",
                                  "--save-state", state, "-o", str(tmp_path / "ref.json")])
    assert result.exit_code == 0, result.output
    args = ["drift", "--reference", state, current_path, "--probs", "probs", "--labels", "label", "--by", "region",
            "--format", "json", "--save-state", saved]
    result = runner.invoke(main, args + ["--fail-if", "confidence_psi>0.2", "--fail-if", "ece.change>1"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    expected = drift(state, current, probs="probs", labels="label", by="region")  # bins=10 from the state
    assert data["metrics"]["confidence_psi"] == expected.metrics["confidence_psi"] > 0.2
    assert [g["against"] for g in data["groups"]] == [None, None, None]  # the reference was not grouped
    assert "condition 'confidence_psi>0.2' holds: overall confidence_psi =" in result.stderr
    assert "ece.change" not in result.stderr
    with open(saved, "rb") as handle:
        assert streamdiv.Accumulator.from_bytes(handle.read()).report().metrics["rows"] == 4000
    from_data = runner.invoke(main, ["drift", "--reference", reference_path, current_path, "--probs", "probs",
                                     "--labels", "label", "--bins", "10", "--format", "json"])
    assert json.loads(from_data.stdout)["metrics"] == data["metrics"]
    for fmt, marker in (("table", "distribution"), ("csv", "scope,region,predicted_class_psi"),
                        ("prometheus", "streamdiv_drift_confidence_psi{region=")):
        shown = runner.invoke(main, args[:-4] + ["--format", fmt])
        assert shown.exit_code == 0 and marker in shown.stdout, shown.output
    refused = runner.invoke(main, args + ["--fail-if", "confidence_pis>0.2"])
    assert refused.exit_code == 2 and "unknown metric 'confidence_pis'" in refused.output
