"""Django settings of the benchmark server; the channel layer comes from BENCH_LAYER."""

from __future__ import annotations

import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
ROOT_URLCONF = "bench.urls"

_LAYER = os.environ.get("BENCH_LAYER", "memory")
_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
_PREFIX = os.environ.get("BENCH_REDIS_PREFIX", "cgt-bench")
if _LAYER == "memory":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 100_000},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": {
                "redis_pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "redis_core": "channels_redis.core.RedisChannelLayer",
            }[_LAYER],
            "CONFIG": {"hosts": [_REDIS_URL], "prefix": _PREFIX, "capacity": 100_000},
        }
    }
