"""Typed settings: dataclass trees read from and written to JSON, checked field by field.

Every settings class is a dataclass whose defaults are the only defaults of what it
configures and whose `__post_init__` rejects bad values; `from_dict` builds one from a
JSON object (nested objects become nested dataclasses) with errors that name the path of
the bad key, e.g. "config: train.epoch: unknown key (known: accumulate, amp, ...)".
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], values: object, where: str = "config") -> T:
    """A `cls` dataclass from a JSON-like object; unknown keys, wrong types and values its
    checks reject raise ValueError naming `where` and the key's path."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected an object of {cls.__name__} settings, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(fields))})")
    converted = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in values.items()}
    try:
        return cls(**converted)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def to_dict(settings: Any) -> dict:
    """A settings dataclass as a JSON-ready dict (tuples become lists), the inverse of `from_dict`."""
    return _plain(dataclasses.asdict(settings))


def replace(settings: T, changes: dict, where: str = "config") -> T:
    """`settings` with the keys of `changes` replaced; a nested settings object is updated key by
    key (`{"train": {"epochs": 7}}` changes only the epochs), anything else is replaced whole."""
    merged = to_dict(settings)
    for name, value in changes.items():
        current = getattr(settings, name, None)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = {**to_dict(current), **value}
        merged[name] = value
    return from_dict(type(settings), merged, where)


def _convert(hint: Any, value: object, where: str) -> object:
    """`value` as the type `hint` names: nested dataclasses, optional ones, tuples of numbers."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{where}: must not be null")
    for option in options:
        if dataclasses.is_dataclass(option):
            return from_dict(option, value, where)
        if typing.get_origin(option) is tuple and isinstance(value, (list, tuple)):
            return tuple(value)
    return value


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
