"""Everything the deployment checks warn about, at once."""

from __future__ import annotations

from tests.deploy_checks.well_configured import *  # noqa: F403

DEBUG = False
ASGI_APPLICATION = "tests.deploy_checks.asgi.application"
CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
    "core": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {"address": "redis://127.0.0.1:6379/0", "socket_timeout": 3},
                "redis://127.0.0.1:6379/1?socket_timeout=5",
                {"address": "redis://127.0.0.1:6379/2", "socket_timeout": 30},
                ("127.0.0.1", 6379),
            ]
        },
    },
}
