"""Result sharing: a broadcast to a thousand identical subscriptions is executed once.

Theory of operation
-------------------
A broadcast reaches every subscriber of a group. When a thousand clients run the same
subscription, executing the event a thousand times (and serializing a thousand equal
results) is most of the cost of a fan-out. So the executor (one per schema and execution
settings, shared by the server classes that declare them, every transport's) keeps a
bounded LRU of serialized results (:class:`SharedResultCache`), keyed by the operation
and the event, and a subscriber whose key is in it sends the cached text.

The danger is the converse: a result shared with a subscriber it was not computed for
leaks one user's data to another. So sharing is refused unless the result provably
cannot depend on who receives it, and two keys are equal only when the results are
bound to render the same. Each condition below exists because its absence would leak:

1. **The operation** (:meth:`ResultSharing.operation_key`): one root field, which is a
   typed subscription's (marked by :func:`~channels_graphql_typed._contract.
   mark_typed_subscription`), keyed by digests of the query text and of the coerced
   variables (canonical JSON) and by the operation name. Digests, not texts: the cache
   must not hold a thousand huge client-sent strings.
2. **The schema** (:func:`shareable_subscription_fields`, decided once per server
   class): every field that the root field's type reaches is a plain value -- no
   resolver of the user's (it may read ``info.context``), no permission class or field
   extension, no interface or union (resolved per object), and no custom scalar unless
   named in ``context_free_scalars`` (a serializer may read a context variable, the
   user's locale say); enums and the built-in scalars of GraphQL and Strawberry are
   recognised by their serializer functions.
3. **The server**: no user middleware (it runs per field and may mask a field for
   guests) unless ``share_results_under_middleware`` declares it harmless, and no
   schema extension with a per-field or per-result hook (``resolve``, ``get_results``,
   ``on_stream_result``, ``on_execute``); ``MaskErrors`` only rewrites a result's
   errors as a function of them, so the masked text is what is shared.
4. **The event** (:func:`event_key`): the result's class and its values as the
   result's :class:`~channels_graphql_typed._contract.TypedSubscriptionResult` gives
   them -- every field, those a ``publish`` sets per subscriber included, a model
   subscription's node standing as its exposed values (a Django instance equals every
   other instance of its row). Values are compared exactly (:func:`_exact`): by type
   (``1`` is not ``True``) and, where equality is looser than the text
   (``Decimal("1.5") == Decimal("1.50")``, ``0.0 == -0.0``, one instant in two zones),
   by text. An event holding any other kind of value is never shared.

What is shared is the serialized text of a result after the schema's error processing;
each subscriber whose own code receives the payload (a ``publish``, an
``authorize_delivery`` or resolvers of its own) gets a copy of the payload, so no
subscriber can change what another one sees.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import decimal
import enum
import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any, Final

import graphql
from graphql import (
    FieldNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
)

from ._contract import PublishFailure, typed_subscription_of
from ._resolver_offload import STRAWBERRY_DEFINITION

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from ._document_cache import PreparedOperation


def _builtin_serializers() -> frozenset[Callable[..., Any]]:
    """The serializers of the scalars GraphQL specifies and of Strawberry's built-in ones
    (Date, DateTime, Time, Decimal, UUID, JSON, Base16/32/64, Void, Upload): functions of
    the value alone (``isoformat``, ``str``, the identity, an encoding), whatever the
    connection."""
    serializers: set[Callable[..., Any]] = {
        scalar.serialize for scalar in graphql.specified_scalar_types.values()
    }
    try:
        from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
    except ImportError:  # pragma: no cover - a Strawberry that moved its registry
        return frozenset(serializers)
    for definition in DEFAULT_SCALAR_REGISTRY.values():
        if definition.serialize is not None:
            serializers.add(definition.serialize)
    return frozenset(serializers)


_BUILTIN_SERIALIZERS: Final = _builtin_serializers()


def _context_free_scalar(scalar: graphql.GraphQLScalarType, declared: Collection[str]) -> bool:
    """Whether a scalar renders a value the same for every subscriber: a built-in one
    (recognised by its serializer, not its name: ``scalar_overrides`` may replace
    ``DateTime``), or one the consumer declares in ``context_free_scalars``. Any other
    serializer may read a context variable (the viewer's time zone, language)."""
    return scalar.name in declared or scalar.serialize in _BUILTIN_SERIALIZERS


def _context_free(type_: Any, seen: set[str], scalars: Collection[str] = frozenset()) -> bool:
    """Whether every field reachable from ``type_`` is a plain value, whose result depends
    on the event alone (no resolver of the user's that could read the context, no custom
    scalar whose serializer could, unless named in ``scalars``). Enums are plain values:
    graphql-core serializes them by lookup."""
    named = graphql.get_named_type(type_)
    if isinstance(named, graphql.GraphQLScalarType):
        return _context_free_scalar(named, scalars)
    if not isinstance(named, GraphQLObjectType) or named.name in seen:
        return not isinstance(named, GraphQLInterfaceType | graphql.GraphQLUnionType)
    seen.add(named.name)
    for field in named.fields.values():
        definition = (field.extensions or {}).get(STRAWBERRY_DEFINITION)
        if definition is None or definition.base_resolver is not None:
            return False
        if definition.permission_classes or definition.extensions:
            return False
        if not _context_free(field.type, seen, scalars):
            return False
    return True


def shareable_subscription_fields(
    schema: GraphQLSchema, context_free_scalars: Collection[str] = frozenset()
) -> frozenset[str]:
    """Subscription root fields of typed subscriptions whose results may be shared."""
    root = schema.subscription_type
    if root is None:
        return frozenset()
    names = set()
    for name, field in root.fields.items():
        definition = (field.extensions or {}).get(STRAWBERRY_DEFINITION)
        resolver = getattr(getattr(definition, "base_resolver", None), "wrapped_func", None)
        if typed_subscription_of(resolver) is None:
            continue
        if _context_free(field.type, set(), context_free_scalars):
            names.add(name)
    return frozenset(names)


_VALUE_TYPES: Final = (
    str,
    int,
    float,
    bool,
    bytes,
    type(None),
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    enum.Enum,
)
"""Types whose equality means "same value" (a Django model instance, equal to any other
instance of its row whatever its field values, is not one of them)."""


def _exact(value: Any) -> Any:
    """A key for ``value`` that is equal only for values that render the same: the type
    is part of it (``1`` is not ``True``), and types whose equality is looser than their
    text (``Decimal("1.5") == Decimal("1.50")``, ``0.0 == -0.0``, one instant in two time
    zones) are keyed by their text. Raises TypeError for anything else."""
    if isinstance(value, tuple | frozenset):
        items = tuple(_exact(item) for item in value)
        return (type(value), frozenset(items) if isinstance(value, frozenset) else items)
    if isinstance(value, float | decimal.Decimal):
        return (type(value), repr(value))
    if isinstance(value, datetime.datetime | datetime.time):
        return (type(value), value.isoformat(), repr(value.tzinfo))
    if isinstance(value, _VALUE_TYPES):
        return (type(value), value)
    raise TypeError(type(value))


def event_key(event: object) -> tuple[Any, ...] | None:
    """Equal results of a typed subscription (same class, exactly equal values of
    :meth:`~channels_graphql_typed._contract.TypedSubscriptionResult._cgt_event_key`)
    render the same; None when the result cannot be compared that way."""
    if isinstance(event, PublishFailure):
        return None
    # One attribute lookup, not a runtime Protocol check: this runs per subscriber and
    # event.
    key_values: Callable[[], tuple[object, ...]] | None = getattr(event, "_cgt_event_key", None)
    if key_values is None:
        return None  # not a typed subscription's result
    try:
        return (type(event), *(_exact(value) for value in key_values()))
    except TypeError:
        return None


def declared_scalars(schema: GraphQLSchema, names: Collection[str]) -> frozenset[str]:
    """``context_free_scalars``, checked against the schema (a misspelt name would
    silently share nothing)."""
    if isinstance(names, str):
        raise TypeError("context_free_scalars is a collection of scalar names, not one str")
    for name in names:
        if not isinstance(schema.type_map.get(name), graphql.GraphQLScalarType):
            raise ValueError(f"context_free_scalars: the schema has no scalar named {name!r}")
    return frozenset(names)


MAX_INTERNED_OPERATION_KEYS: Final = 1024
"""Distinct operation keys whose one copy the subscriptions share (see
:meth:`ResultSharing.operation_key`)."""


class SharedResultCache:
    """Serialized results shared by the subscribers of equal operations (bounded LRU)."""

    def __init__(self, max_size: int = 1024) -> None:
        self._entries: collections.OrderedDict[tuple[Any, ...], str] = collections.OrderedDict()
        self._max_size = max_size

    def get(self, key: tuple[Any, ...]) -> str | None:
        text = self._entries.get(key)
        if text is not None:
            self._entries.move_to_end(key)
        return text

    def put(self, key: tuple[Any, ...], text: str) -> None:
        self._entries[key] = text
        if len(self._entries) > self._max_size:
            self._entries.popitem(last=False)


class ResultSharing:
    """Which subscription results one server class may share, and the shared results."""

    def __init__(
        self, schema: GraphQLSchema, context_free_scalars: Collection[str], *, enabled: bool
    ) -> None:
        scalars = declared_scalars(schema, context_free_scalars)
        self.shareable_fields = (
            shareable_subscription_fields(schema, scalars) if enabled else frozenset()
        )
        """Subscription root fields whose results may be shared (condition 2 and 3)."""
        self.cache = SharedResultCache()
        # Equal keys, one tuple: each subscription keeps its key for its whole life, and
        # most subscribers of a server send the same few operations (bounded: a key that
        # falls out is only kept twice, not shared less).
        self._keys: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def operation_key(self, operation: PreparedOperation) -> tuple[Any, ...] | None:
        """What identifies results that every subscriber of this operation can share, or
        None when a result may depend on who receives it (condition 1)."""
        root = operation.operation.selection_set.selections
        if len(root) != 1 or not isinstance(root[0], FieldNode):
            return None
        if root[0].name.value not in self.shareable_fields:
            return None
        try:
            variables = json.dumps(operation.variables, sort_keys=True)
        except (TypeError, ValueError):
            return None
        digest = hashlib.sha256(operation.query.encode("utf-8", "surrogatepass")).digest()
        variables_digest = hashlib.sha256(variables.encode("utf-8", "surrogatepass")).digest()
        key = (digest, operation.operation_name, variables_digest)
        known = self._keys.get(key)
        if known is not None:
            return known
        if len(self._keys) >= MAX_INTERNED_OPERATION_KEYS:
            # The oldest goes (another event loop's thread may be at it too).
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del self._keys[next(iter(self._keys))]
        self._keys[key] = key
        return key
