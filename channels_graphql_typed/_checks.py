"""Django system checks: configurations under which notifications silently go missing.

Each check has an id; the README's "Deployment checks" table gives each its fix.

* ``channels_graphql_typed.W001`` (every ``manage.py check``): a model subscription
  declared where some processes never import it.
* Deploy checks (``manage.py check --deploy``):

  - ``W002``: the in-memory channel layer with ``DEBUG`` off: broadcasts from any other
    process (a worker, a management command, a second server process) never arrive;
  - ``W003``: channels-redis' core layer with a ``socket_timeout`` at or below its 5 s
    blocking read: every idle receive times out, and the layer fails over and over;
  - ``W004``: a consumer that accepts WebSocket handshakes from every origin (``"*"``
    in ``allowed_origins``, or in ``ALLOWED_HOSTS`` when it uses the default): any web
    page can open a socket with the visitor's cookies;
  - ``W005``: a consumer with a limit disabled (``None``): one client can make the
    server use unbounded memory or time.

  (``daphne`` after ``django.contrib.staticfiles`` is daphne's own check, ``daphne.E001``.)

W001 in detail
--------------
A :class:`~.model_subscription.ModelSubscription` notifies from the signal receivers that
its declaration connects, in the process that saves the row. A class declared in a
module that only the server imports (a ``schema.py`` that the URLconf imports) is
unknown to a shell, a management command or a worker: their saves notify nobody, and
nothing else would say so. So each declaration is recorded with whether it happened
while Django was starting (models modules, the autodiscovered ``subscriptions``
modules, ``AppConfig.ready()``: every process does that), and the check warns about the
others.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import urllib.parse
from typing import TYPE_CHECKING, Any, Final

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.urls import get_resolver

if TYPE_CHECKING:
    from collections.abc import Sequence

    from django.apps import AppConfig

LATE_MODEL_SUBSCRIPTION: Final = "channels_graphql_typed.W001"

_declared: dict[type, bool] = {}
"""Every concrete model subscription class: was it declared while Django started?"""


def record_model_subscription(cls: type) -> None:
    """Called by each concrete model subscription class as it is declared."""
    _declared[cls] = not apps.ready


def check_model_subscriptions(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A warning per model subscription declared only once Django had started."""
    if getattr(settings, "ROOT_URLCONF", None):
        # What the URLconf imports (a schema, its subscriptions) is declared now, as
        # Django's own URL checks would import it; their errors are theirs to report.
        with contextlib.suppress(Exception):
            get_resolver().url_patterns  # noqa: B018
    messages: list[checks.CheckMessage] = []
    for cls, at_startup in list(_declared.items()):
        if at_startup:
            continue
        model = getattr(cls, "model", None)
        model_name = getattr(model, "__name__", "its model's")
        app = apps.get_containing_app_config(cls.__module__)
        if app is None and model is not None:
            app = model._meta.app_config
        place = (
            f"{app.name.replace('.', '/')}/subscriptions.py"
            if app is not None
            else "an installed app's subscriptions.py"
        )
        messages.append(
            checks.Warning(
                f"{cls.__qualname__} is declared in {cls.__module__}, which Django does "
                f"not import at startup: a process that never imports it (a shell, a "
                f"management command, a worker) saves {model_name} rows without "
                "notifying its subscribers.",
                hint=(
                    f"Move it to {place} (channels_graphql_typed imports that module in "
                    "every process), or to the app's models.py."
                ),
                obj=cls,
                id=LATE_MODEL_SUBSCRIPTION,
            )
        )
    return messages


IN_MEMORY_LAYER_IN_PRODUCTION: Final = "channels_graphql_typed.W002"
REDIS_SOCKET_TIMEOUT: Final = "channels_graphql_typed.W003"
ANY_ORIGIN_ACCEPTED: Final = "channels_graphql_typed.W004"
LIMIT_DISABLED: Final = "channels_graphql_typed.W005"

IN_MEMORY_LAYER: Final = "channels.layers.InMemoryChannelLayer"
REDIS_CORE_LAYER: Final = "channels_redis.core.RedisChannelLayer"
REDIS_BLOCKING_READ: Final = 5.0
"""Seconds that channels-redis' core layer blocks in one read (``brpop_timeout``)."""

CONSUMER_LIMITS: Final = (
    "max_message_size",
    "max_connection_init_payload_size",
    "max_operations_per_connection",
    "max_operations_size_per_connection",
    "max_query_tokens",
    "max_query_depth",
    "max_query_aliases",
    "max_result_size",
    "max_groups_per_subscription",
    "notification_queue_limit",
    "connection_init_wait_timeout",
)
"""The consumer settings that bound what one client costs; ``None`` disables one."""


def check_channel_layers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W002 and W003: channel layers that lose broadcasts in production."""
    messages: list[checks.CheckMessage] = []
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(layers, dict):
        return messages
    for alias, layer in layers.items():
        backend = layer.get("BACKEND") if isinstance(layer, dict) else None
        if backend == IN_MEMORY_LAYER and not settings.DEBUG:
            messages.append(
                checks.Warning(
                    f"CHANNEL_LAYERS[{alias!r}] is the in-memory layer while DEBUG is off: "
                    "broadcasts from any other process (a worker, a management command, "
                    "another server process) never reach this process's subscribers.",
                    hint="Use channels_redis.pubsub.RedisPubSubChannelLayer (or "
                    "channels_redis.core.RedisChannelLayer) in production.",
                    id=IN_MEMORY_LAYER_IN_PRODUCTION,
                )
            )
        if backend == REDIS_CORE_LAYER:
            config = layer.get("CONFIG") or {}
            hosts = config.get("hosts", ()) if isinstance(config, dict) else ()
            hosts = hosts if isinstance(hosts, list | tuple) else ()
            for index, host in enumerate(hosts):
                timeout = _socket_timeout(host)
                given = "sets" if timeout is not None else "leaves"
                if timeout is None:
                    timeout = _redis_default_socket_timeout()
                if timeout is not None and timeout <= REDIS_BLOCKING_READ:
                    what = "" if given == "sets" else " (redis-py's default)"
                    messages.append(
                        checks.Warning(
                            f"CHANNEL_LAYERS[{alias!r}] {given} socket_timeout={timeout:g}"
                            f"{what} on {_host_name(host, index, len(hosts))}: channels-redis' "
                            f"core layer blocks {REDIS_BLOCKING_READ:g} s in each read, so "
                            "every idle receive times out and the layer fails again and again.",
                            hint=_socket_timeout_hint(host),
                            id=REDIS_SOCKET_TIMEOUT,
                        )
                    )
    return messages


def _redis_default_socket_timeout() -> float | None:
    """redis-py's default ``socket_timeout`` for asyncio connections (5 s since redis-py
    8, none before), read from the installed version."""
    try:
        from redis.asyncio.connection import AbstractConnection
    except ImportError:
        return None
    parameter = inspect.signature(AbstractConnection.__init__).parameters.get("socket_timeout")
    default = None if parameter is None else parameter.default
    return float(default) if isinstance(default, int | float) else None


def _is_sentinel_host(host: object) -> bool:
    """A channels-redis host entry for a master found through Redis Sentinel."""
    return isinstance(host, dict) and host.get("master_name") is not None


def _host_name(host: object, index: int, count: int) -> str:
    """Which host a warning is about, without its address (which may hold a password)."""
    name = "its host" if count == 1 else f"host {index + 1} of {count}"
    if _is_sentinel_host(host):
        assert isinstance(host, dict)
        master = str(host.get("master_name"))[:60]
        name += f" (the master {master!r} through Sentinel)"
    return name


def _socket_timeout_hint(host: object) -> str:
    hint = (
        f"Set socket_timeout above {REDIS_BLOCKING_READ:g} s in the host (10 s, say: "
        '{"address": ..., "socket_timeout": 10}).'
    )
    if _is_sentinel_host(host):
        hint = (
            f"Set socket_timeout above {REDIS_BLOCKING_READ:g} s in the host entry, next to "
            '"sentinels" and "master_name" (10 s, say): it applies to the connections to the '
            "master; the one in sentinel_kwargs applies to the Sentinel queries only."
        )
    return hint


def _socket_timeout(host: object) -> float | None:
    """The ``socket_timeout`` that a channels-redis host entry gives redis-py, if any."""
    value: object = None
    if isinstance(host, dict):
        value = host.get("socket_timeout")
        address = host.get("address")
        if value is None and isinstance(address, str):
            return _socket_timeout(address)
    elif isinstance(host, str):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(host).query)
        values = query.get("socket_timeout")
        value = values[0] if values else None
    try:
        return None if value is None else float(str(value))
    except ValueError:
        return None


def check_consumers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W004 and W005: consumers that any page can reach, or any client can exhaust."""
    # The consumers import Channels' machinery: not before the checks run.
    from ._consumer import GraphqlWsConsumer
    from ._http_consumer import GraphqlHttpConsumer
    from ._origin import ANY_ORIGIN

    asgi_application = getattr(settings, "ASGI_APPLICATION", None)
    if isinstance(asgi_application, str) and "." in asgi_application:
        # The consumers are declared where the ASGI application is routed: import it, as
        # a server would (its errors are the server's to report).
        with contextlib.suppress(Exception):
            importlib.import_module(asgi_application.rsplit(".", 1)[0])
    messages: list[checks.CheckMessage] = []
    consumers = _concrete_subclasses(GraphqlWsConsumer) + _concrete_subclasses(GraphqlHttpConsumer)
    for consumer in consumers:
        allowed = consumer.allowed_origins
        open_to_all = ANY_ORIGIN in (
            allowed if allowed is not None else list(settings.ALLOWED_HOSTS)
        )
        if open_to_all:
            source = "allowed_origins" if allowed is not None else "ALLOWED_HOSTS"
            messages.append(
                checks.Warning(
                    f"{consumer.__qualname__} accepts WebSocket handshakes from every origin "
                    f"('*' in {source}): any web page can open a socket with its visitor's "
                    "cookies and act as them.",
                    hint="Set allowed_origins to the origins of your front end, e.g. "
                    "('https://app.example.com',).",
                    obj=consumer,
                    id=ANY_ORIGIN_ACCEPTED,
                )
            )
        disabled = [name for name in CONSUMER_LIMITS if getattr(consumer, name, 0) is None]
        if disabled:
            messages.append(
                checks.Warning(
                    f"{consumer.__qualname__} disables {', '.join(disabled)}: one client can "
                    "make the server spend unbounded memory or time.",
                    hint="Set a bound instead of None (the defaults are safe; raise one "
                    "rather than disable it).",
                    obj=consumer,
                    id=LIMIT_DISABLED,
                )
            )
    return messages


def _concrete_subclasses(base: type) -> list[type[Any]]:
    """The subclasses of ``base`` that serve a schema (bases without one are not served)."""
    found: list[type[Any]] = []
    pending: list[type[Any]] = list(base.__subclasses__())
    seen: set[type] = set()
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        pending.extend(cls.__subclasses__())
        if getattr(cls, "schema", None) is not None:
            found.append(cls)
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))
