"""Reading and hand-editing the bytes of saved states, as a test needs them (format version 3 unless said)."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any, Callable

from streamdiv.state_format import HEADER_LENGTH, LEGACY_PREAMBLE, MAGIC, PREAMBLE


def header_of(data: bytes) -> dict[str, Any]:
    (length,) = HEADER_LENGTH.unpack_from(data, PREAMBLE.size)
    start = PREAMBLE.size + HEADER_LENGTH.size
    return json.loads(data[start: start + length])


def arrays_of(data: bytes) -> bytes:
    (length,) = HEADER_LENGTH.unpack_from(data, PREAMBLE.size)
    return data[PREAMBLE.size + HEADER_LENGTH.size + length:]


def rewritten(data: bytes, edit: Callable[[dict[str, Any]], None] = lambda header: None, *,
              version: int | None = None, arrays: bytes | None = None) -> bytes:
    """A version-3 state with its header edited in place by ``edit`` (and its version or arrays replaced),
    its length and CRC-32 written anew: bytes that are intact, whatever they now say."""
    (old_version,) = struct.unpack_from("<I", data, len(MAGIC))
    header = header_of(data)
    edit(header)
    header_bytes = json.dumps(header).encode()
    body = HEADER_LENGTH.pack(len(header_bytes)) + header_bytes + (arrays_of(data) if arrays is None else arrays)
    start = MAGIC + struct.pack("<I", old_version if version is None else version)
    rest = struct.pack("<Q", PREAMBLE.size + len(body)) + body
    return start + struct.pack("<I", zlib.crc32(rest, zlib.crc32(start))) + rest


def legacy_header_of(data: bytes) -> dict[str, Any]:
    """The header of a version-1 or version-2 state."""
    _, _, length = LEGACY_PREAMBLE.unpack_from(data)
    return json.loads(data[LEGACY_PREAMBLE.size: LEGACY_PREAMBLE.size + length])


def legacy_arrays_of(data: bytes) -> bytes:
    _, _, length = LEGACY_PREAMBLE.unpack_from(data)
    return data[LEGACY_PREAMBLE.size + length:]


def legacy(header: dict[str, Any], arrays: bytes, version: int) -> bytes:
    """A version-1 or version-2 state of this header and these array bytes, as those versions wrote them."""
    header_bytes = json.dumps(header).encode()
    return LEGACY_PREAMBLE.pack(MAGIC, version, len(header_bytes)) + header_bytes + arrays
