"""The system check that finds model subscriptions which some processes never see.

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
