"""Peak memory of `streamdiv score` on a large Parquet file, measured as the child process's peak RSS.

    python benchmarks/memory.py --gigabytes 2          # writes ~2 GB under a temp dir, then scores it

The file is the demo's data (fixed_size_list<float32>[10] + int32 label + region), 1 Mi-row row groups.
Peak RSS is the scoring process's own ru_maxrss, from os.wait4 (it includes the Python
interpreter, numba and pyarrow themselves: about 150 MB before any data).  Linux carries a process's RSS
high-water mark across fork and exec, so the file is generated in a separate process and this parent stays
small (it imports nothing heavy): otherwise the generator's memory would be charged to the scorer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


BYTES_PER_ROW = 10 * 4 + 4 + 1  # probs + label + dictionary-encoded region, before compression


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--keep", help="write (or reuse) the file here instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.keep or os.path.join(scratch, "big.parquet")
        if not os.path.exists(path):
            rows = int(args.gigabytes * 1e9 / BYTES_PER_ROW)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import sys; from streamdiv.synthetic import write_predictions; "
                            "write_predictions(sys.argv[1], int(sys.argv[2]), 10, row_group_size=1 << 20)",
                            path, str(rows)], check=True)
            print(f"wrote {rows:,} rows in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        size = os.path.getsize(path)
        started = time.perf_counter()
        scorer = subprocess.Popen([sys.executable, "-m", "streamdiv", "score", path, "--probs", "probs", "--labels", "label",
                        "--by", "region", "--format", "json", "-o", os.path.join(scratch, "report.json"),
                        "--no-progress"])
        _, status, usage = os.wait4(scorer.pid, 0)  # this child's own rusage, not every child's maximum
        scorer.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if scorer.returncode:
            raise SystemExit(f"streamdiv score failed with exit code {scorer.returncode}")
        peak = usage.ru_maxrss / 1024  # kB on Linux
        print(f"file: {size / 1e9:.2f} GB ({size / 2 ** 30:.2f} GiB); scored in {seconds:.1f}s; "
              f"peak RSS of the scoring process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
