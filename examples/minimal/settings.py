"""Django settings of the minimal example: no database tables, in-memory channel layer."""

from __future__ import annotations

SECRET_KEY = "minimal-example-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
DATABASES: dict[str, dict[str, str]] = {}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
ROOT_URLCONF = "examples.minimal.urls"
USE_TZ = True
