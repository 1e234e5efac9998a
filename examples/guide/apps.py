from __future__ import annotations

from django.apps import AppConfig


class GuideConfig(AppConfig):
    """The guide's Django app: its models module declares the model subscription."""

    name = "examples.guide"
    label = "guide"
    default_auto_field = "django.db.models.BigAutoField"
