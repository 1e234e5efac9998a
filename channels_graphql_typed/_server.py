"""What every transport of one GraphQL server declares: the schema and its settings.

:class:`GraphqlServer` holds the class attributes that concern operations, the same
for every transport, and builds them, once per class, into the
:class:`~channels_graphql_typed._runner.ServerSettings` that the operation runner
reads (executor included). The consumers add what only their transport has:
:class:`~channels_graphql_typed.GraphqlWsConsumer` (WebSocket) and
:class:`~channels_graphql_typed.GraphqlHttpConsumer` (HTTP and Server-Sent Events)
both derive from it, so that one declaration serves both::

    class ChatServer(GraphqlServer):
        schema = strawberry.Schema(query=Query, subscription=Subscription)
        max_query_depth = 10

    class ChatWsConsumer(ChatServer, GraphqlWsConsumer): ...
    class ChatHttpConsumer(ChatServer, GraphqlHttpConsumer): ...
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.core.exceptions import ImproperlyConfigured

from . import _log as log_where
from ._context import Context
from ._contract import DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION, OperationSettings
from ._document_cache import DEFAULT_DOCUMENT_CACHE_SIZE, DEFAULT_DOCUMENT_CACHE_TOKENS
from ._execution import GraphqlExecutor
from ._limited_executor import DEFAULT_MAX_RESULT_SIZE
from ._notification_queue import DEFAULT_NOTIFICATION_QUEUE_LIMIT
from ._origin import default_allowed_origins, origin_allowed, request_origin
from ._protocol.common import DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_OPERATIONS_SIZE
from ._runner import ServerSettings
from ._validation_rules import (
    DEFAULT_MAX_QUERY_ALIASES,
    DEFAULT_MAX_QUERY_DEPTH,
    DEFAULT_MAX_QUERY_TOKENS,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    import strawberry
    from graphql import ASTValidationRule

    from ._protocol.messages import ExecutionResultPayload, OperationPayload


class GraphqlServer:
    """The schema and the operation settings shared by every transport's consumer.

    Subclass it to declare a server once, then combine it with each transport's
    consumer (``class ChatWsConsumer(ChatServer, GraphqlWsConsumer)``); or subclass a
    consumer directly. Each consumer class builds its own executor from these
    attributes on first use.
    """

    schema: ClassVar[strawberry.Schema]
    """The Strawberry schema to serve (executed with graphql-core)."""

    allowed_origins: ClassVar[Sequence[str] | None] = None
    """Origins whose pages may open a socket or send a request (see
    :mod:`channels_graphql_typed._origin`): ``"*"``, exact origins
    (``"https://chat.example.com"``) or ``ALLOWED_HOSTS``-style host patterns. None: the
    hosts of ``ALLOWED_HOSTS``. A handshake or request with another ``Origin`` is refused
    (HTTP 403); one without ``Origin`` (not a browser) is accepted."""

    strict_ordering: ClassVar[bool] = False
    """Run operations one at a time in arrival order instead of concurrently."""

    max_worker_threads: ClassVar[int | None] = None
    """Size of the thread pool running sync resolvers (None: Python's default)."""

    middleware: ClassVar[Sequence[Any]] = ()
    """graphql-core middleware applied to every field of every operation."""

    share_results_under_middleware: ClassVar[bool] = False
    """With ``middleware``, subscribers of equal subscriptions share one result only when
    this is True: set it when the middleware does not depend on who gets the result."""

    context_free_scalars: ClassVar[Collection[str]] = ()
    """GraphQL names of custom scalars whose serializer depends on the value alone.
    Subscribers of equal subscriptions never share a result that reaches any other
    custom scalar: its serializer could read the connection (a time zone, a language
    from a context variable). GraphQL's and Strawberry's built-in scalars need no
    declaring."""

    max_message_size: ClassVar[int | None] = DEFAULT_MAX_MESSAGE_SIZE
    """Largest incoming frame (WebSocket) or request body (HTTP), in bytes, that is
    parsed at all."""

    document_cache_size: ClassVar[int] = DEFAULT_DOCUMENT_CACHE_SIZE
    """How many distinct query texts keep their parsed and validated document."""

    document_cache_tokens: ClassVar[int] = DEFAULT_DOCUMENT_CACHE_TOKENS
    """The most GraphQL tokens the cached documents may hold together (least recently
    used ones leave first); a parsed document costs a few hundred bytes per token."""

    max_query_tokens: ClassVar[int | None] = DEFAULT_MAX_QUERY_TOKENS
    """Largest document, in GraphQL tokens; parsing stops there (an operation error)."""

    max_query_depth: ClassVar[int | None] = DEFAULT_MAX_QUERY_DEPTH
    """Deepest field nesting of an operation (fragments followed): a validation error."""

    max_query_aliases: ClassVar[int | None] = DEFAULT_MAX_QUERY_ALIASES
    """Most aliased fields in a document: a validation error beyond it."""

    max_result_size: ClassVar[int | None] = DEFAULT_MAX_RESULT_SIZE
    """Largest result, in bytes of JSON as estimated while it is built: a result that
    would outgrow it is replaced by one error (None: no limit)."""

    max_operations_size_per_connection: ClassVar[int | None] = DEFAULT_MAX_OPERATIONS_SIZE
    """What the active operations of one connection may hold together, counted in
    GraphQL tokens of their documents plus JSON values of their variables; an operation
    that would pass it gets an error (None: no limit)."""

    introspection: ClassVar[bool] = True
    """False rejects introspection queries (``__schema``, ``__type``) at validation."""

    validation_rules: ClassVar[Sequence[type[ASTValidationRule]]] = ()
    """Extra graphql-core validation rules, run after the specified ones."""

    context_class: ClassVar[type[Context]] = Context
    """Class of ``info.context``; subclass :class:`Context` to add typed attributes."""

    notification_queue_limit: ClassVar[int | None] = DEFAULT_NOTIFICATION_QUEUE_LIMIT
    """Pending notifications kept per subscriber that does not keep up (oldest dropped);
    a typed subscription class may set its own."""

    max_groups_per_subscription: ClassVar[int | None] = DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION
    """Most groups one typed subscription's ``subscribe`` may return (None: no limit);
    beyond it the subscription is refused with an error. A typed subscription class may
    set its own."""

    confirm_subscriptions: ClassVar[bool] = False
    """Send ``subscription_confirmation_message`` as the first result of every
    subscription, once it is registered in all its groups. Without it, a client gets the
    confirmation of the subscriptions whose ``extensions`` ask for it
    (:data:`~channels_graphql_typed._protocol.messages.CONFIRM_SUBSCRIPTION_EXTENSION`)."""

    subscription_confirmation_message: ClassVar[dict[str, Any]] = {"data": None}
    """The confirmation's payload (sent in a ``next`` / ``data`` message)."""

    # --- hooks ----------------------------------------------------------------------------

    async def on_operation(self, id: str, payload: OperationPayload) -> None:
        """Called before each operation runs; raise to reject that operation."""

    # --- per connection ---------------------------------------------------------------------

    def _origin_allowed(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """Whether the request's ``Origin`` passes this class's origin policy."""
        allowed = self.allowed_origins
        if allowed is None:
            allowed = default_allowed_origins()
        return origin_allowed(request_origin(headers), allowed)

    def _new_context(self, scope: Mapping[str, Any], channel_name: str | None) -> Context:
        """The context of a new connection (an HTTP request is one). From now on, every
        record of the library's logger in this task, and in the tasks it starts, names
        the connection."""
        context = self.context_class(
            scope=scope, channel_name=channel_name or f"cgt.local!{uuid.uuid4().hex}"
        )
        log_where.connection_id.set(context.connection_id)
        return context

    # --- class-level resources --------------------------------------------------------------

    @classmethod
    def executor(cls) -> GraphqlExecutor:
        """The executor of every connection of this class, and of every server class with
        the same schema and execution settings (created on first use)."""
        return cls._server_settings().executor

    _built_settings: ClassVar[ServerSettings]
    """Set by :meth:`_server_settings` on each class itself (a subclass builds its own)."""

    @classmethod
    def _server_settings(cls) -> ServerSettings:
        # What every connection of this class runs its operations with: built on first
        # use, once per class.
        settings: ServerSettings | None = cls.__dict__.get("_built_settings")
        if settings is not None:
            return settings
        if not hasattr(cls, "schema"):
            raise ImproperlyConfigured(f"{cls.__qualname__}.schema is not set")
        executor = _shared_executor(
            cls.schema,
            middleware=cls.middleware,
            share_results_under_middleware=cls.share_results_under_middleware,
            context_free_scalars=cls.context_free_scalars,
            max_worker_threads=cls.max_worker_threads,
            document_cache_size=cls.document_cache_size,
            document_cache_tokens=cls.document_cache_tokens,
            max_query_tokens=cls.max_query_tokens,
            max_query_depth=cls.max_query_depth,
            max_query_aliases=cls.max_query_aliases,
            max_result_size=cls.max_result_size,
            introspection=cls.introspection,
            validation_rules=cls.validation_rules,
        )
        settings = ServerSettings(
            executor=executor,
            strict_ordering=cls.strict_ordering,
            max_operations_size_per_connection=cls.max_operations_size_per_connection,
            confirm_subscriptions=cls.confirm_subscriptions,
            subscription_confirmation_message=cast(
                "ExecutionResultPayload", cls.subscription_confirmation_message
            ),
            operation=OperationSettings(
                cls.notification_queue_limit, cls.max_groups_per_subscription
            ),
        )
        cls._built_settings = settings
        return settings


_executors: dict[tuple[object, ...], tuple[GraphqlExecutor, tuple[object, ...]]] = {}
"""The executors of the server classes, by what they were built from: one per distinct
set of settings, whatever the transport."""


def _shared_executor(schema: strawberry.Schema, **settings: Any) -> GraphqlExecutor:
    """The executor of ``schema`` with ``settings``, shared by every server class that
    declares the same (the WebSocket and the HTTP consumer of one :class:`GraphqlServer`
    subclass, typically): one document cache, one set of shared results and one thread
    pool for all of them, so that equal subscriptions share their results across
    transports.

    Settings are the same when equal, or for what cannot be hashed (a list of
    middleware), when they are the same object: a copy gets an executor of its own."""
    values = (schema, *settings.values())
    key = tuple(_key_of(value) for value in values)
    found = _executors.get(key)
    if found is None:
        executor = GraphqlExecutor(schema, **settings)
        # The values are kept with the executor, so that an id in the key is never
        # that of another object later.
        _executors[key] = (executor, values)
        return executor
    return found[0]


def _key_of(value: object) -> object:
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return (type(value), value)
