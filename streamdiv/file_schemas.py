"""The schema a directory of files is read with: each column wide enough for every file, where that loses
nothing (a dataset would take its first file's schema and cast later files to it without a word)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds

from .errors import SourceError


def unified_schema(path: str, dataset: ds.Dataset) -> pa.Schema:
    """The schema every file of a directory is read with: each column's type widened to hold every file's
    (float32 and float64 probabilities read as float64, int32 and int64 labels as int64), where that loses
    nothing; files whose types cannot be widened so are refused, naming both and the column.  (A dataset
    takes its first file's schema, and would cast a later file's float64 to float32 without a word.)"""
    fragments = list(dataset.get_fragments())
    schemas = [fragment.physical_schema for fragment in fragments]
    seen: dict[str, list[tuple[str, pa.DataType]]] = {}
    for fragment, schema in zip(fragments, schemas):
        for field in schema:
            seen.setdefault(field.name, []).append((fragment.path, field.type))
    for name, types in seen.items():
        target = _widest(name, [kind for _, kind in types])
        if target is None or not all(_widens(kind, target) for _, kind in types):
            (where, kind), (other, other_kind) = types[0], next(item for item in types if item[1] != types[0][1])
            raise SourceError(f"{path}: column {name!r} is {kind} in {where} but {other_kind} in {other}, and no "
                              f"type holds both without loss: write the files with one type")
    unified = pa.unify_schemas(schemas, promote_options="permissive")  # column by column, each unified above
    for field in dataset.schema:  # the hive partitions' columns
        if unified.get_field_index(field.name) < 0:
            unified = unified.append(field)
    return unified


def _widest(name: str, kinds: list[pa.DataType]) -> pa.DataType | None:
    """The type Arrow unifies ``kinds`` to, or None where it cannot (int32 and string)."""
    try:
        return pa.unify_schemas([pa.schema([(name, kind)]) for kind in kinds], promote_options="permissive") \
            .field(name).type
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None


def _widens(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether every value of ``source`` is exactly a value of ``target``."""
    if source == target:
        return True
    if pa.types.is_floating(source) and pa.types.is_floating(target):
        return target.bit_width >= source.bit_width
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        if pa.types.is_signed_integer(source) == pa.types.is_signed_integer(target):
            return target.bit_width >= source.bit_width
        return pa.types.is_unsigned_integer(source) and target.bit_width > source.bit_width
    lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    for is_kind in lists:
        if is_kind(source) and is_kind(target):
            if pa.types.is_fixed_size_list(source) and source.list_size != target.list_size:
                return False
            return _widens(source.value_type, target.value_type)
    return False
