"""Django settings of the chat example.

Environment variables:

* ``CHAT_DATABASE``: path of the SQLite database (default: ``db.sqlite3`` beside
  ``manage.py``, git-ignored);
* ``REDIS_URL``: when set (e.g. ``redis://127.0.0.1:6379/0``), broadcasts go through
  Redis (``channels_redis.pubsub.RedisPubSubChannelLayer``), so that several server
  processes and ``manage.py send_chat_message`` reach each other's subscribers;
  otherwise the channel layer is in memory: one process only;
* ``CHAT_DEBUG``: ``0`` turns Django's debug mode off (it is on by default: this is a
  development example bound to 127.0.0.1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
"""``examples/chat``: holds ``manage.py``, ``frontend/`` and ``node_modules/``."""

SECRET_KEY = os.environ.get("CHAT_SECRET_KEY", "chat-example-not-secret")
DEBUG = os.environ.get("CHAT_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "daphne",  # first: its runserver (ASGI, WebSocket included) replaces Django's
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "channels_graphql_typed",  # imports chat.subscriptions at startup, in every process
    "chat",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "chat.urls"
ASGI_APPLICATION = "chat.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CHAT_DATABASE") or str(BASE_DIR / "db.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

CHANNEL_LAYERS: dict[str, dict[str, Any]]
if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --8<-- [start:metrics-settings]
# The library's metrics, served at /metrics (chat.urls) for Prometheus to scrape; needs
# prometheus_client (pip install channels-graphql-typed[prometheus]).
CHANNELS_GRAPHQL_TYPED_METRICS = True
# --8<-- [end:metrics-settings]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "chat": {"handlers": ["console"], "level": "INFO"},
        "channels_graphql_typed": {"handlers": ["console"], "level": "INFO"},
    },
}
