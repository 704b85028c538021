"""Every program under examples/ runs as written, in quick mode, and prints what its README says it shows.

Each runs in a subprocess in a fresh work directory, with this interpreter, the repository root first on
PYTHONPATH and this interpreter's bin directory first on PATH (so that `streamdiv` and `python` in the shell
script are this installation's).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(command: list[str], cwd: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **extra_env)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHON"] = sys.executable
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def python_example(name: str, cwd: Path, *arguments: str, **extra_env: str) -> subprocess.CompletedProcess:
    return run_example([sys.executable, str(EXAMPLES / name), *arguments], cwd, **extra_env)


def numbers_after(label: str, text: str) -> list[float]:
    """The numbers printed right after ``label`` (and an optional '=' or ':'), in order."""
    pattern = re.escape(label) + r"\s*[=:]?\s*([-+0-9.eE]+|inf)"
    return [float(match) for match in re.findall(pattern, text)]


def explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def test_every_example_has_a_test_and_a_paragraph_in_the_examples_readme():
    examples = sorted(path.name for path in EXAMPLES.iterdir() if path.suffix in (".py", ".sh"))
    tested = set(re.findall(r'"(\w+\.(?:py|sh))"', Path(__file__).read_text()))
    readme = (EXAMPLES / "README.md").read_text()
    assert examples == sorted(tested & set(examples)), f"untested: {set(examples) - tested}"
    assert [name for name in examples if name not in readme] == []


def test_nightly_job_reports_the_breach_writes_every_report_and_exits_1(tmp_path):
    work = tmp_path / "nightly"
    done = run_example(["bash", str(EXAMPLES / "nightly_job.sh"), str(work), "--quick"], tmp_path)
    assert done.returncode == 1, explain(done)  # the gate is breached in `us` on the last night
    assert "drift gate: BREACH on week/day-2026-11-30.parquet" in done.stdout, explain(done)
    assert "condition 'confidence_psi>0.1' holds: region=us: confidence_psi = " in done.stderr
    assert "wrote 7 daily files of 3000 rows" in done.stdout
    assert len(list((work / "states").glob("*.state"))) == 5
    prometheus = (work / "streamdiv.prom").read_text()
    assert 'streamdiv_ece_ratio{window="2026-11-30T00:00:00Z",region="us"}' in prometheus
    for name in ("report.html", "drift.html"):  # written after the breach, before the exit
        html = (work / name).read_text()
        assert "<svg" in html or "data:image/png" in html, name


def test_distillation_shows_the_identity_on_real_numbers():
    done = python_example("distillation.py", EXAMPLES.parent, "--quick")
    assert done.returncode == 0, explain(done)
    differences = numbers_after("identity difference", done.stdout)
    assert len(differences) == 2 and all(0 <= d < 1e-12 for d in differences), done.stdout
    forward, = numbers_after("forward KL(teacher||student)", done.stdout)
    reverse, = numbers_after("reverse KL(student||teacher)", done.stdout)
    js, = numbers_after("Jensen-Shannon", done.stdout)
    assert 0 < js < min(forward, reverse) and js <= np.log(2)
    (numpy_check,) = re.findall(r"relative difference ([0-9.e+-]+)\)", done.stdout)
    assert float(numpy_check) < 1e-9
    entropy, closed_form = (numbers_after("entropy of the smoothed targets", done.stdout)
                            + numbers_after("closed form -(t ln t + (K-1) r ln r)", done.stdout))
    assert abs(entropy - closed_form) < 1e-11


def test_large_vocabulary_streams_32000_logits_and_matches_numpy(tmp_path):
    # through the environment variable rather than --quick, so that both spellings are covered
    done = python_example("large_vocabulary.py", tmp_path, "--directory", str(tmp_path),
                          STREAMDIV_EXAMPLE_QUICK="1")
    assert done.returncode == 0, explain(done)  # it exits non-zero when a cross-entropy differs from numpy's
    assert "K = 32,000 float32 logits a row" in done.stdout
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("IPC ") and "MiB" not in line]
    assert [row[-5] for row in rows] == ["64", "256", "64", "256"], done.stdout
    for row in rows:
        cross_entropy, numpy_value, perplexity = map(float, row[-4:-1])
        assert abs(cross_entropy - numpy_value) <= 1e-9 * numpy_value
        assert abs(perplexity - np.exp(cross_entropy)) < 0.01 and perplexity < 32_000
    assert "IPC stream: a file 4x as large, peak RSS growth" in done.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["warmup.arrows"]  # the scored files removed


def test_pipeline_merges_worker_states_equal_to_one_pass():
    done = python_example("pipeline.py", EXAMPLES.parent, "--quick")
    assert done.returncode == 0, explain(done)
    assert "the relation has __arrow_c_stream__: True" in done.stdout
    assert "2 workers: shard 0 10,000 rows" in done.stdout
    difference, = numbers_after("largest relative difference", done.stdout)
    assert difference < 1e-12
    one, merged = re.findall(r"(?:one pass|merged):\s+(<Report .*>)", done.stdout)
    assert one == merged and "rows=20000" in one


def test_sklearn_calibration_improves_ece_and_saves_both_diagrams(tmp_path):
    import matplotlib.image

    done = python_example("sklearn_calibration.py", tmp_path, "--quick", "--output-directory", str(tmp_path / "out"))
    assert done.returncode == 0, explain(done)
    (before, after), = re.findall(r"ECE before calibration ([0-9.]+), after calibration ([0-9.]+)", done.stdout)
    assert float(after) < float(before)
    assert "infinite_rows 14" in done.stdout  # naive Bayes gives some true classes a probability of 0
    image = matplotlib.image.imread(tmp_path / "out" / "reliability_before_after.png")
    height, width = image.shape[:2]
    assert width > 1.5 * height  # two diagrams side by side
    assert image.std() > 0.05    # not a blank canvas
