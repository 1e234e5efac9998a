"""Django settings of the server processes and scripts of the scale-out tests.

The test suite's settings, with the channel layers taken from the environment:
``CGT_TEST_CHANNEL_LAYERS`` holds Django's ``CHANNEL_LAYERS`` as JSON (the suite's
in-memory layer when it is not set). The library's logger writes to stderr at INFO,
so that tests can read what a server logged.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.settings import *  # noqa: F403

if os.environ.get("CGT_TEST_CHANNEL_LAYERS"):
    CHANNEL_LAYERS: dict[str, dict[str, Any]] = json.loads(  # type: ignore[no-redef]
        os.environ["CGT_TEST_CHANNEL_LAYERS"]
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "channels_graphql_typed": {"handlers": ["stderr"], "level": "INFO", "propagate": False}
    },
}
