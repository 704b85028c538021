"""streamdiv against the floor and its peers, in one run, on deterministic data.

    python benchmarks/run.py                 # ~1 GB of floats per dataset (slow: generation takes minutes)
    python benchmarks/run.py --scale 0.1     # ~100 MB per dataset
    python benchmarks/run.py --only hard_k10_fixed,binary --repeats 5

Every measurement runs in a fresh child process (so its peak RSS is its own, read with os.wait4, and one
peer's threads or caches cannot disturb another), at 2 threads for everyone; repetitions are interleaved
round-robin over the methods and the median is reported.  Times cover the work only: imports, JIT
warm-up and (for in-memory methods) loading the data happen before the clock starts.  Peers that are not
installed are reported as missing.  See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

THREADS = "2"
CHILD_ENV = {"OMP_NUM_THREADS": THREADS, "NUMBA_NUM_THREADS": THREADS, "POLARS_MAX_THREADS": THREADS,
             "MKL_NUM_THREADS": THREADS, "OPENBLAS_NUM_THREADS": THREADS}


# ----------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "hard", "binary", "soft", "logits"
    layout: str  # "fixed", "list", "wide", "scalar"
    classes: int
    bytes_per_gb_rows: int  # rows per GB of float payload

    def rows(self, scale: float) -> int:
        return max(1000, int(self.bytes_per_gb_rows * scale))

    @property
    def float_bytes_per_row(self) -> int:
        return 4 * self.classes * (2 if self.kind == "soft" else 1)


DATASETS = [
    Dataset("binary", "binary", "scalar", 1, 250_000_000),
    Dataset("hard_k10_fixed", "hard", "fixed", 10, 25_000_000),
    Dataset("hard_k10_list", "hard", "list", 10, 25_000_000),
    Dataset("hard_k10_wide", "hard", "wide", 10, 25_000_000),
    Dataset("hard_k100_fixed", "hard", "fixed", 100, 2_500_000),
    Dataset("hard_k1000_fixed", "hard", "fixed", 1000, 250_000),
    Dataset("soft_k10_fixed", "soft", "fixed", 10, 12_500_000),
    Dataset("logits_k10_fixed", "logits", "fixed", 10, 25_000_000),
    Dataset("logits_k32000_fixed", "logits", "fixed", 32000, 7_800),
]


def write_dataset(dataset: Dataset, path: str, rows: int, seed: int = 7) -> None:
    """Seeded data: softmax of N(0, 2^2) logits, labels drawn from them (calibrated predictions)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    k = dataset.classes
    group = max(1, min(1 << 20, (64 << 20) // max(1, 4 * k)))  # row groups of at most ~64 MB of floats
    writer = None
    for start in range(0, rows, group):
        n = min(group, rows - start)
        if dataset.kind == "binary":
            p = 1 / (1 + np.exp(-rng.normal(0, 2, n)))
            table = pa.table({"p": p.astype(np.float32), "label": (rng.random(n) < p).astype(np.int8)})
        else:
            z = rng.normal(0, 2, (n, k)).astype(np.float32)
            e = np.exp(z - z.max(1, keepdims=True))
            q = (e / e.sum(1, keepdims=True)).astype(np.float32)
            label = np.minimum((q.cumsum(1) < rng.random((n, 1))).sum(1), k - 1).astype(np.int32)
            columns = {}
            main = z if dataset.kind == "logits" else q
            name = "logits" if dataset.kind == "logits" else "probs"
            if dataset.layout == "wide":
                columns |= {f"p_{i}": main[:, i] for i in range(k)}
            elif dataset.layout == "list":
                offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
                columns[name] = pa.ListArray.from_arrays(offsets, pa.array(main.reshape(-1)))
            else:
                columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(main.reshape(-1)), k)
            if dataset.kind == "soft":
                t = rng.normal(0, 2, (n, k))
                t = np.exp(z + t * 0.5)
                t[rng.random((n, k)) < 0.3] = 0
                t[np.arange(n), q.argmax(1)] += 1e-3
                t = (t / t.sum(1, keepdims=True)).astype(np.float32)
                columns["target"] = pa.FixedSizeListArray.from_arrays(pa.array(t.reshape(-1)), k)
            else:
                columns["label"] = label
            table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="snappy")
        writer.write_table(table, row_group_size=group)
    writer.close()


# ----------------------------------------------------------------------------------------------- methods
# Each method: (applies to dataset?) and a child-side function returning (seconds, checksum value).

def _columns(ds: Dataset) -> dict:
    if ds.kind == "binary":
        return {"probs": "p", "labels": "label"}
    if ds.kind == "soft":
        return {"probs": "probs", "targets": "target"}
    if ds.kind == "logits":
        return {"logits": "logits", "labels": "label"}
    return {"probs": "p_*" if ds.layout == "wide" else "probs", "labels": "label"}


def _load_numpy(ds: Dataset, path: str):
    """The whole file as float32 matrices and int labels (untimed preparation of in-memory methods)."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if ds.kind == "binary":
        return table["p"].to_numpy(), table["label"].to_numpy().astype(np.int64)

    def matrix(name):
        column = table[name].combine_chunks()
        return column.values.to_numpy().reshape(len(column), -1) if hasattr(column, "values") else None

    if ds.layout == "wide":
        main = np.stack([table[f"p_{i}"].to_numpy() for i in range(ds.classes)], 1)
    else:
        main = matrix("logits" if ds.kind == "logits" else "probs")
    truth = matrix("target") if ds.kind == "soft" else table["label"].to_numpy().astype(np.int64)
    return main, truth


def _timed(work: Callable[[], float]) -> tuple[float, float]:
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, float(value)


def m_floor_decode(ds, path):
    """Best of pyarrow's readers, decoding only the needed columns and doing nothing with them."""
    import concurrent.futures

    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    names = [n for n in pq.ParquetFile(path).schema_arrow.names]
    best = None
    for reader in ("iter_batches", "two_row_groups", "dataset"):
        started = time.perf_counter()
        rows = 0
        if reader == "iter_batches":
            f = pq.ParquetFile(path)
            for g in range(f.metadata.num_row_groups):
                for b in f.iter_batches(batch_size=1 << 16, row_groups=[g], columns=names):
                    rows += b.num_rows
        elif reader == "two_row_groups":  # one ParquetFile per read: a shared one is not thread-safe
            groups = range(pq.ParquetFile(path).metadata.num_row_groups)
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                for t in pool.map(lambda g: pq.ParquetFile(path).read_row_group(g, columns=names), groups):
                    rows += t.num_rows
        else:
            for b in pads.dataset(path).to_batches(columns=names):
                rows += b.num_rows
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    return best, float(rows)


def m_streamdiv(ds, path, metrics="all"):
    """streamdiv.evaluate: Parquet -> the full report (every metric), or the loss metrics, end to end."""
    import pyarrow.parquet as pq

    import streamdiv

    # 100 rows of the same column types load the JIT cache; reading no more keeps the peak-RSS baseline honest
    warm = next(pq.ParquetFile(path).iter_batches(batch_size=100))
    streamdiv.evaluate(warm, **_columns(ds), metrics=metrics)
    return _timed(lambda: streamdiv.evaluate(path, **_columns(ds), metrics=metrics).metrics["cross_entropy"])


def _accumulate(ds, main, truth, metrics):
    import streamdiv

    role = "logits" if ds.kind == "logits" else "probs"
    truth_role = "targets" if ds.kind == "soft" else "labels"
    accumulator = streamdiv.Accumulator(metrics=metrics).update(**{role: main, truth_role: truth})
    return accumulator.report().metrics["cross_entropy"]


def m_streamdiv_memory(ds, path, metrics="all"):
    """Accumulator.update on numpy arrays already in memory: the full report, or the loss metrics."""
    main, truth = _load_numpy(ds, path)
    _accumulate(ds, main[:100], truth[:100], metrics)
    return _timed(lambda: _accumulate(ds, main, truth, metrics))


def m_memory_floor(ds, path):
    """Reading every float once: numpy's sum of the float buffer (the memory-bandwidth floor)."""
    main, truth = _load_numpy(ds, path)
    return _timed(lambda: main.sum(dtype="float64") + (truth.sum() if ds.kind == "soft" else 0))


def m_numpy_ce(ds, path):
    """numpy on the loaded arrays: cross-entropy alone."""
    import numpy as np

    main, truth = _load_numpy(ds, path)

    def work():
        if ds.kind == "binary":
            return -np.mean(np.where(truth == 1, np.log(main), np.log1p(-main)))
        if ds.kind == "soft":
            with np.errstate(divide="ignore", invalid="ignore"):
                return -np.mean(np.sum(np.where(truth > 0, truth * np.log(main), 0), 1))
        if ds.kind == "logits":
            z = main.astype(np.float64)
            m = z.max(1)
            return np.mean(np.log(np.exp(z - m[:, None]).sum(1)) + m - z[np.arange(len(z)), truth])
        return -np.mean(np.log(main[np.arange(len(main)), truth]))
    return _timed(work)


def m_numpy_full(ds, path):
    """numpy on the loaded arrays: the same metric set as streamdiv's report (hard labels, probabilities)."""
    import numpy as np

    main, truth = _load_numpy(ds, path)

    def work():
        n = len(main)
        rows = np.arange(n)
        qy = main[rows, truth].astype(np.float64)
        ce = -np.log(qy).mean()
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(main > 0, main * np.log(main), 0).sum(1).mean()
        top = main.argmax(1)
        conf = main[rows, top].astype(np.float64)
        correct = (top == truth).astype(np.float64)
        brier = ((main.astype(np.float64) ** 2).sum(1) - 2 * qy + 1).mean()
        bins = np.minimum((conf * 15).astype(int), 14)
        gap = np.abs(np.bincount(bins, conf, 15) - np.bincount(bins, correct, 15)).sum() / n
        return ce + h + correct.mean() + brier + gap
    return _timed(work)


def m_duckdb(ds, path, full):
    """DuckDB SQL over the Parquet file, 2 threads: cross-entropy alone, or the full metric set."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads={THREADS}")
    src = f"read_parquet('{path}')"
    k = ds.classes
    if ds.kind == "binary":
        row = ("-(label*ln(p) + (1-label)*ln(1-p)) AS ce, p AS conf, ((p > 0.5)::INT = label)::DOUBLE AS correct, "
               "(p-label)*(p-label) AS brier, -(CASE WHEN p>0 THEN p*ln(p) ELSE 0 END + "
               "CASE WHEN p<1 THEN (1-p)*ln(1-p) ELSE 0 END) AS h, label::DOUBLE AS obs")
        ce_only = f"SELECT avg(-(label*ln(p) + (1-label)*ln(1-p))) FROM {src}"
    elif ds.kind == "soft":
        kl = f"list_sum(list_transform(range(1, {k + 1}), lambda i: CASE WHEN target[i] > 0 THEN target[i]*ln(target[i]/probs[i]) ELSE 0 END))"
        ce_only = f"SELECT avg({kl}) FROM {src}"
        row = (f"{kl} AS ce, list_max(probs) AS conf, "
               f"(list_position(probs, list_max(probs)) = list_position(target, list_max(target)))::DOUBLE AS correct, "
               f"list_sum(list_transform(range(1, {k + 1}), lambda i: (probs[i]-target[i])*(probs[i]-target[i]))) AS brier, "
               f"-list_sum(list_transform(probs, lambda x: CASE WHEN x > 0 THEN x*ln(x) ELSE 0 END)) AS h, "
               f"target[list_position(probs, list_max(probs))] AS obs")
    elif ds.kind == "logits":
        ce_only = (f"SELECT avg(ln(list_sum(list_transform(logits, lambda x: exp(x - m)))) + m - logits[label+1]) "
                   f"FROM (SELECT logits, label, list_max(logits) AS m FROM {src})")
        if full:
            return None  # the full set from logits needs a softmax per row: not written for DuckDB
        row = None
    else:
        probs = "probs" if ds.layout != "wide" else "list_value(" + ", ".join(f"p_{i}" for i in range(k)) + ")"
        ce_only = (f"SELECT avg(-ln({probs}[label+1])) FROM {src}" if ds.layout != "wide" else
                   "SELECT avg(-ln(CASE label " + " ".join(f"WHEN {i} THEN p_{i}" for i in range(k)) + f" END)) FROM {src}")
        row = ("-ln(pr[label+1]) AS ce, list_max(pr) AS conf, "
               "(list_position(pr, list_max(pr)) - 1 = label)::DOUBLE AS correct, "
               "list_sum(list_transform(pr, lambda x: x*x)) - 2*pr[label+1] + 1 AS brier, "
               "-list_sum(list_transform(pr, lambda x: CASE WHEN x > 0 THEN x*ln(x) ELSE 0 END)) AS h, "
               "(list_position(pr, list_max(pr)) - 1 = label)::DOUBLE AS obs")
        src = f"(SELECT {probs} AS pr, label FROM {src})"
    if not full:
        return _timed(lambda: con.execute(ce_only).fetchone()[0])
    query = (f"SELECT sum(s_ce)/sum(n), sum(s_h)/sum(n), sum(s_c)/sum(n), sum(s_b)/sum(n), sum(abs(s_conf-s_obs))/sum(n) "
             f"FROM (SELECT least(floor(conf*15), 14) AS bin, count(*) AS n, sum(ce) AS s_ce, sum(h) AS s_h, "
             f"sum(correct) AS s_c, sum(brier) AS s_b, sum(conf) AS s_conf, sum(obs) AS s_obs "
             f"FROM (SELECT {row} FROM {src}) GROUP BY bin)")
    return _timed(lambda: con.execute(query).fetchone()[0])


def m_polars(ds, path):
    """polars lazy scan (streaming engine), cross-entropy alone."""
    import polars as pl

    scan = pl.scan_parquet(path)
    if ds.kind == "binary":
        expr = -(pl.when(pl.col("label") == 1).then(pl.col("p").log()).otherwise((1 - pl.col("p")).log())).mean()
    elif ds.kind == "hard" and ds.layout == "wide":
        pick = pl.lit(None, dtype=pl.Float32)
        for i in reversed(range(ds.classes)):
            pick = pl.when(pl.col("label") == i).then(pl.col(f"p_{i}")).otherwise(pick)
        expr = -(pick.log()).mean()
    elif ds.kind == "hard":
        get = pl.col("probs").arr.get if ds.layout == "fixed" else pl.col("probs").list.get
        expr = -(get(pl.col("label")).log()).mean()
    else:
        return None
    return _timed(lambda: scan.select(expr).collect(engine="streaming").item())


def m_torch(ds, path):
    """torch CPU, 2 threads, in memory: nll of log p (cross_entropy on logits), BCE, or kl_div."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(int(THREADS))
    main, truth = _load_numpy(ds, path)
    x = torch.from_numpy(main)
    t = torch.from_numpy(truth)
    if ds.kind == "binary":
        return _timed(lambda: F.binary_cross_entropy(x, t.to(x.dtype)).item())
    if ds.kind == "soft":
        return _timed(lambda: F.kl_div(x.log(), t, reduction="batchmean").item())
    if ds.kind == "logits":
        return _timed(lambda: F.cross_entropy(x, t).item())
    return _timed(lambda: F.nll_loss(x.log(), t).item())


def m_sklearn(ds, path):
    """scikit-learn log_loss (brier_score_loss too for binary), in memory."""
    from sklearn.metrics import brier_score_loss, log_loss

    main, truth = _load_numpy(ds, path)
    if ds.kind == "binary":
        return _timed(lambda: log_loss(truth, main) + brier_score_loss(truth, main))
    if ds.kind == "hard":
        return _timed(lambda: log_loss(truth, main, labels=list(range(ds.classes))))
    return None


def m_scipy(ds, path):
    """scipy rel_entr (soft KL) or stats.entropy (prediction entropy), in memory."""
    from scipy.special import rel_entr
    from scipy.stats import entropy

    main, truth = _load_numpy(ds, path)
    if ds.kind == "soft":
        return _timed(lambda: rel_entr(truth, main).sum(1).mean())
    if ds.kind == "hard":
        return _timed(lambda: entropy(main, axis=1).mean())
    return None


def m_torchmetrics(ds, path):
    """torchmetrics CalibrationError (ECE, 15 bins), in memory."""
    import torch
    from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

    torch.set_num_threads(int(THREADS))
    main, truth = _load_numpy(ds, path)
    if ds.kind == "binary":
        metric = BinaryCalibrationError(n_bins=15)
    elif ds.kind == "hard":
        metric = MulticlassCalibrationError(num_classes=ds.classes, n_bins=15)
    else:
        return None
    x, t = torch.from_numpy(main), torch.from_numpy(truth)
    return _timed(lambda: metric(x, t).item())


METHODS: dict[str, tuple[str, Callable]] = {
    "floor: pyarrow decode (best reader)": ("", m_floor_decode),
    "floor: memory bandwidth (in memory)": ("", m_memory_floor),
    "streamdiv, Parquet -> full report": ("streamdiv", m_streamdiv),
    "streamdiv, in memory, full report": ("streamdiv", m_streamdiv_memory),
    # metrics="loss" has a pass of its own for hard labels against probabilities, and for binary predictions
    "streamdiv, Parquet -> loss metrics": ("streamdiv", lambda ds, p: m_streamdiv(ds, p, "loss")
                                           if ds.kind in ("hard", "binary") else None),
    "streamdiv, in memory, loss metrics": ("streamdiv", lambda ds, p: m_streamdiv_memory(ds, p, "loss")
                                           if ds.kind in ("hard", "binary") else None),
    "DuckDB, full metric set": ("duckdb", lambda ds, p: m_duckdb(ds, p, True)),
    "DuckDB, cross-entropy alone": ("duckdb", lambda ds, p: m_duckdb(ds, p, False)),
    "polars streaming, cross-entropy alone": ("polars", m_polars),
    "numpy in memory, full metric set": ("numpy", lambda ds, p: m_numpy_full(ds, p) if ds.kind == "hard" else None),
    "numpy in memory, cross-entropy alone": ("numpy", m_numpy_ce),
    "torch in memory (CE / BCE / kl_div)": ("torch", m_torch),
    "scikit-learn log_loss (+brier), in memory": ("sklearn", m_sklearn),
    "scipy rel_entr / entropy, in memory": ("scipy", m_scipy),
    "torchmetrics CalibrationError, in memory": ("torchmetrics", m_torchmetrics),
}


# ----------------------------------------------------------------------------------------------- child
def child(method: str, dataset_name: str, path: str) -> None:
    import resource

    ds = next(d for d in DATASETS if d.name == dataset_name)
    package, function = METHODS[method]
    if package:
        __import__(package)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = function(ds, path)
    print(json.dumps(None if result is None else {"seconds": result[0], "value": result[1], "baseline_kb": baseline}))


# ----------------------------------------------------------------------------------------------- parent
def run_child(method: str, dataset: Dataset, path: str, timeout: float) -> dict | None:
    env = os.environ | CHILD_ENV
    process = subprocess.Popen([sys.executable, __file__, "--child", method, dataset.name, path],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return {"error": f"over {timeout:.0f}s"}
    usage = resource_usage(process)
    if process.returncode != 0:
        last = err.decode().strip().splitlines()[-1:] or ["failed"]
        return {"error": last[0][:80]}
    data = json.loads(out.decode().strip().splitlines()[-1])
    if data is not None and usage is not None:
        data["peak_mib"] = max(0.0, (usage - data["baseline_kb"]) / 1024)
    return data


_RUSAGE: dict[int, float] = {}


def resource_usage(process: subprocess.Popen) -> float | None:
    return _RUSAGE.get(process.pid)


def _install_wait4() -> None:
    """Popen reaps with waitpid; wrap it with wait4 so each child's own ru_maxrss is kept."""
    original = subprocess.Popen._try_wait

    def try_wait(self, wait_flags):
        try:
            pid, status, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            return original(self, wait_flags)
        if pid == self.pid:
            _RUSAGE[pid] = usage.ru_maxrss
        return pid, status

    subprocess.Popen._try_wait = try_wait


def compile_and_startup(scratch: str) -> list[str]:
    """Numba compile time cold and cached, and the CLI's wall time on a 1000-row file."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    tiny = os.path.join(scratch, "tiny.parquet")
    probs = np.full((1000, 10), 0.1, dtype=np.float32)
    pq.write_table(pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), 10),
                             "label": np.zeros(1000, np.int32)}), tiny)
    code = ("import time, numpy as np, pyarrow as pa, streamdiv; t = time.perf_counter(); "
            "streamdiv.evaluate(pa.table({'p': pa.FixedSizeListArray.from_arrays(pa.array(np.full(20, .5, np.float32)), 2), "
            "'y': np.zeros(10, np.int32)}), probs='p', labels='y'); print(time.perf_counter() - t)")
    cache = os.path.join(scratch, "numba-cache")
    lines = []
    for label in ("cold (empty cache)", "cached (second process)"):
        env = os.environ | {"NUMBA_CACHE_DIR": cache}
        seconds = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                       check=True).stdout)
        lines.append(f"| first evaluate() call, {label} | {seconds:.2f} s |")
    cli = [os.path.join(os.path.dirname(sys.executable), "streamdiv"), "score", tiny, "--probs", "probs",
           "--labels", "label", "--format", "json", "-o", os.path.join(scratch, "tiny.json")]
    walls = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    lines.append(f"| `streamdiv score` on a 1000-row file, wall clock (median of 5, cached) | {statistics.median(walls):.2f} s |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="GB of float payload per dataset (default 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", help="comma-separated dataset names")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per single run of a method")
    parser.add_argument("--data-dir", help="keep (and reuse) the generated files here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    _install_wait4()
    chosen = [d for d in DATASETS if not args.only or d.name in args.only.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or scratch
        os.makedirs(data_dir, exist_ok=True)
        import platform
        print(f"# streamdiv benchmarks\n\nmachine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
              f"Python {platform.python_version()}; {THREADS} threads for every method; scale {args.scale} GB; "
              f"median of {args.repeats} interleaved runs, each in a fresh process.\n")
        for line in ["| start-up | time |", "|---|---:|"] + compile_and_startup(scratch):
            print(line)
        for ds in chosen:
            path = os.path.join(data_dir, f"{ds.name}_{args.scale}.parquet")
            rows = ds.rows(args.scale)
            if not os.path.exists(path):
                write_dataset(ds, path, rows)
            payload = rows * ds.float_bytes_per_row
            results: dict[str, list] = {m: [] for m in METHODS}
            errors: dict[str, str] = {}
            skipped: set[str] = set()
            for _ in range(args.repeats):
                for method in METHODS:
                    if method in skipped:
                        continue
                    data = run_child(method, ds, path, args.timeout)
                    if data is None:
                        skipped.add(method)
                    elif "error" in data:
                        errors[method] = data["error"]
                        skipped.add(method)
                    else:
                        results[method].append(data)
            print(report_table(ds, rows, payload, os.path.getsize(path), results, errors))


def report_table(ds: Dataset, rows: int, payload: int, size: int, results: dict, errors: dict) -> str:
    medians = {m: statistics.median(r["seconds"] for r in runs) for m, runs in results.items() if runs}
    floor = medians.get("floor: pyarrow decode (best reader)")
    peers = {m: s for m, s in medians.items() if not m.startswith(("floor", "streamdiv"))}
    on_disk = {m: s for m, s in peers.items() if m.startswith(("DuckDB", "polars"))}
    best_peer = min(on_disk.items(), key=lambda kv: kv[1]) if on_disk else None
    lines = [f"\n## {ds.name}: {rows:,} rows x {ds.classes} ({ds.kind}, {ds.layout}); "
             f"{payload / 1e9:.2f} GB of floats, {size / 2 ** 20:,.0f} MiB on disk\n",
             "| method | median s | M rows/s | GB/s | x decode floor | x best on-disk peer | peak MiB | value |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for method in METHODS:
        if method in medians:
            seconds = medians[method]
            runs = results[method]
            peak = max(r.get("peak_mib", 0.0) for r in runs)
            ratio_floor = f"{seconds / floor:.2f}" if floor else "-"
            ratio_peer = f"{seconds / best_peer[1]:.2f}" if best_peer else "-"
            lines.append(f"| {method} | {seconds:.3f} | {rows / seconds / 1e6:.1f} | {payload / seconds / 1e9:.2f} | "
                         f"{ratio_floor} | {ratio_peer} | {peak:,.0f} | {runs[0]['value']:.6g} |")
        elif method in errors:
            lines.append(f"| {method} | {errors[method]} | | | | | | |")
    if best_peer:
        lines.append(f"\nbest on-disk peer: {best_peer[0]} ({best_peer[1]:.3f} s)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
