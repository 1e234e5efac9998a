"""Broadcast payloads across the channel layer: msgpack, bounded, and typed by a registry.

A payload crosses process boundaries (channels-redis), so it is serialized at the
``broadcast`` call site -- where a payload that cannot cross raises
:class:`~.exceptions.PayloadSerializationError` in the caller's process -- and
deserialized once per receiving process, not per subscriber.

What round-trips into the same types: ``None``, ``bool``, ``int``, ``float``, ``str``,
``bytes``, ``list``, ``tuple``, ``dict`` (any keys that are themselves payload values),
``set``, ``frozenset``, ``datetime.datetime`` (a ``zoneinfo.ZoneInfo`` zone keeps its key,
not only its offset) / ``date`` / ``time`` / ``timedelta``,
``uuid.UUID``, ``decimal.Decimal``, and instances of *registered* enums, named tuples,
dataclasses (rebuilt without running ``__init__`` again) and Django models (their
concrete fields' values at broadcast time, foreign keys as their ``_id``, files as
their name, choices as their value, read without touching the database, so a row
deleted since still arrives; rebuilt with ``Model.from_db``).

Trust model
-----------
Anything that can write to the channel layer (any process with the Redis credentials,
or a bug in one) can put any bytes in front of the decoder, so the decoder is total and
bounded: whatever it is given, it returns a payload or raises
:class:`PayloadSerializationError`, and it never crashes, recurses without bound, imports
a module or builds a class that the application did not declare.

* **Registry.** Only registered classes are materialised, looked up by name in a dict
  (never imported): the payload type parameter of every declared
  :class:`~.subscription.Subscription` class, the class itself, its ``payload_types``,
  and every dataclass, enum, named tuple and Django model reachable from their
  annotations (fields, ``list[...]``, unions, generic parameters), plus whatever
  :func:`register_payload_type` names. The sender refuses an unregistered class with an
  error that names it; a receiver drops a message naming one.
* **Bounds, applied on both sides.** A payload nests at most :data:`MAX_PAYLOAD_DEPTH`
  containers deep and serializes to at most :data:`MAX_PAYLOAD_SIZE` bytes: the sender
  raises with the limit in the message, the receiver refuses the bytes before decoding.
* **No re-entry.** The wire form is one msgpack document: containers are msgpack arrays
  and maps, typed values are arrays that start with a one-byte extension *tag*, and
  extension data holds only leaf values (a date, a UUID). msgpack's C decoder walks the
  nesting with a bounded stack of its own and fails cleanly past it; our restoring walk
  is Python, bounded by :data:`MAX_PAYLOAD_DEPTH`. (Nesting msgpack documents inside
  extension data, as an earlier format did, re-entered the C decoder once per level and
  could exhaust the C stack from a few hundred bytes.)
* **Versioned.** The bytes start with :data:`FORMAT_MARKER`, a byte that msgpack never
  produces followed by a format version: a message of another format or version is
  refused by name, not misread.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import struct
import sys
import threading
import types
import typing
import uuid
import zoneinfo
from typing import TYPE_CHECKING, Any, Final, TypeGuard, TypeVar

import msgpack

from ._exceptions import PayloadSerializationError
from ._log import logger

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.db.models import Model


MAX_PAYLOAD_DEPTH: Final = 32
"""Deepest nesting of containers (lists, tuples, sets, dicts, dataclasses, named tuples,
model instances) in a payload: deeper payloads are refused by the sender and dropped
by receivers."""
MAX_PAYLOAD_SIZE: Final = 1024 * 1024
"""Largest serialized payload, in bytes (1 MiB): larger ones are refused by the sender and
dropped by receivers."""
FORMAT_MARKER: Final = b"\xc1\x02"
"""The first bytes of every serialized payload: 0xC1 is the one byte msgpack never
uses, so no msgpack document (such as the earlier, unversioned format) starts with it;
then the format version."""


class ExtensionType(enum.IntEnum):
    """msgpack extension types of the wire format. The leaf types' data is bytes,
    decoded without msgpack; a :attr:`TAG` starts a typed array."""

    DATETIME = 1
    DATE = 2
    TIME = 3
    TIMEDELTA = 4
    UUID = 5
    DECIMAL = 6
    TAG = 20
    """Its one byte of data (a :class:`TagKind`) says what the array it starts is."""


class TagKind(enum.IntEnum):
    """What a typed array (one starting with a :attr:`ExtensionType.TAG`) holds."""

    TUPLE = 1
    SET = 2
    FROZENSET = 3
    ENUM = 4
    DATACLASS = 5
    MODEL = 6
    NAMED_TUPLE = 7


_MAX_ZONE_KEY_LENGTH: Final = 256

_TIMEDELTA_STRUCT: Final = struct.Struct("<qqq")


class _Tag:
    """What a tag extension decodes to: the marker at the start of a typed array."""

    __slots__ = ("kind",)

    def __init__(self, kind: int) -> None:
        self.kind = kind


_TAGS: Final[dict[int, _Tag]] = {kind: _Tag(kind) for kind in TagKind}
_TAG_EXTENSIONS: Final = {kind: msgpack.ExtType(ExtensionType.TAG, bytes([kind])) for kind in _TAGS}


# --- the registry ---------------------------------------------------------------------------

_lock = threading.Lock()
_classes: dict[str, type] = {}
"""Registered enums, named tuples and dataclasses, by ``module:qualname``."""
_models: dict[str, type[Model]] = {}
"""Registered Django models, by app label and model name (``Model._meta.label``)."""
_pending: list[tuple[object, dict[Any, Any]]] = []
"""Annotations still to walk (read at first use, when every module is imported)."""

TypeT = TypeVar("TypeT", bound=type)


def register_payload_type(cls: TypeT) -> TypeT:
    """Let instances of ``cls`` cross the channel layer inside broadcast payloads.

    ``cls`` is a dataclass, an enum, a named tuple or a Django model; the types reachable
    from its annotations are registered with it. Usable as a class decorator. Types
    reachable from a subscription's payload type parameter need no registration: only
    those a declaration cannot name (a payload typed ``Any``, a subclass of a declared
    type) do.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_payload_type() takes a class, not {cls!r}")
    if _kind(cls) is None:
        raise TypeError(
            f"{cls.__qualname__} cannot be a payload type: payload types are dataclasses, "
            "enums, named tuples and Django models"
        )
    _register_annotation(cls)
    return cls


def register_annotation(annotation: object, substitutions: dict[Any, Any] | None = None) -> None:
    """Register what ``annotation`` (a type, or a type expression such as
    ``list[Event] | None``) can hold, once every module is imported (at the first
    serialization or deserialization). ``substitutions`` maps type variables to what
    they stand for."""
    with _lock:
        _pending.append((annotation, dict(substitutions or {})))


def _register_annotation(annotation: object) -> None:
    with _lock:
        _pending.append((annotation, {}))
    _resolve_pending()


def _kind(cls: type) -> str | None:
    if issubclass(cls, enum.Enum):
        return "enum"
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return "named tuple"
    if dataclasses.is_dataclass(cls):
        return "dataclass"
    if _is_model_class(cls):
        return "model"
    return None


def _is_model_class(cls: type) -> TypeGuard[type[Model]]:
    models = sys.modules.get("django.db.models")
    return models is not None and issubclass(cls, models.Model)


def _resolve_pending() -> None:
    if not _pending:
        return
    with _lock:
        pending = list(_pending)
        _pending.clear()
        seen: set[int] = set()
        for annotation, substitutions in pending:
            try:
                _walk(annotation, substitutions, seen)
            except Exception:
                # Never fail the import of the user's module over this: what could not
                # be walked is refused by the sender, naming it.
                logger.warning("Cannot read the payload types of %r", annotation, exc_info=True)


def _walk(annotation: object, substitutions: dict[Any, Any], seen: set[int]) -> None:
    """Register every class that a value of ``annotation`` can hold (called under the
    lock; each class's annotations are walked once per call)."""
    if isinstance(annotation, TypeVar):
        if annotation in substitutions:
            _walk(substitutions[annotation], {}, seen)
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        _walk(typing.get_args(annotation)[0], substitutions, seen)
        return
    if origin is typing.Literal:
        for value in typing.get_args(annotation):
            if isinstance(value, enum.Enum):
                _walk(type(value), {}, seen)
        return
    if origin is not None:
        arguments = typing.get_args(annotation)
        for argument in arguments:
            _walk(argument, substitutions, seen)
        if isinstance(origin, type) and origin is not type:
            parameters = getattr(origin, "__parameters__", ())
            if not isinstance(parameters, tuple):
                parameters = ()  # builtins (tuple, dict) have a descriptor here
            inner = dict(zip(parameters, arguments, strict=False))
            inner = {
                parameter: substitutions.get(value, value) for parameter, value in inner.items()
            }
            _walk_class(origin, inner, seen)
        return
    if isinstance(annotation, types.UnionType):
        for argument in annotation.__args__:
            _walk(argument, substitutions, seen)
        return
    if isinstance(annotation, type):
        _walk_class(annotation, substitutions, seen)


def _walk_class(cls: type, substitutions: dict[Any, Any], seen: set[int]) -> None:
    if _is_model_class(cls):
        _models[cls._meta.label] = cls
        return
    kind = _kind(cls)
    if kind is None and not hasattr(cls, "__strawberry_definition__"):
        return  # builtins and other classes: nothing of theirs is registered
    if kind is not None and "<locals>" not in cls.__qualname__:
        _classes[_qualified_name(cls)] = cls
    key = hash((cls, tuple(sorted(substitutions.items(), key=repr))))
    if key in seen or kind == "enum":
        return
    seen.add(key)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        # An annotation that cannot be evaluated here (a TYPE_CHECKING-only import):
        # what it names must be registered by hand, and the sender says so.
        hints = {}
    for hint in hints.values():
        _walk(hint, substitutions, seen)


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _registered_name(cls: type, kind: str) -> str:
    if "<locals>" in cls.__qualname__:
        raise PayloadSerializationError(
            f"{cls.__qualname__} is defined inside a function: the receiving process could "
            "not look it up; define it at module level"
        )
    name = _qualified_name(cls)
    if _classes.get(name) is not cls:
        _resolve_pending()
        if _classes.get(name) is not cls:
            raise PayloadSerializationError(
                f"Cannot broadcast an instance of {name}: this {kind} is not a registered "
                "payload type. Payload types are those reachable from the type parameter "
                "of a declared Subscription class; register others with "
                "channels_graphql_typed.register_payload_type"
            )
    return name


# --- encoding -------------------------------------------------------------------------------


def _encode(value: Any, depth: int) -> Any:
    """The wire tree of ``value``: msgpack-native values, leaf extensions, and arrays
    that start with a tag."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is bytes:
        return value
    if isinstance(value, datetime.datetime):
        text = value.isoformat()
        zone = value.tzinfo
        if isinstance(zone, zoneinfo.ZoneInfo) and zone.key is not None:
            # The offset alone would lose the zone (and DST arithmetic with it): the key
            # follows, as in RFC 9557's "2026-03-29T01:30:00+01:00[Europe/Paris]".
            text = f"{text}[{zone.key}]"
        return msgpack.ExtType(ExtensionType.DATETIME, text.encode())
    if isinstance(value, datetime.date):
        return msgpack.ExtType(ExtensionType.DATE, value.isoformat().encode())
    if isinstance(value, datetime.time):
        return msgpack.ExtType(ExtensionType.TIME, value.isoformat().encode())
    if isinstance(value, datetime.timedelta):
        data = _TIMEDELTA_STRUCT.pack(value.days, value.seconds, value.microseconds)
        return msgpack.ExtType(ExtensionType.TIMEDELTA, data)
    if isinstance(value, uuid.UUID):
        return msgpack.ExtType(ExtensionType.UUID, value.bytes)
    if isinstance(value, decimal.Decimal):
        return msgpack.ExtType(ExtensionType.DECIMAL, str(value).encode())
    if not isinstance(value, enum.Enum):
        # Subclasses of the primitive builtins travel as the builtin.
        primitive: type[Any]
        for primitive in (bool, int, float, str, bytes):
            if isinstance(value, primitive):
                return primitive(value)
    # Everything else is an array or a map on the wire: one level of nesting.
    if depth >= MAX_PAYLOAD_DEPTH:
        raise PayloadSerializationError(
            f"Cannot broadcast the payload: it nests containers more than "
            f"{MAX_PAYLOAD_DEPTH} levels deep (MAX_PAYLOAD_DEPTH)"
        )
    inner = depth + 1
    if kind is list:
        return [_encode(item, inner) for item in value]
    if kind is dict:
        return {_encode(key, inner): _encode(item, inner) for key, item in value.items()}
    if isinstance(value, enum.Enum):
        name = _registered_name(kind, "enum")
        return [_TAG_EXTENSIONS[TagKind.ENUM], name, _encode(value.value, inner)]
    if isinstance(value, tuple) and hasattr(kind, "_fields"):
        name = _registered_name(kind, "named tuple")
        return [
            _TAG_EXTENSIONS[TagKind.NAMED_TUPLE],
            name,
            *(_encode(item, inner) for item in value),
        ]
    if isinstance(value, tuple):
        return [_TAG_EXTENSIONS[TagKind.TUPLE], *(_encode(item, inner) for item in value)]
    if isinstance(value, frozenset):
        return [_TAG_EXTENSIONS[TagKind.FROZENSET], *(_encode(item, inner) for item in value)]
    if isinstance(value, set):
        return [_TAG_EXTENSIONS[TagKind.SET], *(_encode(item, inner) for item in value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = _registered_name(kind, "dataclass")
        fields = {
            field.name: _encode(getattr(value, field.name), inner)
            for field in dataclasses.fields(value)
        }
        return [_TAG_EXTENSIONS[TagKind.DATACLASS], name, fields]
    model = _model_values(value)
    if model is not None:
        label, db, names, values = model
        if _models.get(label) is not kind:
            _resolve_pending()
            if _models.get(label) is not kind:
                raise PayloadSerializationError(
                    f"Cannot broadcast an instance of the model {label}: it is not a "
                    "registered payload type. Payload types are those reachable from the "
                    "type parameter of a declared Subscription class; register others with "
                    "channels_graphql_typed.register_payload_type"
                )
        encoded = [_encode(item, inner) for item in values]
        return [_TAG_EXTENSIONS[TagKind.MODEL], label, db, names, encoded]
    # Subclasses of builtins (an OrderedDict, a UserList-like list): as the builtin.
    if isinstance(value, dict):
        return {_encode(key, inner): _encode(item, inner) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item, inner) for item in value]
    raise PayloadSerializationError(
        f"Cannot broadcast a value of type {kind.__module__}.{kind.__qualname__}: "
        "payloads may hold primitives, lists, tuples, sets, dicts, datetimes, dates, times, "
        "timedeltas, UUIDs, Decimals, and registered enums, named tuples, dataclasses and "
        "Django model instances"
    )


def _model_values(value: Any) -> tuple[str, str | None, list[str], list[Any]] | None:
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
    # A choices enum member (TextChoices, IntegerChoices) travels as its value, which
    # is what the database stores and what from_db() is given when reading a row.
    values = [item.value if isinstance(item, enum.Enum) else item for item in values]
    return meta.label, value._state.db, names, values


def serialize_payload(payload: Any) -> bytes:
    """Serialize a broadcast payload; raise :class:`PayloadSerializationError` (a
    ``TypeError``) when it holds something that cannot cross the channel layer, nests
    deeper than :data:`MAX_PAYLOAD_DEPTH` or serializes larger than
    :data:`MAX_PAYLOAD_SIZE`."""
    _resolve_pending()
    try:
        tree = _encode(payload, 0)
        packed: bytes = msgpack.packb(tree, strict_types=True, use_bin_type=True)
    except PayloadSerializationError:
        raise
    except RecursionError as exc:  # a self-referencing value
        raise PayloadSerializationError(
            f"Cannot broadcast the payload: it nests more than {MAX_PAYLOAD_DEPTH} levels deep "
            "or refers to itself"
        ) from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadSerializationError(f"Cannot serialize the broadcast payload: {exc}") from exc
    if len(packed) + len(FORMAT_MARKER) > MAX_PAYLOAD_SIZE:
        raise PayloadSerializationError(
            f"Cannot broadcast the payload: it serializes to {len(packed)} bytes, more than "
            f"{MAX_PAYLOAD_SIZE} (MAX_PAYLOAD_SIZE)"
        )
    return FORMAT_MARKER + packed


# --- decoding -------------------------------------------------------------------------------


def _leaf(code: int, data: bytes) -> Any:
    if code == ExtensionType.TAG:
        if len(data) != 1 or data[0] not in _TAGS:
            raise PayloadSerializationError(f"unknown tag {data!r}")
        return _TAGS[data[0]]
    match code:
        case ExtensionType.DATETIME:
            return _datetime(data.decode())
        case ExtensionType.DATE:
            return datetime.date.fromisoformat(data.decode())
        case ExtensionType.TIME:
            return datetime.time.fromisoformat(data.decode())
        case ExtensionType.TIMEDELTA:
            days, seconds, microseconds = _TIMEDELTA_STRUCT.unpack(data)
            return datetime.timedelta(days=days, seconds=seconds, microseconds=microseconds)
        case ExtensionType.UUID:
            return uuid.UUID(bytes=data)
        case ExtensionType.DECIMAL:
            return decimal.Decimal(data.decode())
    raise PayloadSerializationError(f"unknown extension type {code}")


def _datetime(text: str) -> datetime.datetime:
    if not text.endswith("]"):
        return datetime.datetime.fromisoformat(text)
    moment, bracket, key = text[:-1].partition("[")
    if not bracket or len(key) > _MAX_ZONE_KEY_LENGTH:
        raise PayloadSerializationError(f"invalid datetime {text[:80]!r}")
    try:
        # ZoneInfo refuses keys that are not names under the time zone path.
        zone = zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise PayloadSerializationError(f"unknown time zone {key[:80]!r}") from exc
    # The instant that the offset says, in its zone (the offset decides an ambiguous
    # wall time, so the fold comes back too).
    return datetime.datetime.fromisoformat(moment).astimezone(zone)


def _decode(value: Any, depth: int) -> Any:
    """The payload value of a wire tree (arrays arrive as tuples: hashable keys)."""
    kind = type(value)
    if kind is tuple:
        if depth >= MAX_PAYLOAD_DEPTH:
            raise PayloadSerializationError(
                f"the payload nests more than {MAX_PAYLOAD_DEPTH} levels deep"
            )
        inner = depth + 1
        if not value or type(value[0]) is not _Tag:
            return [_decode(item, inner) for item in value]
        return _decode_tagged(value[0].kind, value[1:], inner)
    if kind is dict:
        if depth >= MAX_PAYLOAD_DEPTH:
            raise PayloadSerializationError(
                f"the payload nests more than {MAX_PAYLOAD_DEPTH} levels deep"
            )
        inner = depth + 1
        return {_decode(key, inner): _decode(item, inner) for key, item in value.items()}
    if kind is _Tag:
        raise PayloadSerializationError("a tag outside of the start of an array")
    return value


def _decode_tagged(kind: int, items: tuple[Any, ...], depth: int) -> Any:
    if kind == TagKind.TUPLE:
        return tuple(_decode(item, depth) for item in items)
    if kind == TagKind.SET:
        return {_decode(item, depth) for item in items}
    if kind == TagKind.FROZENSET:
        return frozenset(_decode(item, depth) for item in items)
    if kind == TagKind.ENUM:
        name, raw = items
        enum_class = _lookup(name, enum.Enum)
        return enum_class(_decode(raw, depth))
    if kind == TagKind.NAMED_TUPLE:
        name, *values = items
        named_tuple = _lookup(name, tuple)
        if not hasattr(named_tuple, "_fields"):
            raise PayloadSerializationError(f"{name} is not a named tuple")
        return named_tuple(*(_decode(item, depth) for item in values))
    if kind == TagKind.DATACLASS:
        name, fields = items
        cls = _lookup(name, object)
        if (
            not (isinstance(cls, type) and dataclasses.is_dataclass(cls))
            or type(fields) is not dict
        ):
            raise PayloadSerializationError(f"{name} is not a dataclass")
        # The sender's instance was built already: restore its fields as they were,
        # without running __init__ / __post_init__ again.
        instance = object.__new__(cls)
        for field in dataclasses.fields(cls):
            if field.name in fields:
                object.__setattr__(instance, field.name, _decode(fields[field.name], depth))
        return instance
    if kind == TagKind.MODEL:
        label, db, names, values = items
        model = _models.get(label) if isinstance(label, str) else None
        if model is None:
            _resolve_pending()
            model = _models.get(label) if isinstance(label, str) else None
        if model is None:
            raise PayloadSerializationError(f"{label!r} is not a registered model")
        if type(names) is not tuple or not all(type(name) is str for name in names):
            raise PayloadSerializationError(f"bad field names for the model {label}")
        if type(values) is not tuple or len(values) != len(names):
            raise PayloadSerializationError(f"bad field values for the model {label}")
        if db is not None and type(db) is not str:
            raise PayloadSerializationError(f"bad database alias for the model {label}")
        attnames = {field.attname for field in model._meta.concrete_fields}
        if not set(names) <= attnames:
            raise PayloadSerializationError(f"unknown fields for the model {label}")
        decoded = [_decode(item, depth) for item in values]
        return model.from_db(db, list(names), decoded)
    raise PayloadSerializationError(f"unknown tag {kind}")


def _lookup(name: object, base: type) -> Any:
    if not isinstance(name, str):
        raise PayloadSerializationError(f"a type name that is not a string: {name!r}")
    cls = _classes.get(name)
    if cls is None:
        _resolve_pending()
        cls = _classes.get(name)
    if cls is None:
        raise PayloadSerializationError(f"{name} is not a registered payload type")
    if not issubclass(cls, base):
        raise PayloadSerializationError(f"{name} is not a {base.__name__}")
    return cls


def deserialize_payload(data: object) -> Any:
    """The payload that :func:`serialize_payload` serialized, with the same types.

    Total: for any input that is not such a payload (another format, too large, too
    deep, an unregistered type, garbage), it raises :class:`PayloadSerializationError`
    saying why.
    """
    if not isinstance(data, bytes):
        raise PayloadSerializationError(f"a payload must be bytes, not {type(data).__name__}")
    if len(data) > MAX_PAYLOAD_SIZE:
        raise PayloadSerializationError(
            f"the payload has {len(data)} bytes, more than {MAX_PAYLOAD_SIZE} (MAX_PAYLOAD_SIZE)"
        )
    if not data.startswith(FORMAT_MARKER):
        raise PayloadSerializationError(
            "the payload is not of this version's format (sent by another version of "
            "channels_graphql_typed, or not by it at all)"
        )
    try:
        tree = msgpack.unpackb(
            memoryview(data)[len(FORMAT_MARKER) :],
            ext_hook=_leaf,
            raw=False,
            strict_map_key=False,
            use_list=False,
        )
        return _decode(tree, 0)
    except PayloadSerializationError:
        raise
    except Exception as exc:
        # msgpack's own errors (truncated, extra data, its stack limit), a bad date or
        # Decimal text, an unhashable key, a value an enum refuses, ...
        raise PayloadSerializationError(
            f"the payload cannot be decoded: {type(exc).__name__}: {exc}"
        ) from exc


_IMMUTABLE_LEAVES: Final = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        str,
        bytes,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        uuid.UUID,
        decimal.Decimal,
    }
)


def copy_payload(value: Any) -> Any:
    """A copy of a decoded payload that shares nothing mutable with it.

    Each subscriber whose own code receives the payload gets one (see
    :class:`~.subscription.SubscriptionStream`), so that code mutating it in place cannot
    change what the other subscribers of the process get. Much cheaper than decoding
    the bytes again or ``copy.deepcopy``: it knows the few types a decoded payload holds
    (the module docstring lists them), shares the immutable ones, and rebuilds the
    others as the decoder does (dataclasses without ``__init__``, models with
    ``from_db``). Its depth is the payload's, which the decoder bounded.
    """
    kind = type(value)
    if kind in _IMMUTABLE_LEAVES:
        return value
    if kind is list:
        return [copy_payload(item) for item in value]
    if kind is dict:
        # Keys are hashable, hence treated as values; only the mapped values are copied.
        return {key: copy_payload(item) for key, item in value.items()}
    if kind is set:
        return {copy_payload(item) for item in value}
    if kind is tuple or kind is frozenset:
        items = [copy_payload(item) for item in value]
        if all(copied is item for copied, item in zip(items, value, strict=True)):
            return value  # nothing mutable inside: the container itself is immutable
        return kind(items)
    if isinstance(value, enum.Enum):
        return value
    if isinstance(value, tuple):  # a named tuple
        return kind(*(copy_payload(item) for item in value))
    fields = _dataclass_fields.get(kind)
    if fields is not None or dataclasses.is_dataclass(value):
        if fields is None:
            fields = _dataclass_fields[kind] = tuple(f.name for f in dataclasses.fields(kind))
        instance = object.__new__(kind)
        for name in fields:
            try:
                field_value = getattr(value, name)
            except AttributeError:
                continue  # a field the sender's instance did not have either
            object.__setattr__(instance, name, copy_payload(field_value))
        return instance
    model_values = _model_values(value)
    if model_values is not None:
        # The values as they would cross the channel layer (a file as its name, a
        # choice as its value), rebuilt as the decoder rebuilds them.
        _, db, names, values = model_values
        return kind.from_db(db, names, [copy_payload(item) for item in values])
    # Not a type the decoder makes (a payload built in this process, say): the generic,
    # slower way.
    import copy

    return copy.deepcopy(value)


_dataclass_fields: dict[type, tuple[str, ...]] = {}


def registered_payload_types() -> Iterable[type]:
    """Every registered class (for diagnostics and tests)."""
    _resolve_pending()
    return (*_classes.values(), *_models.values())
