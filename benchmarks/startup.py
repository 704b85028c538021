"""Start-up of the command line: a cold run (numba compiles the kernels) and warm runs (it loads them).

    python benchmarks/startup.py                                # every layout: one cold compile each (minutes)
    python benchmarks/startup.py --layouts hard_fixed,demo --repeat 5
    python benchmarks/startup.py --markdown                     # the table for benchmarks/RESULTS.md

Each run is a fresh process, timed by wall clock around ``subprocess.run`` (output captured), with its CPU
time (user + system, from ``RUSAGE_CHILDREN``) beside it: the machine is shared, and a compile that gets half
a core takes twice the wall clock for the same CPU time.  Each layout gets a private, empty
``NUMBA_CACHE_DIR``: its first run compiles into it, the warm runs that follow load from it (the minimum of
``--repeat`` is shown).  Without that variable numba would use the cache written next to the sources in
``streamdiv/__pycache__`` by earlier runs, and the cold run would not be cold.  The child imports the
streamdiv of the tree this script lives in (its root is put first on ``PYTHONPATH``).  The input files (1,000
rows, 10 classes, float32, seeded) are written with pyarrow into a temporary directory.  Before the layouts,
the floor: the interpreter's own start-up, the import of numba, pyarrow, streamdiv and its command line, and
``streamdiv --version`` end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS, CLASSES = 1000, 10


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    arguments: tuple[str, ...]  # after `python -m streamdiv`; FILE stands for the layout's input file
    file: str | None  # which input file (see write_inputs), or None for a command that makes its own
    cold_target: float  # seconds, the target for the first run with an empty cache
    warm_target: float | None = None


SCORE = ("score", "FILE", "--format", "json")
LAYOUTS = [
    Layout("hard_fixed", "hard labels, fixed_size_list<float32>[10]",
           SCORE + ("--probs", "probs", "--labels", "label"), "hard", 8.0, 0.5),
    Layout("demo", "streamdiv demo (2,000,000 rows)", ("demo", "--format", "json"), None, 15.0),
    Layout("logits", "hard labels, float32 logits",
           SCORE + ("--logits", "logits", "--labels", "label"), "logits", 10.0),
    Layout("soft", "soft targets, float32", SCORE + ("--probs", "probs", "--targets", "target"), "soft", 10.0),
    Layout("binary", "binary, float32 p, int8 labels", SCORE + ("--probs", "p", "--labels", "label"), "binary", 10.0),
    Layout("per_class", "hard labels, 10 float32 columns", SCORE + ("--probs", "p_*", "--labels", "label"), "per_class",
           10.0),
    Layout("grouped", "hard labels, --by region", SCORE + ("--probs", "probs", "--labels", "label", "--by", "region"),
           "hard", 10.0),
    Layout("loss", "hard labels, --metrics loss",
           SCORE + ("--probs", "probs", "--labels", "label", "--metrics", "loss"), "hard", 10.0),
]


def write_inputs(directory: str) -> dict[str, str]:
    """The small Parquet files, seeded: the demo's predictions, and the other layouts derived from them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, ROOT)
    from streamdiv.synthetic import prediction_batch

    hard = prediction_batch(ROWS, CLASSES, np.random.default_rng(2026))  # probs, label, region
    probs = hard.column("probs").values.to_numpy().reshape(ROWS, CLASSES)
    labels = hard.column("label").to_numpy()
    one_hot = np.eye(CLASSES, dtype=np.float32)[labels]

    def fixed(matrix: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(matrix.astype(np.float32).reshape(-1)), CLASSES)

    tables = {
        "hard": pa.table(hard),
        "logits": pa.table({"logits": fixed(np.log(probs)), "label": labels}),
        "soft": pa.table({"probs": fixed(probs), "target": fixed(0.8 * one_hot + 0.2 * probs)}),
        "binary": pa.table({"p": probs[:, 0], "label": (labels == 0).astype(np.int8)}),
        "per_class": pa.table({f"p_{k}": probs[:, k] for k in range(CLASSES)} | {"label": labels}),
    }
    paths = {}
    for name, table in tables.items():
        paths[name] = os.path.join(directory, f"{name}.parquet")
        pq.write_table(table, paths[name])
    return paths


def child_environment(cache_dir: str | None = None) -> dict[str, str]:
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    env = os.environ | {"PYTHONPATH": path}
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(command: list[str], env: dict[str, str], timeout: float) -> tuple[float, float, str | None]:
    """Wall-clock seconds of the whole child process, its CPU seconds (user + system, all its threads), and
    its error (None if it exited 0).  On a shared machine the wall clock stretches with the load; the CPU
    time much less."""
    cpu = _children_cpu()
    started = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, _children_cpu() - cpu, f"over {timeout:.0f} s"
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return seconds, cpu, f"exit status {done.returncode}: {last[:120]}"
    return seconds, cpu, None


IMPORTS = """
import json, time
marks = [time.perf_counter()]
import numba; marks.append(time.perf_counter())
import pyarrow.parquet; marks.append(time.perf_counter())
import streamdiv; marks.append(time.perf_counter())
import streamdiv.cli; marks.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(marks, marks[1:])]))
"""


def floor(repeat: int, timeout: float) -> list[tuple[str, float]]:
    """What every run pays before any kernel: the interpreter, the imports, the CLI with nothing to do."""
    env = child_environment()
    steps: list[list[float]] = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", IMPORTS], env=env, capture_output=True, text=True,
                              check=True, timeout=timeout)
        steps.append(json.loads(done.stdout))
    numba_s, pyarrow_s, streamdiv_s, cli_s = (min(column) for column in zip(*steps))
    interpreter = min(timed_run([sys.executable, "-c", "pass"], env, timeout)[0] for _ in range(repeat))
    version = min(timed_run([sys.executable, "-m", "streamdiv", "--version"], env, timeout)[0]
                  for _ in range(repeat))
    return [("python -c pass, wall clock", interpreter),
            ("import numba, in process", numba_s),
            ("then import pyarrow.parquet", pyarrow_s),
            ("then import streamdiv", streamdiv_s),
            ("then import streamdiv.cli (click)", cli_s),
            ("python -m streamdiv --version, wall clock", version)]


def measure(layout: Layout, paths: dict[str, str], repeat: int, timeout: float) -> dict:
    arguments = [paths[layout.file] if layout.file and a == "FILE" else a for a in layout.arguments]
    command = [sys.executable, "-m", "streamdiv", *arguments]
    with tempfile.TemporaryDirectory(prefix=f"numba-cache-{layout.name}-") as cache_dir:
        env = child_environment(cache_dir)
        cold, cold_cpu, error = timed_run(command, env, timeout)
        warm = []
        if error is None:
            for _ in range(repeat):
                seconds, cpu, error = timed_run(command, env, timeout)
                if error is not None:
                    break
                warm.append((seconds, cpu))
    best = min(warm) if warm else (None, None)
    return {"cold": cold, "cold_cpu": cold_cpu, "warm": best[0], "warm_cpu": best[1], "error": error}


def verdict(layout: Layout, result: dict) -> tuple[str, str]:
    target = f"cold <= {layout.cold_target:g} s"
    parts = ["cold met" if result["cold"] <= layout.cold_target else "cold missed"]
    if layout.warm_target is not None:
        target += f", warm <= {layout.warm_target:g} s"
        parts.append("warm missed" if result["warm"] is None or result["warm"] > layout.warm_target else "warm met")
    if result["error"]:
        parts = [f"error: {result['error']}"]
    return target, ", ".join(parts)


def table(rows: list[list[str]], markdown: bool, right: set[int]) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |",
                 "|" + "|".join("---:" if i in right else "---" for i in range(len(rows[0]))) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))).rstrip() for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    known = [layout.name for layout in LAYOUTS]
    parser.add_argument("--layouts", help="comma-separated subset of: " + ", ".join(known))
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per layout; the minimum is shown (default 3)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for benchmarks/RESULTS.md)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for one run (default 900)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    chosen = LAYOUTS
    if args.layouts:
        names = [name.strip() for name in args.layouts.split(",") if name.strip()]
        unknown = sorted(set(names) - set(known))
        if unknown:
            parser.error(f"unknown layouts {', '.join(unknown)}; choose from {', '.join(known)}")
        chosen = [layout for layout in LAYOUTS if layout.name in names]
    import numba

    started_load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, numba "
          f"{numba.__version__}; streamdiv from {ROOT}; load average {started_load:.2f} at the start; "
          f"warm = min of {args.repeat} runs\n")
    floors = floor(args.repeat, args.timeout)
    print(table([[f"floor (min of {args.repeat})", "s"]] + [[name, f"{s:.3f}"] for name, s in floors],
                args.markdown, {1}))
    print()
    version_s = floors[-1][1]  # a warm run's share that is not the kernels': interpreter, imports, click
    rows = [["layout", "what", "cold s", "warm s", "cold/warm", "warm over --version s", "cold CPU s", "warm CPU s",
             "target", "met"]]
    with tempfile.TemporaryDirectory(prefix="streamdiv-startup-") as scratch:
        paths = write_inputs(scratch)
        for layout in chosen:
            result = measure(layout, paths, args.repeat, args.timeout)
            target, met = verdict(layout, result)
            warm = result["warm"]
            rows.append([layout.name, layout.description, f"{result['cold']:.2f}"]
                        + (["-"] * 3 if warm is None else
                           [f"{warm:.2f}", f"{result['cold'] / warm:.1f}", f"{warm - version_s:.2f}"])
                        + [f"{result['cold_cpu']:.1f}", "-" if warm is None else f"{result['warm_cpu']:.2f}"]
                        + [target, met])
            if not args.markdown:
                print(f"  {layout.name}: cold {result['cold']:.2f} s, warm {rows[-1][3]} s", file=sys.stderr)
    print(table(rows, args.markdown, {2, 3, 4, 5, 6, 7}))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end (the machine is shared: compare within one run)")


if __name__ == "__main__":
    main()
