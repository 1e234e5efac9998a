"""Broadcast payloads across the channel layer: msgpack with typed extensions.

A payload crosses process boundaries (channels-redis), so it is serialized at the
``broadcast`` call site -- where a payload that cannot cross raises ``TypeError`` in the
caller's process -- and deserialized once per receiving process, not per subscriber.

What round-trips into the same types: ``None``, ``bool``, ``int``, ``float``, ``str``,
``bytes``, ``list``, ``tuple`` (named tuples too), ``dict`` (any msgpack-able keys),
``set``, ``frozenset``, ``datetime.datetime`` / ``date`` / ``time`` / ``timedelta``,
``uuid.UUID``, ``decimal.Decimal``, enum members, dataclass instances (rebuilt without
running ``__init__`` again) and Django model instances. Named tuples, dataclasses and
enums must be importable by module and qualified name in the receiving
process. A model instance travels as the values of its concrete fields at broadcast time
(foreign keys as their ``_id``, files as their name), read from the instance without
touching the database, so a row deleted since still arrives; it comes back as an
unsaved-looking instance built with ``Model.from_db``.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import importlib
import uuid
from typing import Any, Final

import msgpack

from .exceptions import PayloadSerializationError

_DATETIME: Final = 1
_DATE: Final = 2
_TIME: Final = 3
_TIMEDELTA: Final = 4
_UUID: Final = 5
_DECIMAL: Final = 6
_TUPLE: Final = 7
_SET: Final = 8
_FROZENSET: Final = 9
_ENUM: Final = 10
_DATACLASS: Final = 11
_MODEL: Final = 12
_NAMED_TUPLE: Final = 13


def _qualified_name(cls: type) -> str:
    if "<locals>" in cls.__qualname__:
        raise PayloadSerializationError(
            f"{cls.__qualname__} is defined inside a function: the receiving process could "
            "not import it; define it at module level"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


def _import(name: str) -> Any:
    module_name, _, qualname = name.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def _pack(value: Any) -> bytes:
    try:
        packed: bytes = msgpack.packb(value, default=_default, strict_types=True, use_bin_type=True)
    except PayloadSerializationError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadSerializationError(f"Cannot serialize the broadcast payload: {exc}") from exc
    return packed


def _default(value: Any) -> msgpack.ExtType:
    # strict_types: subclasses of builtins (IntEnum, bool-like, OrderedDict) land here.
    if isinstance(value, enum.Enum):
        return msgpack.ExtType(_ENUM, _pack([_qualified_name(type(value)), value.value]))
    if isinstance(value, datetime.datetime):
        return msgpack.ExtType(_DATETIME, value.isoformat().encode())
    if isinstance(value, datetime.date):
        return msgpack.ExtType(_DATE, value.isoformat().encode())
    if isinstance(value, datetime.time):
        return msgpack.ExtType(_TIME, value.isoformat().encode())
    if isinstance(value, datetime.timedelta):
        return msgpack.ExtType(_TIMEDELTA, _pack([value.days, value.seconds, value.microseconds]))
    if isinstance(value, uuid.UUID):
        return msgpack.ExtType(_UUID, value.bytes)
    if isinstance(value, decimal.Decimal):
        return msgpack.ExtType(_DECIMAL, str(value).encode())
    if isinstance(value, tuple) and hasattr(type(value), "_fields"):
        # A NamedTuple comes back as itself, built from its values.
        return msgpack.ExtType(_NAMED_TUPLE, _pack([_qualified_name(type(value)), list(value)]))
    if isinstance(value, tuple):
        return msgpack.ExtType(_TUPLE, _pack(list(value)))
    if isinstance(value, frozenset):
        return msgpack.ExtType(_FROZENSET, _pack(list(value)))
    if isinstance(value, set):
        return msgpack.ExtType(_SET, _pack(list(value)))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        return msgpack.ExtType(_DATACLASS, _pack([_qualified_name(type(value)), fields]))
    model = _model_values(value)
    if model is not None:
        return msgpack.ExtType(_MODEL, _pack(model))
    if isinstance(value, dict):
        return dict(value)  # type: ignore[return-value]  # a dict subclass: send it as a dict
    if isinstance(value, list):
        return list(value)  # type: ignore[return-value]
    if isinstance(value, str):
        return str(value)  # type: ignore[return-value]
    if isinstance(value, int):
        return int(value)  # type: ignore[return-value]
    if isinstance(value, float):
        return float(value)  # type: ignore[return-value]
    raise PayloadSerializationError(
        f"Cannot broadcast a value of type {type(value).__module__}.{type(value).__qualname__}: "
        "payloads may hold primitives, lists, tuples, sets, dicts, datetimes, dates, times, "
        "timedeltas, UUIDs, Decimals, enums, dataclasses and Django model instances"
    )


def _model_values(value: Any) -> list[Any] | None:
    meta = getattr(type(value), "_meta", None)
    if meta is None or not hasattr(meta, "concrete_fields") or not hasattr(value, "_state"):
        return None
    from django.db.models.fields.files import FieldFile

    deferred = value.get_deferred_fields()
    names = [field.attname for field in meta.concrete_fields if field.attname not in deferred]
    # Plain attribute reads: the instance's current values, no database query. A file
    # field holds a FieldFile once read (saving reads it): it travels as its name, which
    # is what the database stores.
    values = [value.__dict__[name] for name in names]
    values = [item.name if isinstance(item, FieldFile) else item for item in values]
    return [meta.label, value._state.db, names, values]


def _ext_hook(code: int, data: bytes) -> Any:
    match code:
        case 1:
            return datetime.datetime.fromisoformat(data.decode())
        case 2:
            return datetime.date.fromisoformat(data.decode())
        case 3:
            return datetime.time.fromisoformat(data.decode())
        case 4:
            days, seconds, microseconds = _unpack(data)
            return datetime.timedelta(days=days, seconds=seconds, microseconds=microseconds)
        case 5:
            return uuid.UUID(bytes=data)
        case 6:
            return decimal.Decimal(data.decode())
        case 7:
            return tuple(_unpack(data))
        case 8:
            return set(_unpack(data))
        case 9:
            return frozenset(_unpack(data))
        case 10:
            name, raw = _unpack(data)
            enum_class = _import(name)
            if not (isinstance(enum_class, type) and issubclass(enum_class, enum.Enum)):
                raise PayloadSerializationError(f"{name} is not an enum")
            return enum_class(raw)
        case 11:
            name, fields = _unpack(data)
            cls = _import(name)
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise PayloadSerializationError(f"{name} is not a dataclass")
            # The sender's instance was built already: restore its fields as they were,
            # without running __init__ / __post_init__ again.
            instance = object.__new__(cls)
            for f in dataclasses.fields(cls):
                if f.name in fields:
                    object.__setattr__(instance, f.name, fields[f.name])
            return instance
        case 13:
            name, values = _unpack(data)
            named_tuple = _import(name)
            if not (isinstance(named_tuple, type) and issubclass(named_tuple, tuple)):
                raise PayloadSerializationError(f"{name} is not a named tuple")
            return named_tuple(*values)
        case 12:
            from django.apps import apps

            label, db, names, values = _unpack(data)
            model = apps.get_model(label)
            return model.from_db(db, names, values)
    return msgpack.ExtType(code, data)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def serialize_payload(payload: Any) -> bytes:
    """Serialize a broadcast payload; raise :class:`PayloadSerializationError` (a
    ``TypeError``) when it holds something that cannot cross the channel layer."""
    return _pack(payload)


def deserialize_payload(data: bytes) -> Any:
    """The payload that :func:`serialize_payload` serialized, with the same types."""
    return _unpack(data)
