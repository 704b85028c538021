"""Plots: each kind rendered to PNG and SVG, its content checked against the report's numbers (axes, labels,
titles, bars and points), from memory, from JSON and from a saved state, through the API and the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime, timezone

import matplotlib.image
import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure

import streamdiv
from streamdiv import plots
from streamdiv.cli import main
from streamdiv.errors import StreamdivError
from streamdiv.synthetic import prediction_batch, write_days

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TABLE = pa.Table.from_batches([prediction_batch(6000, 10, np.random.default_rng(7))])


@pytest.fixture(scope="module")
def report():
    return streamdiv.evaluate(TABLE, probs="probs", labels="label", by="region")


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    return write_days(str(tmp_path_factory.mktemp("week")), days=4, rows_per_day=1500, shift_day=2)


@pytest.fixture(scope="module")
def windowed(week):
    return streamdiv.evaluate(week, probs="probs", labels="label", by="region", time="ts", window="1d")


@pytest.fixture(scope="module")
def drifted(week):
    return streamdiv.drift(week[:1], week[1:], probs="probs", labels="label", time="ts", window="1d")


def _line(axis, label):
    (line,) = [line for line in axis.get_lines() if line.get_label() == label]
    return line


def _bars(axis, label):
    (container,) = [c for c in axis.containers if c.get_label() == label]
    return container.patches


def _used(table):
    return [row for row in table if row["weight"] > 0]


# ---- reliability

def test_reliability_points_are_the_bins_means_and_the_histogram_their_weights(report):
    data = report.to_dict()
    figure = plots.reliability(data)
    diagram, histogram = figure.axes
    used = _used(data["calibration"])
    points = _line(diagram, "observed")
    assert list(points.get_xdata()) == [row["confidence"] for row in used]
    assert list(points.get_ydata()) == [row["observed"] for row in used]
    assert len(_bars(diagram, "gap")) == len(used) < len(data["calibration"])  # the demo leaves low bins empty
    bars = _bars(histogram, "weight per bin")
    assert len(bars) == len(data["calibration"]) == 15
    assert [bar.get_height() for bar in bars] == [row["weight"] for row in data["calibration"]]
    assert list(_line(diagram, "perfectly calibrated").get_xydata().ravel()) == [0, 0, 1, 1]
    title = diagram.get_title()
    assert title == f"Reliability: ECE {data['metrics']['ece']:.4f}, 6,000 rows (15 uniform bins)"
    assert (diagram.get_ylabel(), histogram.get_xlabel(), histogram.get_ylabel()) == (
        "observed frequency", "mean confidence (max_k q_k)", "rows")
    assert histogram.get_shared_x_axes().joined(diagram, histogram)


def test_quantile_bins_are_bars_of_their_own_widths():
    data = streamdiv.evaluate(TABLE, probs="probs", labels="label", binning="quantile", bins=8).to_dict()
    histogram = plots.reliability(data).axes[1]
    bars = _bars(histogram, "weight per bin")
    table = data["calibration"]
    assert [bar.get_x() for bar in bars] == [row["lower"] for row in table]
    assert [bar.get_width() for bar in bars] == pytest.approx([row["upper"] - row["lower"] for row in table],
                                                              rel=0, abs=1e-15)
    widths = {round(bar.get_width(), 6) for bar in bars}
    assert len(widths) > 1  # equal weight, unequal widths
    assert "(8 quantile bins)" in plots.reliability(data).axes[0].get_title()


def test_reliability_on_a_given_axis_puts_the_histogram_on_a_twin(report):
    figure = Figure()
    axis, other = figure.subplots(1, 2)
    assert report.plot(ax=axis) is figure
    assert len(figure.axes) == 3  # the two given, and the histogram's twin of the first
    assert len(_line(axis, "observed").get_xdata()) == len(_used(report.to_dict()["calibration"]))
    assert len(_bars(figure.axes[2], "weight per bin")) == 15
    assert not other.get_lines()


def test_a_label_free_report_draws_its_confidence_histogram_alone():
    data = streamdiv.evaluate(TABLE, probs="probs").to_dict()
    figure = plots.reliability(data)
    (axis,) = figure.axes
    assert axis.get_title().startswith("Confidence histogram (no labels: no reliability diagram)\n6,000 rows")
    bars = _bars(axis, "weight per bin")
    assert [bar.get_height() for bar in bars] == [entry["weight"] for entry in data["distributions"]["confidence"]]
    assert not [line for line in axis.get_lines() if line.get_label() == "observed"]


def test_a_report_read_back_from_json_draws_the_same(report):
    loaded = json.loads(report.to_json())
    from_memory, from_json = plots.reliability(report.to_dict()), plots.reliability(loaded)
    assert (list(_line(from_memory.axes[0], "observed").get_ydata())
            == list(_line(from_json.axes[0], "observed").get_ydata()))
    assert plots.svg(from_memory) == plots.svg(from_json)  # no date, fixed ids: the same document


def test_reliability_refusals():
    loss = streamdiv.evaluate(TABLE, probs="probs", labels="label", metrics="loss").to_dict()
    with pytest.raises(StreamdivError, match=r"^this report has no calibration table \(it was scored with "
                                             r"metrics='loss'\): score with metrics='all'"):
        plots.reliability(loss)
    with pytest.raises(StreamdivError, match="^a plot takes a report's data, Report.to_dict"):
        plots.reliability([1, 2])


# ---- classwise

def test_classwise_draws_the_most_frequent_classes_with_a_note(report):
    data = report.to_dict()
    figure = plots.classwise(data, max_classes=4)
    assert len(figure.axes) == 4
    assert figure.get_suptitle() == (f"Class-wise reliability, classwise ECE {data['metrics']['classwise_ece']:.4f}"
                                     f"\n4 of 10 classes shown (the most frequent)")
    by_frequency = sorted(data["classes"], key=lambda entry: -entry["observed_frequency"])[:4]
    assert [axis.get_title().split(":")[0] for axis in figure.axes] == [entry["class"] for entry in by_frequency]
    first = by_frequency[0]["calibration"]
    assert list(_line(figure.axes[0], "observed").get_xdata()) == [row["prediction"] for row in _used(first)]
    every = plots.classwise(data, max_classes=12)
    assert len(every.axes) == 10 and every.get_suptitle().endswith("\n10 of 10 classes shown")


def test_classwise_refusals(report):
    off = streamdiv.evaluate(TABLE, probs="probs", labels="label", classwise=False).to_dict()
    with pytest.raises(StreamdivError, match=r"^this report has no class-wise calibration: score with "
                                             r"classwise=True \(--classwise\)"):
        plots.classwise(off)
    with pytest.raises(StreamdivError, match="^max_classes must be a whole number >= 1"):
        plots.classwise(report.to_dict(), max_classes=0)


# ---- series

def _starts(windows):
    return [datetime.fromisoformat(start.replace("Z", "+00:00")) for start in windows]


def test_series_draws_one_line_per_group_at_the_window_starts(windowed):
    figure = plots.series(windowed.to_dict(), metric="ece")
    (axis,) = figure.axes
    lines = axis.get_lines()
    assert sorted(line.get_label() for line in lines) == ["region=apac", "region=eu", "region=us"]
    for line in lines:
        expected = windowed.series("ece", region=line.get_label().split("=")[1])
        assert list(line.get_xdata()) == _starts(start for start, _ in expected)
        assert list(line.get_ydata()) == [value for _, value in expected]
    assert list(lines[0].get_xdata())[0] == datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert (axis.get_title(), axis.get_xlabel(), axis.get_ylabel()) == ("ece per 1d window", "window start (UTC)",
                                                                        "ece")
    assert [text.get_text() for text in axis.get_xticklabels()][:2] == ["24", "25"]


def test_windows_alone_give_one_line_all_and_information_is_in_the_unit(week):
    data = streamdiv.evaluate(week, probs="probs", labels="label", time="ts", window="1d", base=2).to_dict()
    (axis,) = plots.series(data, metric="cross_entropy").axes
    (line,) = axis.get_lines()
    assert line.get_label() == "all" and len(line.get_xdata()) == 4
    assert axis.get_ylabel() == "cross_entropy (bits)"


def test_a_drift_series_follows_a_drift_figure(drifted):
    data = drifted.to_dict()
    (axis,) = drifted.plot("series", metric="confidence_psi").axes
    (line,) = axis.get_lines()
    assert list(line.get_ydata()) == [entry["metrics"]["confidence_psi"] for entry in data["groups"]]
    assert axis.get_title() == "confidence_psi per 1d window against the reference"
    assert axis.get_ylabel() == "confidence_psi (nats)"


def test_series_refusals(report, windowed):
    with pytest.raises(StreamdivError, match=r"^a series needs a windowed report, and this one is grouped by "
                                             r"region only: score with --time COLUMN --window WIDTH"):
        plots.series(report.to_dict())
    with pytest.raises(StreamdivError, match=r"^unknown metric 'eec' for a series; this report's are: rows, "):
        plots.series(windowed.to_dict(), metric="eec")


# ---- drift

def test_drift_sets_the_two_sides_distributions_side_by_side(drifted):
    data = drifted.to_dict()
    figure = plots.drift(data)
    predicted, mean, confidence = figure.axes
    assert len(figure.axes) == 3
    assert len(predicted.patches) == len(mean.patches) == 2 * 10
    heights = [bar.get_height() for bar in predicted.containers[0].patches]
    assert heights == data["distributions"]["predicted_class"]["reference"]
    assert predicted.get_title() == f"predicted class: PSI {data['metrics']['predicted_class_psi']:.4f}"
    assert confidence.get_title() == f"confidence: PSI {data['metrics']['confidence_psi']:.4f}"
    steps = [patch for patch in confidence.patches if patch.get_label() == "current"]
    values, edges, _ = steps[0].get_data()
    assert list(values) == data["distributions"]["confidence"]["current"]
    assert list(edges[:-1]) == data["distributions"]["confidence"]["lower"]
    assert [text.get_text() for text in predicted.get_legend().get_texts()] == ["reference", "current"]
    assert figure.get_suptitle() == "Drift: current (4,500 rows read) against the reference (1,500 rows read)"


def test_a_distribution_not_computed_says_so(drifted):
    data = drifted.to_dict()
    data["distributions"]["predicted_class"] = {"reference": None, "current": None}
    data["metrics"]["predicted_class_psi"] = None
    predicted = plots.drift(data).axes[0]
    assert [text.get_text() for text in predicted.texts] == ["not computed"]
    assert predicted.get_title() == "predicted class: PSI n/a" and not predicted.patches


def test_what_each_report_cannot_draw(report, drifted):
    with pytest.raises(StreamdivError, match="^a drift plot needs a drift report"):
        report.plot("drift")
    with pytest.raises(StreamdivError, match=r"^a drift report holds no reliability table: plot the current side's "
                                             r"report \(DriftReport.current.plot\('reliability'\)"):
        drifted.plot("reliability")
    with pytest.raises(StreamdivError, match=r"^unknown plot kind 'pie'; the kinds are: reliability, classwise, "
                                             r"series, drift$"):
        report.plot("pie")
    with pytest.raises(StreamdivError, match=r"^the classwise plot does not take metric \(its options: "
                                             r"max_classes\)$"):
        report.plot("classwise", metric="ece")
    with pytest.raises(StreamdivError, match=r"^the drift plot does not take ax \(its options: none\)$"):
        drifted.plot("drift", ax=Figure().subplots())


# ---- rendering

def test_svg_and_png_render_the_figure(report):
    figure = report.plot()
    document = plots.svg(figure)
    assert document.startswith("<?xml") and "<svg" in document
    assert f"Reliability: ECE {report.metrics['ece']:.4f}, 6,000 rows" in document
    picture = plots.png(figure)
    assert picture.startswith(PNG_MAGIC)
    pixels = matplotlib.image.imread(io.BytesIO(picture))
    assert pixels.shape == (640, 600, 4)  # 6.4 x 6 inches at 100 dpi
    assert plots.KINDS == ("reliability", "classwise", "series", "drift")


def test_plotting_touches_no_global_state_and_import_streamdiv_does_not_import_matplotlib(tmp_path):
    code = ("import sys, streamdiv\n"
            "assert 'matplotlib' not in sys.modules\n"
            "import streamdiv.plots\n"
            "assert 'matplotlib' not in sys.modules\n"
            "from streamdiv.synthetic import prediction_batch\n"
            "import numpy as np\n"
            "report = streamdiv.evaluate(prediction_batch(500, 10, np.random.default_rng(1)), probs='probs', "
            "labels='label')\n"
            "streamdiv.plots.png(report.plot())\n"
            "print('pyplot' if 'matplotlib.pyplot' in sys.modules else 'no pyplot')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "no pyplot\n"


def test_without_matplotlib_every_entry_point_says_which_extra(tmp_path):
    state = tmp_path / "run.state"
    state.write_bytes(_state_bytes())
    code = ("import sys\n"
            "sys.modules['matplotlib'] = None\n"
            "import streamdiv, streamdiv.plots as plots\n"
            "from click.testing import CliRunner\n"
            "from streamdiv.cli import main\n"
            f"report = streamdiv.Accumulator.from_bytes(open({str(state)!r}, 'rb').read()).report()\n"
            "for call in (lambda: report.plot(), lambda: plots.series(report.to_dict()), "
            "lambda: plots.drift({}), lambda: plots.png(None)):\n"
            "    try:\n"
            "        call()\n"
            "    except streamdiv.StreamdivError as error:\n"
            "        print(error)\n"
            f"result = CliRunner().invoke(main, ['plot', {str(state)!r}, '-o', {str(tmp_path / 'r.png')!r}])\n"
            "print(result.exit_code)\n"
            "print(result.stderr, end='')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    message = "plotting needs matplotlib: pip install 'streamdiv[plot]'"
    assert done.stdout == f"{message}\n" * 4 + f"3\nstreamdiv: error: {message}\n"
    assert not (tmp_path / "r.png").exists()


# ---- the command line

def _state_bytes():
    return streamdiv.Accumulator().update(probs=TABLE["probs"], labels=TABLE["label"]).to_bytes()


def invoke(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.stderr, result.exception)
    return result


def test_cli_plots_a_saved_state_as_png_and_svg(tmp_path):
    state = tmp_path / "run.state"
    state.write_bytes(_state_bytes())
    invoke("plot", state, "-o", tmp_path / "r.png")
    pixels = matplotlib.image.imread(tmp_path / "r.png")
    assert pixels.shape == (640, 600, 4)
    invoke("plot", state, "-o", tmp_path / "r.svg")
    ece = streamdiv.Accumulator.from_bytes(state.read_bytes()).report().metrics["ece"]
    assert f"Reliability: ECE {ece:.4f}, 6,000 rows" in (tmp_path / "r.svg").read_text()
    invoke("plot", state, "-o", tmp_path / "c.svg", "--kind", "classwise", "--max-classes", "3")
    assert "3 of 10 classes shown (the most frequent)" in (tmp_path / "c.svg").read_text()


def test_cli_plots_json_reports_of_score_and_drift(tmp_path, week):
    invoke("score", *week, "--probs", "probs", "--labels", "label", "--time", "ts", "--window", "1d",
           "--format", "json", "-o", tmp_path / "week.json")
    invoke("plot", tmp_path / "week.json", "-o", tmp_path / "ece.svg", "--kind", "series", "--metric", "ece")
    assert "ece per 1d window" in (tmp_path / "ece.svg").read_text()
    invoke("drift", "--reference", week[0], *week[1:], "--probs", "probs", "--labels", "label", "--time", "ts",
           "--window", "1d", "--format", "json", "-o", tmp_path / "drift.json")
    invoke("plot", tmp_path / "drift.json", "-o", tmp_path / "drift.svg")  # a drift report: drift by default
    assert "confidence: PSI " in (tmp_path / "drift.svg").read_text()
    invoke("plot", tmp_path / "drift.json", "-o", tmp_path / "psi.svg", "--kind", "series")
    assert "confidence_psi per 1d window against the reference" in (tmp_path / "psi.svg").read_text()


def test_cli_refusals_name_the_fix(tmp_path, report):
    saved = tmp_path / "report.json"
    saved.write_text(report.to_json())
    result = invoke("plot", saved, "-o", tmp_path / "r.pdf", code=2)
    assert "Invalid value for -o/--output: write a .png or .svg file, not 'r.pdf'" in result.stderr
    result = invoke("plot", saved, "-o", tmp_path / "r.png", "--metric", "ece", code=2)
    assert "Error: --metric goes with --kind series, not --kind reliability" in result.stderr
    result = invoke("plot", saved, "-o", tmp_path / "r.png", "--max-classes", "3", code=2)
    assert "Error: --max-classes goes with --kind classwise, not --kind reliability" in result.stderr
    result = invoke("plot", saved, "-o", tmp_path / "r.png", "--kind", "series", code=3)
    assert result.stderr == ("streamdiv: error: a series needs a windowed report, and this one is grouped by "
                             "region only: score with --time COLUMN --window WIDTH (time=, window= in Python), "
                             "such as --time ts --window 1d\n")
    other = tmp_path / "notes.txt"
    other.write_text("not a report")
    result = invoke("plot", other, "-o", tmp_path / "r.png", code=3)
    assert result.stderr == (f"streamdiv: error: {other} is neither a saved state (--save-state) nor a JSON "
                             f"report written by streamdiv (score, merge or drift with --format json, one report "
                             f"per file)\n")
    assert not (tmp_path / "r.png").exists()
