"""A reader of Thrift's compact protocol, enough for Parquet page headers.

A struct is read into a dict from field id to value: integers (zigzag varints), booleans, doubles, bytes,
lists and nested structs (dicts).  The caller picks the fields it knows by id, as in ``parquet.thrift``;
fields it does not know are read and kept, so a newer writer's extra fields never desynchronise the parse.

Compact protocol, as the Thrift specification gives it: a field header byte holds the id delta in its high
nibble (0: a zigzag i16 id follows) and the type in its low nibble; a list header holds its size in the high
nibble (15: a varint size follows) and the element type in the low nibble.
"""

from __future__ import annotations

import struct

from streamdiv.errors import StreamdivError

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)


class ThriftError(StreamdivError):
    """Bytes that are not a well-formed compact-protocol struct (a truncated or corrupt page header)."""


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ThriftError(f"a varint runs past the end of the header at byte {position}")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _zigzag(data: bytes, position: int) -> tuple[int, int]:
    value, position = _varint(data, position)
    return (value >> 1) ^ -(value & 1), position


def _value(data: bytes, position: int, kind: int) -> tuple[object, int]:
    if kind == _TRUE:
        return True, position
    if kind == _FALSE:
        return False, position
    if kind == _BYTE:
        if position >= len(data):
            raise ThriftError(f"a byte runs past the end of the header at byte {position}")
        return struct.unpack_from("b", data, position)[0], position + 1
    if kind in (_I16, _I32, _I64):
        return _zigzag(data, position)
    if kind == _DOUBLE:
        if position + 8 > len(data):
            raise ThriftError(f"a double runs past the end of the header at byte {position}")
        return struct.unpack_from("<d", data, position)[0], position + 8
    if kind == _BINARY:
        size, position = _varint(data, position)
        if position + size > len(data):
            raise ThriftError(f"a {size}-byte string runs past the end of the header at byte {position}")
        return bytes(data[position:position + size]), position + size
    if kind in (_LIST, _SET):
        return _list(data, position)
    if kind == _MAP:
        return _map(data, position)
    if kind == _STRUCT:
        return read_struct(data, position)
    raise ThriftError(f"unknown compact-protocol type {kind} at byte {position}")


def _list(data: bytes, position: int) -> tuple[list, int]:
    if position >= len(data):
        raise ThriftError(f"a list header runs past the end of the header at byte {position}")
    header = data[position]
    position += 1
    size, kind = header >> 4, header & 0x0F
    if size == 15:
        size, position = _varint(data, position)
    _check_size(data, position, size, "list", 1)
    items = []
    for _ in range(size):
        item, position = _element(data, position, kind)
        items.append(item)
    return items, position


def _check_size(data: bytes, position: int, size: int, what: str, least_bytes: int) -> None:
    """Each element of a list takes a byte at least, each entry of a map two: a size past the bytes left is
    corrupt (and would otherwise loop over that many elements, booleans taking no byte as a struct's fields:
    a hang the fuzzer found, a map of 2^60 booleans)."""
    if size * least_bytes > len(data) - position:
        raise ThriftError(f"a {what} of {size} elements runs past the end of the header at byte {position}")


def _element(data: bytes, position: int, kind: int) -> tuple[object, int]:
    """An element of a list or map: a boolean one is a whole byte (1 true, 2 or 0 false)."""
    if kind in (_TRUE, _FALSE):
        return data[position] == _TRUE, position + 1
    return _value(data, position, kind)


def _map(data: bytes, position: int) -> tuple[dict, int]:
    size, position = _varint(data, position)
    if size == 0:
        return {}, position
    _check_size(data, position + 1, size, "map", 2)
    kinds = data[position]
    position += 1
    result = {}
    for _ in range(size):
        key, position = _element(data, position, kinds >> 4)
        result[key], position = _element(data, position, kinds & 0x0F)
    return result, position


def read_struct(data: bytes, position: int = 0) -> tuple[dict[int, object], int]:
    """The struct that starts at ``data[position]``, as {field id: value}, and the position just past it."""
    fields: dict[int, object] = {}
    field_id = 0
    while True:
        if position >= len(data):
            raise ThriftError(f"a struct runs past the end of the header at byte {position}")
        header = data[position]
        position += 1
        kind = header & 0x0F
        if kind == _STOP:
            return fields, position
        delta = header >> 4
        if delta:
            field_id += delta
        else:
            field_id, position = _zigzag(data, position)
        fields[field_id], position = _value(data, position, kind)


_ABSENT = object()


def struct_field(fields: dict[int, object], field_id: int) -> dict[int, object]:
    """Field ``field_id`` of a read struct, which must be a struct: a damaged header's field of another type
    is a ThriftError, not an AttributeError further on."""
    value = fields.get(field_id)
    if not isinstance(value, dict):
        raise ThriftError(f"field {field_id} is not a struct: {value!r:.40}")
    return value


def int_field(fields: dict[int, object], field_id: int, default: object = _ABSENT) -> int:
    """Field ``field_id`` of a read struct, a whole number >= 0 (sizes, counts, enums), or ``default`` when it
    is absent and a default is given."""
    value = fields.get(field_id, default)
    if value is _ABSENT or isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ThriftError(f"field {field_id} is not a whole number >= 0: {value!r:.40}")
    return value


def bool_field(fields: dict[int, object], field_id: int, default: bool) -> bool:
    value = fields.get(field_id, default)
    if not isinstance(value, bool):
        raise ThriftError(f"field {field_id} is not a boolean: {value!r:.40}")
    return value
