"""Typed subscription classes: ``class OnNewMessage(Subscription[ChatEvent])``.

A subclass of :class:`Subscription` is three things at once:

* a result type: its annotated attributes are the fields of a Strawberry object type
  of the same name (``dataclass_transform``: ``cls(text=...)`` is checked by mypy);
* the subscription's behaviour: ``subscribe`` (which groups), ``publish`` (what each
  subscriber gets for a broadcast, or ``SKIP``), ``unsubscribed`` (cleanup);
* the broadcast entry points: ``broadcast`` / ``broadcast_sync`` / ``unsubscribe`` /
  ``unsubscribe_sync``, typed by the class's payload type parameter.

``field()`` turns the class into a Strawberry subscription field whose GraphQL
arguments come from ``subscribe``'s keyword parameters after ``info``.

Lifecycle of one subscription (all inside the operation's task): graphql-core calls
the field's resolver, which runs ``subscribe``, joins the process's fan-out in all the
groups (the class's default group included) and only then returns the stream, so a
broadcast issued after the server has answered can never be missed. The stream then
yields one result per notification that ``publish`` does not skip. Closing the stream
(client ``complete``/``stop``, disconnect, server-side ``unsubscribe``) leaves the
groups and runs ``unsubscribed``.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import time
import types
import typing
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    Generic,
    Self,
    TypeAlias,
    TypeVar,
    dataclass_transform,
)

import strawberry
from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER
from graphql import GraphQLError
from strawberry.types.base import get_object_definition

from . import _log as log_where
from . import _observability as observing
from ._channel_layer import channel_layer
from ._context import Context
from ._contract import (
    DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION,
    INTERNAL_ERROR_MESSAGE,
    EventsMissed,
    PublishFailure,
    current_operation,
    delivered_event_id,
    mark_typed_subscription,
    publish_failures,
)
from ._exceptions import OperationRejected, PayloadSerializationError
from ._fanout import FanOut, get_fanout
from ._groups import class_namespace, group_name
from ._layer_messages import group_send, notify_message, unsubscribe_message
from ._log import logger
from ._notification_queue import (
    CATCH_UP,
    DEFAULT_NOTIFICATION_QUEUE_LIMIT,
    END,
    NotificationQueue,
    Registration,
)
from ._protocol.messages import RESUME_AFTER_EXTENSION
from ._replay import (
    IdentifiedNotification,
    MalformedEventId,
    Replay,
    ResumeState,
    format_event_id,
    history_for,
    parse_event_id,
    stream_key,
)
from ._serialization import (
    copy_payload,
    deserialize_payload,
    register_annotation,
    serialize_payload,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence


PayloadT = TypeVar("PayloadT")

Info = strawberry.Info[Context, Any]
"""The ``info`` that typed subscriptions (and resolvers) receive."""

GroupNames: TypeAlias = list[str] | tuple[str, ...] | set[str] | frozenset[str]
"""What ``subscribe`` returns: group names in a list, tuple or set. Not any
``Sequence[str]``: a ``str`` is one, and ``return chatroom`` would join one group per
character."""


CATCH_UP_ATTEMPTS: Final = 5
"""Reads of the history a catch-up tries (waiting for the layer between two) before it
ends the subscription with an error."""


class Skip(enum.Enum):
    """Type of :data:`SKIP`."""

    SKIP = "SKIP"


SKIP: Final = Skip.SKIP
"""Returned by ``publish``: this subscriber gets nothing for this broadcast."""


@dataclass_transform(kw_only_default=True)
class Subscription(Generic[PayloadT]):
    """Base of typed subscriptions; ``PayloadT`` is what ``broadcast`` carries.

    Class attributes:

    * ``notification_queue_limit``: bound of each subscriber's queue of pending
      notifications (None: the consumer's ``notification_queue_limit``); on overflow
      the oldest is dropped and a warning logged.
    * ``max_groups_per_subscription``: most groups ``subscribe`` may return (None: the
      consumer's); beyond it the client gets an error and nothing is joined.
    * ``channel_layer_alias``: the channel layer that carries broadcasts.
    * ``replay``: a :class:`Replay` makes the class resumable.
    """

    notification_queue_limit: ClassVar[int | None] = None
    max_groups_per_subscription: ClassVar[int | None] = None
    """Most groups ``subscribe`` may return for one subscription (None: the consumer's
    ``max_groups_per_subscription``); beyond it the subscription is refused."""
    channel_layer_alias: ClassVar[str] = DEFAULT_CHANNEL_LAYER
    replay: ClassVar[Replay | None] = None
    """Makes the class resumable (``replay = Replay(events=1000)``): each broadcast gets
    an event id and is kept in a bounded history, from which a client that reconnects
    gets what it missed (see "Reconnects and resumable subscriptions"). None: not
    resumable, and nothing of it is paid."""
    payload_types: ClassVar[Sequence[type]] = ()
    """Classes that may travel inside this class's payloads although its type parameter
    does not name them (a payload typed ``Any``, subclasses of a declared type): see
    :func:`~.serialization.register_payload_type`."""
    group_namespace: ClassVar[str]
    """Prefix of this class's Channels groups (derived from its module and name)."""
    _hook_names: ClassVar[tuple[str, ...]] = ("subscribe", "publish", "unsubscribed")
    _cgt_field_names: ClassVar[tuple[str, ...]] = ()
    """The Python names of the class's result fields (set when the class is defined)."""
    """The methods a subclass may override, each an ``async`` class method."""
    _payload_class: ClassVar[type | tuple[type, ...] | None] = None
    """What ``broadcast`` checks its payload against (None: nothing to check)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_hooks(cls)
        if "group_namespace" not in cls.__dict__:
            cls.group_namespace = class_namespace(cls.__module__, cls.__qualname__)
        if cls.replay is not None and not isinstance(cls.replay, Replay):
            raise TypeError(
                f"{cls.__qualname__}.replay must be a Replay (replay = Replay(events=1000)) "
                f"or None, not {type(cls.replay).__name__}"
            )
        # A class that still has type parameters (``class Base(Subscription[Event[T]])``)
        # is a base for other subscriptions, not a GraphQL type of its own.
        if not getattr(cls, "__parameters__", ()):
            strawberry.type(cls, description=cls.__dict__.get("__doc__"))
            fields = get_object_definition(cls, strict=True).fields
            cls._cgt_field_names = tuple(field.python_name for field in fields)
            if not fields:
                raise TypeError(
                    f"{cls.__qualname__} has no result fields: annotate the fields of its "
                    f"result type in the class body, e.g. `text: str` (a value without an "
                    "annotation is not a field)"
                )
            _register_payload_types(cls)

    # --- what users override ----------------------------------------------------------------

    @classmethod
    async def subscribe(cls, info: Info, *args: Any, **kwargs: Any) -> GroupNames:
        """The groups to join, besides the class's default group (a list, tuple or set of
        names). Its keyword parameters after ``info`` are the GraphQL arguments of the
        subscription."""
        return ()

    @classmethod
    async def publish(cls, payload: PayloadT, info: Info, *args: Any, **kwargs: Any) -> Self | Skip:
        """What this subscriber gets for a broadcast ``payload``, or ``SKIP``.

        By default: the payload itself when it is an instance of this class, else an
        instance built from the payload's attributes of the same names as the fields.
        """
        if isinstance(payload, cls):
            return payload
        values = {
            name: (
                payload[name]
                if isinstance(payload, collections.abc.Mapping)
                else getattr(payload, name)
            )
            for name in cls._cgt_field_names
        }
        return cls(**values)

    @classmethod
    async def unsubscribed(cls, info: Info, *args: Any, **kwargs: Any) -> None:
        """Called when the subscription ends, whatever ended it."""

    def _cgt_event_key(self) -> tuple[object, ...]:
        # The result sharing contract (TypedSubscriptionResult): every field's value.
        fields: dict[str, object] = getattr(type(self), "__dataclass_fields__")  # noqa: B009
        return tuple(getattr(self, name) for name in fields)

    @classmethod
    def _cgt_payload_reaches_user_code(cls) -> bool:
        """Whether code of the user's receives a broadcast payload: a ``publish`` of the
        class's own, or resolvers of its fields (which receive the instance that the
        default ``publish`` builds from the payload, or the payload itself). Each
        subscriber of such a class gets a copy of its own; the others share one."""
        return _overrides(cls, "publish", Subscription) or _has_resolvers(cls)

    # --- broadcast entry points ---------------------------------------------------------

    @classmethod
    async def broadcast(cls, *, payload: PayloadT, group: str | None = None) -> None:
        """Notify the subscribers of ``group`` (all subscribers of the class if None).

        The payload is checked against the class's payload type when that is a class
        (``TypeError`` naming both), serialized here (``PayloadSerializationError``, a
        ``TypeError``, if it cannot cross the channel layer) and sent once per process
        that has subscribers in the group.
        """
        cls._check_payload(payload)
        await cls._broadcast_serialized(serialize_payload(payload), group)

    @classmethod
    def _check_payload(cls, payload: object) -> None:
        expected = cls._payload_class
        if expected is not None and not isinstance(payload, expected):
            raise TypeError(
                f"{cls.__qualname__}.broadcast: the payload must be {_describe(expected)} "
                f"(the type parameter of {cls.__qualname__}), not {type(payload).__qualname__}"
            )

    @classmethod
    async def _broadcast_serialized(cls, data: bytes, group: str | None) -> None:
        """Send a payload that :func:`serialize_payload` serialized already."""
        name = group_name(cls.group_namespace, group)
        layer = channel_layer(cls.channel_layer_alias)
        event_id = None
        if cls.replay is not None:
            # Kept before it is sent, in this task: a subscriber that resumes reads the
            # history after joining, so it finds the broadcast there or gets it live.
            event_id = await history_for(layer).append(
                stream_key(cls.group_namespace), cls.replay, name, data
            )
        message = notify_message(name, data, time.time(), event_id)
        await group_send(layer, name, message)

    @classmethod
    def broadcast_sync(cls, *, payload: PayloadT, group: str | None = None) -> None:
        """:meth:`broadcast` from synchronous code (a sync view, a command, a task)."""
        cls._check_payload(payload)
        async_to_sync(cls.broadcast)(payload=payload, group=group)

    @classmethod
    async def unsubscribe(cls, *, group: str | None = None) -> None:
        """End every subscription of this class in ``group`` (all of them if None): each
        client gets ``complete`` once its pending notifications are delivered."""
        name = group_name(cls.group_namespace, group)
        await group_send(channel_layer(cls.channel_layer_alias), name, unsubscribe_message(name))

    @classmethod
    def unsubscribe_sync(cls, *, group: str | None = None) -> None:
        """:meth:`unsubscribe` from synchronous code."""
        async_to_sync(cls.unsubscribe)(group=group)

    # --- schema ---------------------------------------------------------------------------

    @classmethod
    def field(
        cls,
        *,
        name: str | None = None,
        description: str | None = None,
        deprecation_reason: str | None = None,
    ) -> Any:
        """A Strawberry subscription field to mount in the schema's Subscription type."""
        return strawberry.subscription(
            _resolver_for(cls),
            name=name,
            description=description if description is not None else cls.__dict__.get("__doc__"),
            deprecation_reason=deprecation_reason,
            graphql_type=cls,
        )


def _check_hooks(cls: type[Subscription[Any]]) -> None:
    """Mistakes in the hooks' definitions, refused when the class is defined (rather than
    at the first subscription or notification), saying what to write."""
    for name in cls._hook_names:
        attribute = cls.__dict__.get(name)
        if attribute is None:
            continue
        if not isinstance(attribute, classmethod):
            raise TypeError(
                f"{cls.__qualname__}.{name} must be a class method: put @classmethod above "
                f"`async def {name}(cls, info, ...)`"
            )
        function = attribute.__func__
        if inspect.isasyncgenfunction(function):
            raise TypeError(
                f"{cls.__qualname__}.{name} must return its result, not yield: "
                f"`async def {name}(cls, ...)` with `return`"
            )
        if not inspect.iscoroutinefunction(function):
            raise TypeError(
                f"{cls.__qualname__}.{name} must be async: write `async def {name}(cls, ...)` "
                "(a sync function that needs the ORM can await its async API, or "
                "asgiref's sync_to_async)"
            )


def _runtime_class(annotation: object) -> type | tuple[type, ...] | None:
    """What ``isinstance`` can check of a payload type parameter: the class, the class of
    a generic alias (``dict`` of ``dict[str, int]``), the classes of a union; None when
    the annotation is not made of classes (``Any``, a type variable, ``Literal``...)."""
    if annotation is Any:
        return None
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        if typing.is_typeddict(annotation):
            return dict
        if getattr(annotation, "_is_protocol", False):
            return None  # isinstance() refuses protocols that are not runtime-checkable
        # The numeric promotions that type checkers apply (PEP 484).
        if annotation is float:
            return (float, int)
        if annotation is complex:
            return (complex, float, int)
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members: list[type] = []
        for argument in typing.get_args(annotation):
            if argument is type(None):
                members.append(type(None))
                continue
            checked = _runtime_class(argument)
            if checked is None:
                return None
            members.extend(checked if isinstance(checked, tuple) else (checked,))
        return tuple(members)
    if isinstance(origin, type) and not getattr(origin, "_is_protocol", False):
        return origin
    return None


def _describe(expected: type | tuple[type, ...]) -> str:
    if isinstance(expected, tuple):
        return " or ".join(kind.__qualname__ for kind in expected)
    return f"a {expected.__qualname__}"


def _overrides(cls: type, name: str, base: type) -> bool:
    """Whether ``cls`` has a method ``name`` other than ``base``'s."""
    # getattr: a hook redefined as something else than a classmethod is the user's too.
    own = getattr(getattr(cls, name), "__func__", None)
    return own is not vars(base)[name].__func__


def _has_resolvers(cls: type) -> bool:
    definition = getattr(cls, "__strawberry_definition__", None)
    return definition is not None and any(
        field.base_resolver is not None for field in definition.fields
    )


def _register_payload_types(cls: type[Subscription[Any]]) -> None:
    """Let the decoder materialise what this class's payloads can hold, and only that."""
    for annotation, substitutions in _payload_annotations(cls, {}):
        register_annotation(annotation, substitutions)
        cls._payload_class = _runtime_class(substitutions.get(annotation, annotation))
    register_annotation(cls)
    for extra in cls.payload_types:
        register_annotation(extra)


def _payload_annotations(
    cls: type, substitutions: dict[Any, Any]
) -> Iterator[tuple[object, dict[Any, Any]]]:
    """The payload type parameter(s) given to :class:`Subscription` along ``cls``'s
    bases, with the type variables of the generic bases in between substituted
    (``class Base(Subscription[Event[T]])``, ``class Concrete(Base[Message])``)."""
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = typing.get_origin(base)
        if not (isinstance(origin, type) and issubclass(origin, Subscription)):
            continue
        arguments = tuple(
            substitutions.get(argument, argument) for argument in typing.get_args(base)
        )
        if origin is Subscription:
            yield arguments[0], substitutions
            continue
        parameters = getattr(origin, "__parameters__", ())
        yield from _payload_annotations(origin, dict(zip(parameters, arguments, strict=False)))


def _argument_parameters(cls: type[Subscription[Any]]) -> list[inspect.Parameter]:
    """The GraphQL arguments: ``subscribe``'s parameters after ``info``."""
    parameters = list(inspect.signature(cls.subscribe).parameters.values())[1:]
    arguments = []
    for parameter in parameters:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if parameter.annotation is inspect.Parameter.empty:
            raise TypeError(
                f"{cls.__qualname__}.subscribe: parameter {parameter.name!r} needs a type "
                "annotation (it becomes a GraphQL argument)"
            )
        arguments.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    return arguments


def _resolver_for(cls: type[Subscription[Any]]) -> Any:
    arguments = _argument_parameters(cls)

    async def resolver(info: Info, **kwargs: Any) -> AsyncIterator[Any]:
        return await _open_stream(cls, info, kwargs)

    info_parameter = inspect.Parameter(
        "info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=strawberry.Info
    )
    resolver.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [info_parameter, *arguments]
    )
    # Strawberry resolves string annotations in the resolver's module: the user's one.
    resolver.__module__ = cls.__module__
    # Tells the executor that this field's results are instances of ``cls``.
    mark_typed_subscription(resolver, cls)
    resolver.__name__ = resolver.__qualname__ = f"{cls.__name__}_resolver"
    resolver.__annotations__ = {"info": strawberry.Info} | {
        parameter.name: parameter.annotation for parameter in arguments
    }
    return resolver


def _validated_groups(cls: type[Subscription[Any]], groups: object, limit: int | None) -> set[str]:
    if isinstance(groups, str) or not isinstance(groups, collections.abc.Iterable):
        raise TypeError(
            f"{cls.__qualname__}.subscribe must return a sequence of group names, "
            f"not {type(groups).__name__}"
        )
    names = set()
    for group in groups:
        if not isinstance(group, str):
            raise TypeError(
                f"{cls.__qualname__}.subscribe returned a group that is not a str: {group!r}"
            )
        names.add(group_name(cls.group_namespace, group))
        if limit is not None and len(names) > limit:
            # Refused before anything is joined (a subscription's groups may come from
            # its arguments, that is from the client).
            raise OperationRejected(
                f"Too many groups: {cls.__qualname__} may join at most {limit} "
                "(max_groups_per_subscription)"
            )
    names.add(group_name(cls.group_namespace, None))
    return names


async def _open_stream(
    cls: type[Subscription[Any]], info: Info, arguments: dict[str, Any]
) -> SubscriptionStream[Any]:
    settings = current_operation.get()
    log_where.subscription_class.set(cls.__qualname__)
    limit = cls.notification_queue_limit
    if limit is None:
        limit = (
            settings.notification_queue_limit
            if settings is not None
            else DEFAULT_NOTIFICATION_QUEUE_LIMIT
        )
    max_groups = cls.max_groups_per_subscription
    if max_groups is None:
        max_groups = (
            settings.max_groups_per_subscription
            if settings is not None
            else DEFAULT_MAX_GROUPS_PER_SUBSCRIPTION
        )
    resume_after = _resume_after(cls, info)
    groups = _validated_groups(cls, await cls.subscribe(info, **arguments), max_groups)
    fanout = get_fanout(cls.channel_layer_alias)
    registration = Registration(
        NotificationQueue(limit, f"{cls.__qualname__}"), resumable=cls.replay is not None
    )
    resume: ResumeState | None = None
    start: tuple[int, int] | None = resume_after
    try:
        # In effect when this returns (on every layer, see FanOut._confirm_joined): a
        # resumable subscription reads the history only after it, so whatever the
        # history does not hold yet comes live.
        await fanout.join(registration, groups)
        if resume_after is not None and cls.replay is not None:
            resume = ResumeState(
                history_for(fanout.layer),
                stream_key(cls.group_namespace),
                resume_after,
                groups,
            )
            await resume.begin()
        elif cls.replay is not None:
            # Where a catch-up after a failure of the layer starts if none of its events
            # came before: everything after this came live (see the join above).
            start = await history_for(fanout.layer).last(stream_key(cls.group_namespace))
    except BaseException as error:
        # Cancelled (the client completed during subscribe) or the layer failed: undo
        # whatever part of the registration happened.
        await fanout.leave(registration)
        if not isinstance(error, Exception):
            raise
        # The layer's failure is the operators' business (logged once per episode), not
        # the client's: its text may name the layer's address.
        fanout.health.report(error)
        raise GraphQLError(INTERNAL_ERROR_MESSAGE) from error
    observing.observer.subscription_opened(cls.__qualname__)
    stream = SubscriptionStream(cls, info, arguments, fanout, registration)
    if start is not None:
        stream._last_event_id = format_event_id(start)
    if resume_after is not None:
        stream._resume = resume
        if resume is None:
            stream._missed = (
                f"{cls.__qualname__} is not resumable: events broadcast before this "
                "subscription started were not kept"
            )
        elif resume.missed:
            stream._missed = (
                f"Events may have been missed: {format_event_id(resume_after)} is no longer "
                f"in the history of {cls.__qualname__}; what it still holds follows"
            )
    return stream


def _resume_after(cls: type[Subscription[Any]], info: Info) -> tuple[int, int] | None:
    """The event id the client resumes after (``extensions``), checked."""
    extensions = info.input_extensions
    if not isinstance(extensions, dict) or RESUME_AFTER_EXTENSION not in extensions:
        return None
    value = extensions[RESUME_AFTER_EXTENSION]
    if value is None:
        return None
    try:
        return parse_event_id(value)
    except MalformedEventId as error:
        # Refused before anything is joined.
        raise OperationRejected(
            f"Malformed {RESUME_AFTER_EXTENSION} in the subscription's extensions: {error}"
        ) from None


class SubscriptionStream(Generic[PayloadT]):
    """The source stream of one typed subscription: one item per published notification."""

    def __init__(
        self,
        cls: type[Subscription[PayloadT]],
        info: Info,
        arguments: dict[str, Any],
        fanout: FanOut,
        registration: Registration,
    ) -> None:
        self._cls = cls
        self._info = info
        self._arguments = arguments
        self._fanout = fanout
        self._registration = registration
        self._closed = False
        self._resume: ResumeState | None = None
        """While resuming: the history still to replay, and what it delivered."""
        self._missed: str | None = None
        """The EVENTS_MISSED signal still to send, before anything else."""
        self._last_event_id: str | None = None
        """A resumable subscription's newest event taken (delivered, skipped or failed),
        or where it started: a catch-up after a failure of the channel layer goes on from
        there (None: from the start of the history, empty when it joined)."""
        # The fan-out decodes a broadcast once per process and hands the same object to
        # every subscriber: user code gets a copy, so that mutating it in place cannot
        # change what another subscriber gets.
        self._copy_payloads = cls._cgt_payload_reaches_user_code()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Subscription[PayloadT] | PublishFailure | EventsMissed:
        queue = self._registration.queue
        while not self._closed:
            if self._missed is not None:
                message, self._missed = self._missed, None
                return EventsMissed(message)
            resume = self._resume
            event_id: str | None = None
            payload: Any
            if resume is not None and not resume.done:
                try:
                    entry = await resume.next_replayed()
                except Exception as failure:
                    # The history failed (Redis unreachable): the operators' business,
                    # logged; the client gets an error and the end of its stream.
                    logger.error(
                        "Reading the replay history of %s failed: %r",
                        self._cls.__qualname__,
                        failure,
                    )
                    raise GraphQLError(INTERNAL_ERROR_MESSAGE) from failure
                if entry is None:
                    continue  # replayed all: live events from here on
                try:
                    payload = deserialize_payload(entry.data)
                except PayloadSerializationError as refused:
                    logger.warning(
                        "Dropped an entry of %s's replay history: %s",
                        self._cls.__qualname__,
                        refused,
                    )
                    continue
                event_id = format_event_id(entry.id)
            else:
                payload = await queue.get()
                if payload is END:
                    await self.aclose()
                    break
                if isinstance(payload, IdentifiedNotification):
                    identified: IdentifiedNotification = payload
                    payload, event_id = identified.payload, identified.event_id
                    if resume is not None and resume.is_replayed(event_id):
                        continue  # delivered from the history already
                elif payload is CATCH_UP:
                    await self._catch_up()
                    continue
            if observing.observer.enabled:
                # What the result of this notification is delivered for (see
                # _observability.delivering).
                observing.delivering.set((queue.sent_at, time.time_ns()))
            if self._copy_payloads:
                payload = copy_payload(payload)
            if event_id is not None and self._cls.replay is not None:
                # For the executor: this event's result carries its id (see _contract).
                delivered_event_id.set(event_id)
                self._last_event_id = event_id
            try:
                value = await self._cls.publish(payload, self._info, **self._arguments)
            except Exception as exc:
                # Reported once where the notification's result is made, and once for
                # all subscribers that fail the same way at about the same time.
                publish_failures.failed(self._cls.__qualname__, exc)
                return PublishFailure(exc)
            if value is SKIP:
                observing.observer.notification_skipped(self._cls.__qualname__)
                delivered_event_id.set(None)
                continue
            if not isinstance(value, self._cls):
                error = TypeError(
                    f"{self._cls.__qualname__}.publish returned {type(value).__name__}; "
                    f"expected {self._cls.__qualname__} or SKIP"
                )
                publish_failures.failed(self._cls.__qualname__, error)
                return PublishFailure(error)
            return value
        raise StopAsyncIteration

    async def _catch_up(self) -> None:
        """After the fan-out joined the groups again following a failure of the channel
        layer: replay what the history holds after the last event taken, as a resume
        does (the groups are joined, so whatever the history does not hold yet comes
        live, and live events already replayed are dropped)."""
        last = self._last_event_id
        resume = ResumeState(
            history_for(self._fanout.layer),
            stream_key(self._cls.group_namespace),
            None if last is None else parse_event_id(last),
            set(self._registration.groups),
        )
        for attempt in range(1, CATCH_UP_ATTEMPTS + 1):
            try:
                await resume.begin()
            except Exception as error:
                if attempt == CATCH_UP_ATTEMPTS:
                    # As when a resume's read fails: logged, and the end of the stream.
                    logger.error(
                        "Reading the replay history of %s failed: %r",
                        self._cls.__qualname__,
                        error,
                    )
                    raise GraphQLError(INTERNAL_ERROR_MESSAGE) from error
                # The layer failing again: waited out like the fan-out's own receives.
                self._fanout.health.report(error)
                await self._fanout.health.wait_until_reachable()
                continue
            break
        self._resume = resume
        if resume.missed:
            self._missed = (
                f"Events may have been missed while the channel layer failed: {last} is no "
                f"longer in the history of {self._cls.__qualname__}; what it still holds "
                "follows"
            )

    async def aclose(self) -> None:
        """Leave the groups and run ``unsubscribed`` (once)."""
        if self._closed:
            return
        self._closed = True
        observing.observer.subscription_closed(self._cls.__qualname__)
        try:
            await self._fanout.leave(self._registration)
        finally:
            try:
                await self._cls.unsubscribed(self._info, **self._arguments)
            except Exception:
                logger.exception("%s.unsubscribed raised", self._cls.__qualname__)
