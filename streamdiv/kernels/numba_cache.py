"""Cached kernels invalidated by a change to any of their sources, not only to the file that defines them.

numba's on-disk cache (``@njit(cache=True)``) checks a function's cached code against a *source stamp* of
the one file that defines it (a hash of its bytes in numba 0.68, its mtime and size before), never against
the files of the functions it calls and compiles in (numba issue #1833,
https://github.com/numba/numba/issues/1833).  A kernel in ``kernels.py`` inlines ``fast_log`` from
``elementary.py``; change ``fast_log`` alone and the next run loads the kernel compiled with the old one.

``guard_sources(paths)`` puts one stamp on a whole group of sources: the SHA-256 of every ``.py`` file under
the given directories plus the given files, each as its path relative to the group's common directory and
its bytes, in sorted order, computed once when it is called.  Every function defined in one of those files
is cached under that stamp, so changing any file of the group recompiles every cached function of it.

How: numba picks a cache *locator* for a function when it is decorated (``Dispatcher.enable_caching``
creates the ``FunctionCache``, which asks each class of ``CacheImpl._locator_classes`` in turn and reads
the chosen locator's ``get_source_stamp()`` there and then).  ``guard_sources`` puts three locators at the
front of that list, subclasses of numba's own ``UserProvidedCacheLocator`` (``NUMBA_CACHE_DIR``),
``InTreeCacheLocator`` (``__pycache__`` next to the source) and ``UserWideCacheLocator`` (the user's cache
directory, numba's fallback for read-only installs), in numba's order.  Each accepts only functions defined
in a guarded file and changes only ``get_source_stamp``: cache directories, file names, the fallback from
one to the next and the index keys stay numba's.  So it must be called before the first ``@njit(cache=True)``
of the guarded modules runs.

It fails safe: if numba's internals are not found under these names (a future numba may rename them), or a
guarded file cannot be read, or ``NUMBA_CACHE_LOCATOR_CLASSES`` replaces numba's list of locators, it warns
(``CacheGuardWarning``) and leaves numba's caching as it is.  A stamp of ours never equals one of numba's, so
a cache written with the guard and one written without it only ever cause a recompile, never a stale load.
tests/test_numba_cache.py checks it on a copy of the package, in fresh interpreters.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable

# Which numba classes are subclassed, in numba's order; the first one that accepts a function wins.
_LOCATOR_NAMES = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
# Marks our stamps: numba's are bytes (0.68) or (mtime, size) tuples, never equal to this tuple.
_STAMP_TAG = "streamdiv.numba_cache"

# Real path of each guarded file -> the stamp of its group.
_stamps: dict[str, tuple[str, str]] = {}
_installed = False
_refused = False  # installing failed, and said so


class CacheGuardWarning(RuntimeWarning):
    """The guard could not be installed: numba's caching is left as it is, and may load stale kernels."""


def guard_sources(paths: Iterable[str | os.PathLike]) -> str | None:
    """Cache every ``@njit(cache=True)`` function defined in ``paths`` under one stamp of all of them.

    ``paths``: directories (every ``.py`` file below them) and files.  Call it before those functions are
    decorated; a file named in two calls takes the later call's stamp.  Returns the group's hex digest, or
    None (after a ``CacheGuardWarning``) when the guard cannot be installed.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    try:
        files = _source_files(paths)
    except OSError as error:
        _warn(f"cannot list the sources to guard ({error})")
        return None
    if not files:
        _warn(f"no Python source under {paths}")
        return None
    try:
        digest = _digest(files)
    except OSError as error:
        _warn(f"cannot read a source to guard ({error})")
        return None
    if not _install():
        return None
    stamp = (_STAMP_TAG, digest)
    for path in files:
        _stamps[path] = stamp
    return digest


def _source_files(paths: list) -> list[str]:
    """Real paths of the ``.py`` files under the directories of ``paths`` and of its files, deduplicated."""
    files = set()
    for path in paths:
        path = os.path.realpath(os.fspath(path))
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs[:] = [name for name in dirs if name != "__pycache__"]
                files.update(os.path.join(root, name) for name in names if name.endswith(".py"))
        elif os.path.isfile(path):
            files.add(path)
        else:
            raise FileNotFoundError(f"{path} is neither a file nor a directory")
    return sorted(files)


def _digest(files: list[str]) -> str:
    """SHA-256 over (relative path, size, bytes) of each file, by relative path: a rename changes it too."""
    top = os.path.commonpath(files) if len(files) > 1 else os.path.dirname(files[0])
    hasher = hashlib.sha256()
    for relative, path in sorted((os.path.relpath(path, top), path) for path in files):
        with open(path, "rb") as source:
            content = source.read()
        hasher.update(f"{relative}\0{len(content)}\0".encode())
        hasher.update(content)
    return hasher.hexdigest()


def _install() -> bool:
    """Put the guarded locators at the front of numba's list, once; False (after a warning, the first time)
    if impossible."""
    global _installed, _refused
    if _installed or _refused:
        return _installed
    _refused = True  # until installed below: a later group's call returns False without a second warning
    try:
        from numba.core import caching, config
        # numba 0.68 names it CacheImpl; older releases _CacheImpl.
        impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
        classes = impl._locator_classes
        bases = [getattr(caching, name) for name in _LOCATOR_NAMES]
        if not isinstance(classes, list) or not all(base in classes for base in bases):
            raise AttributeError("CacheImpl._locator_classes is not a list holding numba's locators")
        for base in bases:
            for method in ("from_function", "get_source_stamp", "get_cache_path"):
                getattr(base, method)
    except (ImportError, AttributeError) as error:
        _warn(f"numba's cache internals were not found ({error})")
        return False
    if getattr(config, "CACHE_LOCATOR_CLASSES", ""):
        _warn("NUMBA_CACHE_LOCATOR_CLASSES replaces numba's list of cache locators")
        return False
    guarded = [type(f"Guarded{base.__name__}", (_GuardedStamp, base), {"__module__": __name__}) for base in bases]
    classes[:0] = guarded
    _installed, _refused = True, False
    return True


class _GuardedStamp:
    """Mixed in before one of numba's locators: accepts guarded files only, stamps them with their group's."""

    @classmethod
    def from_function(cls, py_func, py_file):
        stamp = _stamps.get(os.path.realpath(py_file))
        if stamp is None:
            return None
        try:
            locator = super().from_function(py_func, py_file)
        except Exception as error:  # a numba whose locators changed: numba's own locators take the function
            _warn(f"the guarded locator failed for {py_file} ({error!r})")
            return None
        if locator is not None:
            locator.guarded_stamp = stamp
        return locator

    def get_source_stamp(self):
        return self.guarded_stamp


def _warn(reason: str) -> None:
    warnings.warn(f"streamdiv's numba cache guard is off: {reason}. Cached kernels may then be stale after "
                  "a change to a module they call (numba issue #1833); if results look wrong after an "
                  "upgrade, delete the numba cache (__pycache__/*.nbi, *.nbc, or NUMBA_CACHE_DIR).",
                  CacheGuardWarning, stacklevel=3)
