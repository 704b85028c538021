"""Coverage-guided fuzz target: streamdiv reads any bytes as a file or a saved state, and either returns a
report or raises one of its documented errors (:class:`streamdiv.StreamdivError` and its subclasses).

fuzz_scoring.py says how an input's first byte chooses what the rest is read as.  Anything else escaping
streamdiv (an IndexError, numpy's ValueError, pyarrow's ArrowInvalid, a crash or a hang) is a bug in
streamdiv's handling of its inputs: libFuzzer then stops and writes the input to ``crash-*``.

Run (fuzz/README.md)::

    python fuzz/fuzz_inputs.py fuzz/work fuzz/corpus -max_total_time=1800 -timeout=600 -rss_limit_mb=8192
"""

from __future__ import annotations

import os
import sys

import atheris

# Everything but the numba code is instrumented: numba compiles the kernels and the Parquet decoder's loops
# from their bytecode, which atheris's coverage callbacks would make uncompilable (atheris includes whole
# packages and excludes single modules).
PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "streamdiv")
NUMBA_MODULES = [f"streamdiv.{package}" for package in ("kernels", "parquet_decode")] + [
    f"streamdiv.{package}.{name[:-3]}" for package in ("kernels", "parquet_decode")
    for name in os.listdir(os.path.join(PACKAGE, package)) if name.endswith(".py")]
with atheris.instrument_imports(include=["streamdiv"], exclude=NUMBA_MODULES):
    from fuzz_scoring import score_quietly

if __name__ == "__main__":
    atheris.Setup(sys.argv, score_quietly)
    atheris.Fuzz()
