"""The Django app: ``"channels_graphql_typed"`` in ``INSTALLED_APPS``.

At ``ready()`` it imports the ``subscriptions`` module of every installed app that has
one (as Django's admin imports ``admin`` modules), so that the model subscriptions
declared there connect their signal receivers in every process -- a server, a shell, a
management command, a worker -- and registers the system checks of
:mod:`channels_graphql_typed._checks` (the deployment ones for ``check --deploy``), and
enables the metrics and traces that the settings ask for
(:mod:`channels_graphql_typed.observability`).
"""

from __future__ import annotations

from typing import Final

from django.apps import AppConfig
from django.core import checks
from django.utils.module_loading import autodiscover_modules

from . import observability
from ._checks import (
    check_channel_layers,
    check_consumers,
    check_model_subscriptions,
)

SUBSCRIPTIONS_MODULE: Final = "subscriptions"
"""The module of each installed app that is imported at startup."""


class ChannelsGraphqlTypedConfig(AppConfig):
    name = "channels_graphql_typed"
    verbose_name = "GraphQL over WebSocket"

    def ready(self) -> None:
        autodiscover_modules(SUBSCRIPTIONS_MODULE)
        checks.register(check_model_subscriptions)
        for deployment_check in (check_channel_layers, check_consumers):
            checks.register(deployment_check, deploy=True)
        observability.configure_from_settings()
