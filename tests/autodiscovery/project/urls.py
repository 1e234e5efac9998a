from __future__ import annotations

from typing import TYPE_CHECKING

from . import schema  # noqa: F401 (declares the schema's subscriptions, as a project's does)

if TYPE_CHECKING:
    from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
