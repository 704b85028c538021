"""Checkpoints: a long scan's state and its place in the source, written atomically every so often, so that a
run that was killed continues where it stopped (``--checkpoint PATH --resume``) and ends with the same bits
as a run that never stopped.

A checkpoint holds the accumulator's state in the state format, its open compensation block included; since
blocks are cut at global row numbers, the rows after the checkpoint are summed exactly as in one pass.  It
also holds the position (the index of the source's part, and how many of that part's rows were read), a
fingerprint of every part (absolute path, size, modification time, rows; for a Parquet file the SHA-256 of
its footer, which describes every row group) and the options that decide the numbers (columns, groups,
bins, eps, metric set, ...).  Resuming refuses a checkpoint whose sources or options differ, naming what
changed.  A run that finishes removes its checkpoint, so a scheduled job can always pass ``--resume``.

File layout: MAGIC (16 bytes), format version (u32), CRC-32 of everything after these 24 bytes (u32),
header length (u64), the header (UTF-8 JSON), then the state bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import re
import signal
import struct
import threading
import time
import zlib
from typing import Any, Iterator

from .accumulator import Accumulator
from .errors import CheckpointError
from .formats import write_atomically
from .plan import ColumnPlan, GaussianPlan
from .sources import Chunk, Source

MAGIC = b"STREAMDIV-CKPT\n\x00"
VERSION = 1
PREAMBLE = struct.Struct("<16sII")  # magic, version, CRC-32 of the rest
HEADER_LENGTH = struct.Struct("<Q")
DEFAULT_EVERY = "30s"
_EVERY = re.compile(r"^\s*([0-9]+)\s*(s|min|h)?\s*$")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600}


@dataclasses.dataclass(frozen=True)
class Every:
    """How often to write: after ``batches`` batches, or once ``seconds`` have passed since the last write."""

    batches: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str | int) -> Every:
        """``N`` batches, or ``Ns``, ``Nmin``, ``Nh``, with N a positive whole number."""
        match = _EVERY.match(str(text))
        if not match or int(match.group(1)) < 1:
            raise CheckpointError(f"cannot read the checkpoint interval {text!r}: write a number of batches "
                                  f"(such as 100) or of seconds, minutes or hours (30s, 5min, 1h)")
        count, unit = int(match.group(1)), match.group(2)
        return cls(batches=count) if unit is None else cls(seconds=float(count * _UNIT_SECONDS[unit]))

    def due(self, batches: int, seconds: float) -> bool:
        """Whether a checkpoint is due ``batches`` batches and ``seconds`` seconds after the last one."""
        return batches >= self.batches if self.batches is not None else seconds >= (self.seconds or 0.0)


class Checkpointer:
    """Writes checkpoints of one scan of ``source`` into ``accumulator`` at ``path``, and resumes from one.

    ``advance(chunk)`` after each batch is scored moves the position past it and writes when ``every`` says
    so; ``save()`` writes now (on Ctrl-C); ``finish()`` removes the checkpoint once the scan is complete."""

    def __init__(self, path: str | os.PathLike, source: Source, plan: ColumnPlan | GaussianPlan,
                 accumulator: Accumulator, every: str | int | Every = DEFAULT_EVERY):
        self.path = os.fspath(path)
        self.every = every if isinstance(every, Every) else Every.parse(every)
        self.source = source
        self.accumulator = accumulator
        self.sources = [part_fingerprint(part) for part in source.parts]
        self.options = _jsonable({"columns": plan.column_names(), "by": list(plan.by), "read": list(plan.columns),
                                  "settings": accumulator.settings()})
        self.position = (0, 0)
        self._batches = 0
        self._last = time.monotonic()

    def resume(self) -> bool:
        """Continue from the checkpoint at ``path``: its state replaces the accumulator's and the position is
        its own.  False (and nothing changed) when no checkpoint has been written there yet."""
        for stale in glob.glob(os.path.join(os.path.dirname(os.path.abspath(self.path)),
                                            "." + glob.escape(os.path.basename(self.path)) + ".*.tmp")):
            os.unlink(stale)  # a write cut short by a kill; the checkpoint itself is whole (renamed into place)
        if not os.path.exists(self.path):
            return False
        header, state = read(self.path)
        self._check(header)
        self.accumulator.restore(state, header["predictions"])
        self.position = (int(header["position"][0]), int(header["position"][1]))
        return True

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def advance(self, chunk: Chunk) -> None:
        """Move the position past ``chunk`` (scored), and write a checkpoint if one is due."""
        part = self.source.parts[chunk.part]
        self.position = (chunk.part, chunk.first_row - part.first_row + chunk.batch.num_rows)
        self._batches += 1
        if self.every.due(self._batches, time.monotonic() - self._last):
            self.save()

    def save(self) -> None:
        """Write the checkpoint now, atomically: a kill at any moment leaves the previous one or this one."""
        header = {"position": list(self.position), "rows": self.accumulator.rows, "sources": self.sources,
                  "options": self.options, "predictions": self.accumulator.predictions}
        write_atomically(self.path, encode(header, self.accumulator.to_bytes()))
        self._batches, self._last = 0, time.monotonic()

    def finish(self) -> None:
        """The scan is complete: remove the checkpoint (a later ``--resume`` starts from the beginning)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _check(self, header: dict[str, Any]) -> None:
        """Refuse a checkpoint of other sources or other options, naming the first difference."""
        fix = f"; start again without --resume (resume=False), or remove {self.path}"
        saved = header["sources"]
        if len(saved) != len(self.sources):
            raise CheckpointError(f"{self.path}: the checkpoint was written for {len(saved)} file(s) and the "
                                  f"sources now hold {len(self.sources)}{fix}")
        for before, now in zip(saved, self.sources):
            changed = [key for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]
            if changed:
                what = ", ".join(f"{key} {before.get(key)!r} -> {now.get(key)!r}" for key in changed)
                raise CheckpointError(f"{now['path']}: changed since the checkpoint {self.path} was written "
                                      f"({what}){fix}")
        if header["options"] != self.options:
            before, now = _flat(header["options"]), _flat(self.options)
            changed = [key for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]
            what = ", ".join(f"{key} {before.get(key)!r} -> {now.get(key)!r}" for key in changed)
            raise CheckpointError(f"{self.path}: the options differ from the checkpoint's ({what}){fix}")


def part_fingerprint(part: Any) -> dict[str, Any]:
    """What identifies a part's data: a file's absolute path, size, modification time and rows, and for a
    Parquet file the SHA-256 of its footer.  Streams and in-memory data cannot be checked, so not resumed."""
    if not os.path.isfile(part.name):
        raise CheckpointError(f"{part.name}: a checkpoint resumes a scan of files, and this part of the source "
                              f"is not a file (a stream or data in memory)")
    info = os.stat(part.name)
    entry = {"path": os.path.abspath(part.name), "size": info.st_size, "modified_ns": info.st_mtime_ns,
             "first_row": part.first_row, "rows": part.rows}
    digest = _parquet_footer_digest(part.name, info.st_size)
    if digest is not None:
        entry["footer_sha256"] = digest
    return entry


def _parquet_footer_digest(path: str, size: int) -> str | None:
    """SHA-256 of a Parquet file's footer (its metadata), or None for a file that does not end like Parquet."""
    if size < 12:
        return None
    with open(path, "rb") as handle:
        handle.seek(size - 8)
        tail = handle.read(8)
        if tail[4:] != b"PAR1":
            return None
        length = int.from_bytes(tail[:4], "little")
        if length > size - 12:
            return None
        handle.seek(size - 8 - length)
        return hashlib.sha256(handle.read(length)).hexdigest()


def encode(header: dict[str, Any], state: bytes) -> bytes:
    """A checkpoint's bytes (see the module docstring)."""
    text = json.dumps(header, sort_keys=True).encode()
    body = HEADER_LENGTH.pack(len(text)) + text + state
    return PREAMBLE.pack(MAGIC, VERSION, zlib.crc32(body)) + body


def read(path: str) -> tuple[dict[str, Any], bytes]:
    """The header and the state bytes of the checkpoint at ``path``; CheckpointError if it is not intact."""
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < PREAMBLE.size + HEADER_LENGTH.size or not data.startswith(MAGIC):
        raise CheckpointError(f"{path}: not a streamdiv checkpoint (remove it to start again)")
    _, version, checksum = PREAMBLE.unpack_from(data)
    if version != VERSION:
        raise CheckpointError(f"{path}: a checkpoint of format version {version}; this streamdiv writes and reads "
                              f"version {VERSION} (remove it to start again)")
    body = data[PREAMBLE.size:]
    if zlib.crc32(body) != checksum:
        raise CheckpointError(f"{path}: the checkpoint is damaged (its checksum does not match; remove it to "
                              f"start again)")
    (length,) = HEADER_LENGTH.unpack_from(body)
    start = HEADER_LENGTH.size
    try:
        header = json.loads(body[start:start + length])
    except ValueError as error:
        raise CheckpointError(f"{path}: the checkpoint's header cannot be read ({error})") from None
    return header, body[start + length:]


class DeferredInterrupts:
    """SIGINT (Ctrl-C) held back while a batch is scored and the position moved (``with guard.held():``),
    raised as KeyboardInterrupt as soon as that block ends, and at once outside it: the accumulator and the
    position always agree when the interrupt arrives, so the checkpoint written then is exact.

    Only the main thread can set a signal handler, and only Python's default one is replaced (a SIGINT that
    the caller ignores stays ignored); otherwise this does nothing."""

    def __init__(self) -> None:
        self._holding = self._pending = False
        self._previous: Any = None

    def __enter__(self) -> DeferredInterrupts:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self._holding:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt


def _jsonable(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists, other objects by repr), to compare with a saved
    header."""
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def _flat(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested options as dotted keys ("settings.bins"), to name the one that differs."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat
