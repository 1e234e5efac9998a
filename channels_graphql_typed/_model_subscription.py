"""Model subscriptions: ``class OnMessageChanged(ModelSubscription[Message])``.

A :class:`ModelSubscription` is a typed :class:`~.subscription.Subscription` whose
payload is a :class:`ModelEvent` (an action and a model instance) and whose result type
has two fields: ``action`` and ``node``, an object type with the model fields named in
the class's ``Meta.fields``. Mounted with ``field()``, it serves::

    onMessageChanged(actions: [ModelAction!] = [CREATED, UPDATED, DELETED], id: ID):
        OnMessageChanged!

Theory of operation
-------------------
Declaring the class connects receivers to the model's ``post_save`` and
``post_delete`` signals. A receiver runs in the thread that changed the row (Django
runs the ORM, its async API included, in sync threads). It serializes the instance at
once -- its field values, read without a query, so a deleted row keeps its primary key
and last values -- and hands the bytes to ``transaction.on_commit``: a rolled-back change
notifies nobody, and a committed one is sent when the transaction commits (at once in
autocommit mode), through the channel layer, so a change made in any process (a
management command, a worker) reaches the subscribers of every server process.

Group layout: an event is sent to two groups of the class, ``<action>`` and
``<action>.<primary key>``. A subscription without ``id`` joins ``<action>`` for each
action it asked for; one with ``id`` joins ``<action>.<id>`` instead. So a change wakes
only the subscribers of that action and, when they gave one, that row: the cost of a
change does not grow with the subscribers of other rows or actions. Each process
receives at most two channel-layer messages per change, and every subscriber is in
exactly one of the two groups.

``bulk_create``, ``QuerySet.update()``, ``bulk_update`` and raw SQL send no signals;
:meth:`ModelSubscription.notify` and :meth:`ModelSubscription.notify_sync` notify
explicitly. ``QuerySet.delete()`` does send ``post_delete`` for every row (Django loads
the rows to do so when receivers are connected).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import functools
import inspect
import typing
import uuid
from collections.abc import Sequence  # noqa: TC003 (subscribe's annotations are evaluated)
from typing import Any, ClassVar, Final, Generic, Self, TypeVar

import strawberry
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.db.models.signals import post_delete, post_save
from strawberry.scalars import JSON

from ._checks import record_model_subscription
from ._log import logger
from ._serialization import serialize_payload
from ._subscription import SKIP, Info, Skip, Subscription, _has_resolvers, _overrides

ModelT = TypeVar("ModelT", bound=models.Model)


@strawberry.enum(description="What happened to a row.")
class ModelAction(enum.Enum):
    """What happened to a row: the ``action`` of a :class:`ModelEvent`."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


ALL_ACTIONS: Final = (ModelAction.CREATED, ModelAction.UPDATED, ModelAction.DELETED)
"""The default of the ``actions`` argument."""


@dataclasses.dataclass(frozen=True)
class ModelEvent(Generic[ModelT]):
    """The payload of a model subscription: ``instance`` was created, updated or
    deleted. For a deletion, ``instance`` holds the values the row had."""

    action: ModelAction
    instance: ModelT


# Django field classes and the Python types Strawberry turns into GraphQL scalars;
# the first match wins (DateTimeField is a DateField). Primary keys and foreign keys
# are IDs whatever their type.
_FIELD_TYPES: Final[Sequence[tuple[type[models.Field[Any, Any]], object]]] = (
    (models.BooleanField, bool),
    (models.IntegerField, int),
    (models.FloatField, float),
    (models.DecimalField, decimal.Decimal),
    (models.DateTimeField, datetime.datetime),
    (models.DateField, datetime.date),
    (models.TimeField, datetime.time),
    (models.UUIDField, uuid.UUID),
    (models.JSONField, JSON),
    (models.CharField, str),
    (models.TextField, str),
    (models.GenericIPAddressField, str),
    (models.FilePathField, str),
)


class ModelSubscription(Subscription[ModelEvent[ModelT]]):
    """Base of model subscriptions: live create/update/delete events of a Django model.

    Declare the model as the type parameter and the exposed fields in ``Meta``::

        class OnMessageChanged(cgt.ModelSubscription[Message]):
            \"\"\"Changes to chat messages.\"\"\"

            class Meta:
                fields = ["id", "chatroom", "text", "sender"]

    The result has ``action`` and ``node``: an object type named after the class
    (``OnMessageChangedNode``) with the listed fields, typed from the model fields
    (nullable when the model field is). The primary key and foreign keys are ``ID``s;
    a foreign key ``sender`` is exposed as ``senderId``, the related row's primary key,
    so that a notification never queries the database. Many-to-many fields, files,
    durations and binary fields cannot be exposed.

    Hooks, both optional: :meth:`authorize_subscription` (who may subscribe) and
    :meth:`authorize_delivery` (which events a subscriber gets).
    """

    action: ModelAction
    node: ModelT
    model: ClassVar[type[models.Model]]
    """The model, from the class's type parameter."""
    _node_attributes: ClassVar[tuple[str, ...]]
    _hook_names = (*Subscription._hook_names, "authorize_subscription", "authorize_delivery")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        model = _declared_model(cls)
        if model is not None:
            cls.model = model
            own = dict(inspect.get_annotations(cls))
            for reserved in ("action", "node"):
                if reserved in own:
                    raise TypeError(
                        f"{cls.__qualname__}: {reserved!r} is given by ModelSubscription; "
                        "do not annotate it"
                    )
            fields = _exposed_fields(cls, model)
            cls._node_attributes = tuple(field.attname for field in fields)
            cls.__annotations__ = {
                "action": ModelAction,
                "node": _node_type(cls, model, fields),
                **own,
            }
        super().__init_subclass__(**kwargs)
        if model is not None:
            _connect_signals(cls, model)
            record_model_subscription(cls)

    def _cgt_event_key(self) -> tuple[object, ...]:
        # The result sharing contract (TypedSubscriptionResult): every field of the
        # result -- the action, a subclass's own fields (set per subscriber by a publish
        # of its own, say) -- with the node's exposed values standing for the node (the
        # instance itself would not do: Django makes it equal to every other instance of
        # its row, so two changes of one row would share a result).
        node = self.node.__dict__
        return (
            *(getattr(self, name) for name in self.__dataclass_fields__ if name != "node"),
            *(node.get(name) for name in self._node_attributes),
        )

    @classmethod
    def _cgt_payload_reaches_user_code(cls) -> bool:
        # authorize_delivery receives the payload too.
        return (
            _overrides(cls, "publish", ModelSubscription)
            or _overrides(cls, "authorize_delivery", ModelSubscription)
            or _has_resolvers(cls)
        )

    # --- what users override ----------------------------------------------------------

    @classmethod
    async def authorize_subscription(cls, info: Info) -> bool:
        """Whether this client may subscribe (default: anyone). ``False`` refuses the
        subscription with a ``PermissionError``; raise your own exception for another
        message. Runs before anything is registered."""
        return True

    @classmethod
    async def authorize_delivery(cls, event: ModelEvent[ModelT], info: Info) -> bool:
        """Whether this subscriber gets ``event`` (default: yes). Runs once per event and
        subscriber, with the subscriber's ``info.context`` (``user``, ...): for example,
        only rows the user may see. ``event.instance`` holds the values that crossed the
        channel layer; this is async code, so a query needs Django's async ORM API."""
        return True

    # --- the Subscription protocol ----------------------------------------------------

    @classmethod
    async def subscribe(
        cls,
        info: Info,
        actions: Sequence[ModelAction] | None = ALL_ACTIONS,
        id: strawberry.ID | None = None,
    ) -> list[str]:
        """The groups of the actions asked for, of one row when ``id`` is given."""
        if not await cls.authorize_subscription(info):
            raise PermissionError(f"Not authorized to subscribe to {cls.__name__}")
        wanted = ModelAction if actions is None else actions
        if id is None:
            return sorted({action.value for action in wanted})
        key = cls._primary_key(id)
        return sorted({f"{action.value}.{key}" for action in wanted})

    @classmethod
    async def publish(
        cls,
        payload: ModelEvent[ModelT],
        info: Info,
        actions: Sequence[ModelAction] | None = ALL_ACTIONS,
        id: strawberry.ID | None = None,
    ) -> Self | Skip:
        """The result for one subscriber, after :meth:`authorize_delivery`."""
        # The groups select the events already; checking the arguments again keeps them
        # true for an event broadcast by hand to the class's default group.
        if actions is not None and payload.action not in actions:
            return SKIP
        if id is not None and cls._primary_key(payload.instance.pk) != cls._primary_key(id):
            return SKIP
        if not await cls.authorize_delivery(payload, info):
            return SKIP
        return cls(action=payload.action, node=payload.instance)

    # --- notifications ----------------------------------------------------------------

    @classmethod
    async def notify(cls, instance: ModelT, action: ModelAction) -> None:
        """Notify the subscribers of ``action`` on ``instance`` now, from async code.

        For the changes that send no signal: ``bulk_create``, ``QuerySet.update()``,
        ``bulk_update``, raw SQL. The instance is serialized here (its field values, no
        query); errors raise here.
        """
        data, groups = cls._serialized_event(instance, action)
        await cls._send(data, groups)

    @classmethod
    def notify_sync(cls, instance: ModelT, action: ModelAction) -> None:
        """:meth:`notify` from sync code, like the automatic notifications: the instance
        is serialized now, and sent when the current transaction of its database commits
        (at once outside a transaction; never if it rolls back). On an event loop's thread
        it raises ``RuntimeError``: await :meth:`notify` there."""
        if _loop_in_this_thread() is not None:
            # Like the sync ORM, on_commit may not run on an event loop's thread.
            raise RuntimeError(
                f"{cls.__qualname__}.notify_sync is for sync code; from async code, "
                f"await {cls.__qualname__}.notify(...)"
            )
        data, groups = cls._serialized_event(instance, action)
        transaction.on_commit(
            functools.partial(cls._send_after_commit, data, groups),
            using=instance._state.db or DEFAULT_DB_ALIAS,
        )

    # --- internals --------------------------------------------------------------------

    @classmethod
    def _primary_key(cls, value: object) -> str:
        """The canonical text of a primary key value (``"7"`` for ``7`` and ``"07"``)."""
        field = cls.model._meta.pk
        assert field is not None
        try:
            return str(field.to_python(value))
        except ValidationError as exc:
            raise ValueError(
                f"Invalid id {value!r} for {cls.model.__name__}: {'; '.join(exc.messages)}"
            ) from exc

    @classmethod
    def _serialized_event(
        cls, instance: models.Model, action: ModelAction
    ) -> tuple[bytes, list[str]]:
        if not isinstance(instance, cls.model):
            raise TypeError(
                f"{cls.__qualname__} notifies {cls.model.__name__} changes, "
                f"not {type(instance).__name__}"
            )
        if instance.pk is None:
            raise ValueError(
                f"{cls.__qualname__}: cannot notify a {type(instance).__name__} without a "
                "primary key"
            )
        data = serialize_payload(ModelEvent(action, instance))
        return data, [action.value, f"{action.value}.{cls._primary_key(instance.pk)}"]

    @classmethod
    async def _send(cls, data: bytes, groups: list[str]) -> None:
        # One after the other: a subscriber is in one of the groups, and the events of
        # one row reach it in the order they were sent.
        for group in groups:
            await cls._broadcast_serialized(data, group)

    @classmethod
    def _send_after_commit(cls, data: bytes, groups: list[str]) -> None:
        # The change is committed: a failure to notify is logged, not raised into the
        # code that made the change.
        loop = _loop_in_this_thread()
        if loop is None:
            # A sync thread (a view, a command, the thread of Django's async ORM): wait
            # until the channel layer has the message, so it is sent when the ORM call
            # or the atomic block returns.
            try:
                async_to_sync(cls._send)(data, groups)
            except Exception:
                logger.exception("%s: a change notification was lost", cls.__qualname__)
            return
        # An event loop's own thread, where Django runs the ORM only when told to
        # (DJANGO_ALLOW_ASYNC_UNSAFE): send in a task rather than block the loop.
        task = loop.create_task(cls._send(data, groups))
        _sending.add(task)
        task.add_done_callback(functools.partial(_sent, cls.__qualname__))

    @classmethod
    def _on_change(cls, instance: models.Model, action: ModelAction, using: str) -> None:
        try:
            data, groups = cls._serialized_event(instance, action)
        except Exception:
            # Raising here would fail the user's save() for the sake of a notification.
            logger.exception(
                "%s: cannot notify that %s %s was %s",
                cls.__qualname__,
                type(instance).__name__,
                instance.pk,
                action.value,
            )
            return
        transaction.on_commit(functools.partial(cls._send_after_commit, data, groups), using=using)


# Strawberry resolves the annotations of ``subscribe`` (the GraphQL arguments) in the
# module of the subscription class, which need not import what they name: evaluate them
# here, once, for every subclass that inherits this ``subscribe``.
_subscribe = vars(ModelSubscription)["subscribe"].__func__
_subscribe.__annotations__ = typing.get_type_hints(_subscribe)

_sending: set[asyncio.Task[None]] = set()


def _loop_in_this_thread() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _sent(name: str, task: asyncio.Task[None]) -> None:
    _sending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s: a change notification was lost", name, exc_info=task.exception())


def _declared_model(cls: type[ModelSubscription[Any]]) -> type[models.Model] | None:
    """The model of a concrete model subscription; None for a class that is still
    generic (a base of model subscriptions)."""
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = typing.get_origin(base)
        if not (isinstance(origin, type) and issubclass(origin, ModelSubscription)):
            continue
        (argument,) = typing.get_args(base)
        if isinstance(argument, TypeVar):
            return None
        if not (isinstance(argument, type) and issubclass(argument, models.Model)):
            raise TypeError(
                f"{cls.__qualname__}: ModelSubscription[...] takes a Django model class, "
                f"not {argument!r}"
            )
        if argument._meta.abstract:
            raise TypeError(f"{cls.__qualname__}: {argument.__name__} is an abstract model")
        return argument
    inherited: type[models.Model] | None = getattr(cls, "model", None)
    if inherited is None:
        raise TypeError(
            f"{cls.__qualname__}: name the model as the type parameter: "
            f"class {cls.__name__}(ModelSubscription[YourModel])"
        )
    return inherited


def _exposed_fields(
    cls: type[ModelSubscription[Any]], model: type[models.Model]
) -> list[models.Field[Any, Any]]:
    meta = getattr(cls, "Meta", None)
    names = getattr(meta, "fields", None)
    if (
        not isinstance(names, list | tuple)
        or not names
        or not all(isinstance(name, str) for name in names)
    ):
        raise TypeError(
            f'{cls.__qualname__}: list the exposed model fields in class Meta: fields = ["id", ...]'
        )
    concrete: dict[str, models.Field[Any, Any]] = {}
    for field in model._meta.concrete_fields:
        concrete[field.name] = concrete[field.attname] = field
    chosen: list[models.Field[Any, Any]] = []
    for name in names:
        listed = concrete.get(name)
        if listed is None:
            raise TypeError(
                f"{cls.__qualname__}: {model.__name__} has no concrete field {name!r} "
                f"(it has: {', '.join(f.name for f in model._meta.concrete_fields)})"
            )
        if listed in chosen:
            raise TypeError(f"{cls.__qualname__}: field {name!r} is listed twice")
        chosen.append(listed)
    return chosen


def _graphql_type(cls: type[ModelSubscription[Any]], field: models.Field[Any, Any]) -> Any:
    python_type: Any = None
    if field.primary_key or field.is_relation:
        python_type = strawberry.ID
    else:
        for field_class, candidate in _FIELD_TYPES:
            if isinstance(field, field_class):
                python_type = candidate
                break
    if python_type is None:
        raise TypeError(
            f"{cls.__qualname__}: {field.name} is a {type(field).__name__}, which model "
            "subscriptions cannot expose; leave it out of Meta.fields"
        )
    return python_type | None if field.null and not field.primary_key else python_type


def _node_type(
    cls: type[ModelSubscription[Any]],
    model: type[models.Model],
    fields: list[models.Field[Any, Any]],
) -> type:
    """The Strawberry type of ``node``: the exposed fields, read from the instance."""
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": cls.__module__, "__annotations__": annotations}
    for field in fields:
        # The attribute is the attname (``sender_id`` for a foreign key ``sender``):
        # Strawberry's default resolver reads it from the model instance, on the event
        # loop, without a query.
        annotations[field.attname] = _graphql_type(cls, field)
        # A lazy (translated) help text cannot be evaluated before the app registry is
        # ready, which it is not while models modules are imported.
        if isinstance(field.help_text, str) and field.help_text:
            namespace[field.attname] = strawberry.field(description=field.help_text)
    name = f"{cls.__name__}Node"
    node = type(name, (), namespace)
    node.__qualname__ = f"{cls.__qualname__}Node"
    return strawberry.type(
        node, description=f"The fields of {model.__name__} that {cls.__name__} exposes."
    )


def _connect_signals(cls: type[ModelSubscription[Any]], model: type[models.Model]) -> None:
    def saved(sender: Any, instance: models.Model, created: bool, using: str, **_: Any) -> None:
        cls._on_change(instance, ModelAction.CREATED if created else ModelAction.UPDATED, using)

    def deleted(sender: Any, instance: models.Model, using: str, **_: Any) -> None:
        cls._on_change(instance, ModelAction.DELETED, using)

    # The same class imported twice (module reloads) connects once.
    uid = f"channels_graphql_typed:{cls.__module__}.{cls.__qualname__}"
    post_save.connect(saved, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=uid)
