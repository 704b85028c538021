"""One Parquet column chunk's pages, decoded into one numpy array of its values.

A column chunk is a dictionary page (optional) followed by data pages, each a compact-protocol
``PageHeader`` and its body.  Handled here: PLAIN, dictionary (``PLAIN_DICTIONARY``/``RLE_DICTIONARY``) and
``BYTE_STREAM_SPLIT`` values of a fixed-width type; uncompressed, snappy and zstd bodies; data pages v1 (levels
inside the compressed body, each level block prefixed by its 4-byte length) and v2 (levels uncompressed in
front, their lengths in the header).  Only chunks without nulls are decoded, and a list column only when every
row of the chunk has the same number of values: :func:`decode_chunk` returns None for anything else, so that
the caller reads the chunk with pyarrow instead.  The repetition levels are checked against the one pattern
a list of rows of K values has (a fixed-size list's are not read: its type fixes K).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from streamdiv.parquet_decode import levels
from streamdiv.progress import COMPILE_NOTICE
from streamdiv.parquet_decode.flat_chunk import (BYTE_STREAM_SPLIT, DATA_PAGE, DATA_PAGE_V2, DICTIONARY_PAGE,
                                                 HAS_NULLS, PLAIN, PLAIN_DICTIONARY, RLE, RLE_DICTIONARY, SNAPPY,
                                                 UNCOMPRESSED, WALKED, decode_flat_chunk)
from streamdiv.parquet_decode.thrift import ThriftError, bool_field, int_field, read_struct, struct_field

CODECS = {"UNCOMPRESSED": None, "SNAPPY": "snappy", "ZSTD": "zstd"}
_FLAT_CODECS = {None: UNCOMPRESSED, "snappy": SNAPPY}  # the codecs flat_chunk decompresses itself
PHYSICAL_DTYPES = {"FLOAT": np.dtype("<f4"), "DOUBLE": np.dtype("<f8"), "INT32": np.dtype("<i4"),
                   "INT64": np.dtype("<i8")}


@dataclass(frozen=True)
class Leaf:
    """What decoding one leaf column needs: its stored dtype, codec name (None: uncompressed) and level maxima."""
    dtype: np.dtype
    codec: str | None
    max_definition: int
    max_repetition: int
    row_length: int = 1  # K of a list column whose rows all hold K values (the only lists decoded)
    fixed_size: bool = False  # a fixed_size_list, whose rows hold K values by its type


class _NotHandled(Exception):
    """Raised inside this module when a page needs pyarrow; never escapes :func:`decode_chunk`."""


def _body(page: np.ndarray, size: int, codec: str | None) -> np.ndarray:
    if codec is None:
        return page
    # pyarrow's codecs release the GIL, so two row groups decompress on two cores.
    return np.frombuffer(pa.decompress(pa.py_buffer(page), decompressed_size=size, codec=codec), np.uint8)


def _values(encoded: np.ndarray, encoding: int, count: int, leaf: Leaf, dictionary: np.ndarray | None,
            out: np.ndarray) -> None:
    width = leaf.dtype.itemsize
    if encoding == PLAIN:
        if encoded.size < count * width:
            raise _NotHandled
        out[:] = encoded[:count * width].view(leaf.dtype)
    elif encoding == BYTE_STREAM_SPLIT:
        # Byte i of every value is stored in the i-th of ``width`` streams of ``count`` bytes.
        if encoded.size < count * width:
            raise _NotHandled
        out.view(np.uint8).reshape(count, width)[:] = encoded[:count * width].reshape(width, count).T
    elif encoding in (PLAIN_DICTIONARY, RLE_DICTIONARY) and dictionary is not None and encoded.size:
        if encoded[0] > 32 or not levels.decode_dictionary(encoded[1:], count, int(encoded[0]), dictionary, out):
            raise _NotHandled
    else:
        raise _NotHandled


def _level_block(data: np.ndarray, position: int) -> tuple[np.ndarray, int]:
    """A v1 page's level block: a 4-byte little-endian length, then that many bytes of hybrid runs."""
    if position + 4 > data.size:
        raise _NotHandled
    length = int(data[position:position + 4].view("<u4")[0])
    return data[position + 4:position + 4 + length], position + 4 + length


def _check_levels(repetition: np.ndarray | None, definition: np.ndarray | None, count: int, first: int,
                  leaf: Leaf) -> None:
    """Raise unless every definition level is the maximum and every row holds ``leaf.row_length`` values."""
    if leaf.max_definition and not levels.all_equal(definition, count, leaf.max_definition.bit_length(),
                                                    leaf.max_definition):
        raise _NotHandled
    # No nulls and a fixed-size Arrow type: every row holds K values, which the caller confirms by
    # rows * K == values, so the repetition levels, the costliest part of a list page, stay unread.
    if leaf.max_repetition and not leaf.fixed_size and not levels.rows_of_length(repetition, count,
                                                                                 leaf.row_length, first):
        raise _NotHandled


def decode_chunk(chunk: memoryview, total_values: int, leaf: Leaf) -> np.ndarray | None:
    """The values of a column chunk's bytes, or None if it needs pyarrow.  A flat chunk, uncompressed or
    snappy, is walked in numba (:mod:`.flat_chunk`); the rest, and a flat chunk that walk does not handle,
    page by page here."""
    if not leaf.max_repetition and leaf.codec in _FLAT_CODECS:
        out = np.empty(total_values, leaf.dtype)
        # the values' bits, as unsigned integers of their width: two compiled versions (4 and 8 bytes), not
        # one per type, for a walk that copies and looks up values without reading them as numbers
        bits = out.view(np.uint32 if leaf.dtype.itemsize == 4 else np.uint64)
        with COMPILE_NOTICE.around(("parquet flat chunk", bits.dtype.str), "Parquet decoder of flat columns"):
            status = decode_flat_chunk(np.frombuffer(chunk, np.uint8), _FLAT_CODECS[leaf.codec],
                                       leaf.max_definition, bits)
        if status == WALKED:
            return out
        if status == HAS_NULLS:  # the pages below refuse nulls too: not read twice before pyarrow reads them
            return None
    try:
        return _decode_pages(chunk, total_values, leaf)
    except (_NotHandled, ThriftError, ValueError, KeyError, TypeError, IndexError, OSError, pa.ArrowException):
        return None


def _decode_pages(chunk: memoryview, total_values: int, leaf: Leaf) -> np.ndarray:
    data = np.frombuffer(chunk, np.uint8)
    out = np.empty(total_values, leaf.dtype)
    filled, dictionary, position = 0, None, 0
    while position < len(chunk) and filled < total_values:
        header, start = read_struct(chunk, position)
        kind, uncompressed, compressed = int_field(header, 1), int_field(header, 2), int_field(header, 3)
        page = data[start:start + compressed]
        position = start + compressed
        if kind == DICTIONARY_PAGE:
            dictionary_header = struct_field(header, 7)
            if int_field(dictionary_header, 2, PLAIN) not in (PLAIN, PLAIN_DICTIONARY):
                raise _NotHandled
            dictionary = np.empty(int_field(dictionary_header, 1), leaf.dtype)
            _values(_body(page, uncompressed, leaf.codec), PLAIN, dictionary.size, leaf, None, dictionary)
            continue
        if kind == DATA_PAGE:
            page_header = struct_field(header, 5)
            count, encoding = int_field(page_header, 1), int_field(page_header, 2)
            body = _body(page, uncompressed, leaf.codec)
            repetition = definition = None
            cursor = 0
            if leaf.max_repetition:
                if int_field(page_header, 4) != RLE:
                    raise _NotHandled
                repetition, cursor = _level_block(body, cursor)
            if leaf.max_definition:
                if int_field(page_header, 3) != RLE:
                    raise _NotHandled
                definition, cursor = _level_block(body, cursor)
            encoded = body[cursor:]
        elif kind == DATA_PAGE_V2:
            page_header = struct_field(header, 8)
            count, encoding = int_field(page_header, 1), int_field(page_header, 4)
            if int_field(page_header, 2, 0):
                raise _NotHandled  # num_nulls
            definition_length, repetition_length = int_field(page_header, 5), int_field(page_header, 6)
            levels_length = repetition_length + definition_length
            repetition, definition = page[:repetition_length], page[repetition_length:levels_length]
            encoded = page[levels_length:]
            if bool_field(page_header, 7, True):  # is_compressed
                encoded = _body(encoded, uncompressed - levels_length, leaf.codec)
        else:
            continue  # an index page holds no values
        if filled + count > total_values:
            raise _NotHandled
        _check_levels(repetition, definition, count, filled, leaf)
        _values(encoded, encoding, count, leaf, dictionary, out[filled:filled + count])
        filled += count
    if filled != total_values:
        raise _NotHandled
    return out
