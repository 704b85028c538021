"""The numba cache guard (streamdiv/numba_cache.py), on a copy of the package run in fresh interpreters.

Each run calls ``kernels.primitives.cache_probe``, a cached parallel kernel that compiles in ``elementary.fast_log``;
the copy's ``fast_log`` is then changed, ``primitives.py`` is not.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import streamdiv

PROBE = """
import json, warnings
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from streamdiv.kernels import primitives as kernels
out = np.empty(3)
kernels.cache_probe(np.array([1.0, 2.0, 10.0]), out)
stats = kernels.cache_probe.stats
print(json.dumps({"out": out.tolist(), "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()), "cache_path": stats.cache_path,
                  "locator": type(kernels.cache_probe._cache._impl.locator).__name__,
                  "warnings": [type(w.message).__name__ for w in caught]}))
"""
LOGS = [math.log(1.0), math.log(2.0), math.log(10.0)]


def _copy_package(tmp_path: Path) -> Path:
    """A copy of the streamdiv package under tmp_path/package, without its compiled files."""
    root = tmp_path / "package"
    shutil.copytree(Path(streamdiv.__file__).parent, root / "streamdiv",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _run_probe(tmp_path: Path, root: Path, **env: str) -> dict:
    """PROBE in a fresh interpreter importing the copy; the user-wide cache goes under tmp_path too."""
    base = {name: value for name, value in os.environ.items()
            if name not in ("NUMBA_CACHE_DIR", "NUMBA_CACHE_LOCATOR_CLASSES", "PYTHONPATH")}
    base |= {"PYTHONPATH": str(root), "XDG_CACHE_HOME": str(tmp_path / "user-cache")}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=base | env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _change_fast_log(root: Path) -> None:
    """Redefine fast_log at the end of the copy's elementary.py: primitives.py imports the last definition."""
    with open(root / "streamdiv" / "kernels" / "elementary.py", "a") as source:
        source.write('\n\n@njit(inline="always", error_model="numpy")\ndef fast_log(x):\n    return -1.0\n')


@pytest.mark.parametrize("where", ["NUMBA_CACHE_DIR", "in the package", "user-wide"])
def test_a_change_to_a_callee_in_another_module_recompiles_the_cached_kernel(tmp_path, where):
    """Wherever numba caches (NUMBA_CACHE_DIR; the package's __pycache__; the user's cache directory, for a
    read-only package), the second run loads the parallel kernel from the cache, and a change to
    elementary.py alone makes the next run compile it again, with the new fast_log."""
    root = _copy_package(tmp_path)
    env = {}
    if where == "NUMBA_CACHE_DIR":
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
        expected = ("GuardedUserProvidedCacheLocator", tmp_path / "numba-cache")
    elif where == "in the package":
        expected = ("GuardedInTreeCacheLocator", root / "streamdiv" / "kernels" / "__pycache__")
    else:
        # A read-only package: a file where __pycache__ would be (chmod does not stop root from writing).
        (root / "streamdiv" / "kernels" / "__pycache__").write_text("")
        expected = ("GuardedUserWideCacheLocator", tmp_path / "user-cache" / "numba")

    first = _run_probe(tmp_path, root, **env)
    assert (first["locator"], first["hits"], first["misses"]) == (expected[0], 0, 1)
    assert Path(first["cache_path"]).is_relative_to(expected[1])
    assert first["out"] == pytest.approx(LOGS, rel=1e-15)
    assert first["warnings"] == []

    second = _run_probe(tmp_path, root, **env)
    assert (second["hits"], second["misses"], second["out"]) == (1, 0, first["out"])

    _change_fast_log(root)
    changed = _run_probe(tmp_path, root, **env)
    assert (changed["hits"], changed["misses"], changed["out"]) == (0, 1, [-1.0, -1.0, -1.0])


def test_without_the_guard_numba_loads_the_kernel_compiled_with_the_old_callee(tmp_path):
    """numba issue #1833, the reason for the guard: numba's own locator (NUMBA_CACHE_LOCATOR_CLASSES turns
    the guard off) stamps the kernel with primitives.py alone.  If this fails, numba now notices the change by
    itself and the guard may go."""
    root = _copy_package(tmp_path)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),
           "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator"}
    first = _run_probe(tmp_path, root, **env)
    assert (first["locator"], first["warnings"]) == ("UserProvidedCacheLocator", ["CacheGuardWarning"])
    _change_fast_log(root)
    stale = _run_probe(tmp_path, root, **env)
    assert (stale["hits"], stale["out"]) == (1, first["out"])


def test_import_warns_and_leaves_numba_caching_alone_when_numba_internals_are_renamed(tmp_path):
    """A numba without one of the locators the guard subclasses: import still works, with a warning."""
    code = ("import warnings, numba.core.caching as caching; del caching.UserWideCacheLocator\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    from streamdiv.kernels import primitives as kernels\n"
            "print(type(kernels.cache_probe._cache._impl.locator).__name__,\n"
            "      [type(w.message).__name__ for w in caught])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=os.environ | {"PYTHONPATH": str(_copy_package(tmp_path)),
                                            "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["UserProvidedCacheLocator", "['CacheGuardWarning']"]
