"""A deployment the checks have nothing to say about."""

from __future__ import annotations

SECRET_KEY = "deploy-checks-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["chat.example.com"]
INSTALLED_APPS = [
    "daphne",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    "channels",
    "channels_graphql_typed",
    "tests.app",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
ASGI_APPLICATION = "tests.deploy_checks.served.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
    }
}
