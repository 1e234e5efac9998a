"""Redis for the tests: REDIS_URL (default redis://127.0.0.1:6379/0), a key prefix per run.

In CI (CI=true) a missing Redis fails the tests that need it; elsewhere they skip with a
line that says how to start one.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import uuid

import pytest

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_PREFIX = f"cgt-test-{uuid.uuid4().hex[:8]}"
LAYERS = (
    "channels_redis.core.RedisChannelLayer",
    "channels_redis.pubsub.RedisPubSubChannelLayer",
)


def redis_answers() -> bool:
    url = urllib.parse.urlparse(REDIS_URL)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), 1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis() -> None:
    if redis_answers():
        return
    message = (
        f"no Redis answers at {REDIS_URL}; start one with: redis-server --daemonize yes "
        '--bind 127.0.0.1 --port 6379 --save "" --appendonly no'
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def layer_settings(backend: str, **config: object) -> dict[str, dict[str, object]]:
    """``CHANNEL_LAYERS`` on the run's Redis and prefix; ``config`` adds to the layer's."""
    return {
        "default": {
            "BACKEND": backend,
            "CONFIG": {"hosts": [REDIS_URL], "prefix": RUN_PREFIX, **config},
        }
    }
