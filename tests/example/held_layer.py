"""An in-memory channel layer whose fan-out channels a test can hold, run by the chat
example's server when its ``DJANGO_SETTINGS_MODULE`` is
:mod:`tests.example.held_layer_settings`.

While the file that ``CHAT_TEST_LAYER_HOLD`` names exists, a receive on a fan-out
channel keeps the message it took; once the file is gone, the held message and every
one queued behind it are received back to back, without the event loop running
anything else in between: a burst of broadcasts that reaches the subscribers' queues
before any of them can take one (a slow subscriber, made deterministic).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Final

from channels.layers import InMemoryChannelLayer

HOLD_VARIABLE: Final = "CHAT_TEST_LAYER_HOLD"
LONGEST_HOLD: Final = 60.0
"""Seconds a receive waits for its hold to end at most: a test that fails while holding
must not leave the server stuck."""
POLL_INTERVAL: Final = 0.01


class HeldChannelLayer(InMemoryChannelLayer):
    async def receive(self, channel: str) -> Any:
        message = await super().receive(channel)
        if "cgt-fanout-" in channel:
            hold = Path(os.environ[HOLD_VARIABLE])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + LONGEST_HOLD
            # A file, polled, as the test's other holds (a test process cannot set an
            # event of the server's); the stat must not yield, or the burst would not be
            # received back to back.
            while hold.exists() and loop.time() < deadline:  # noqa: ASYNC110, ASYNC240
                await asyncio.sleep(POLL_INTERVAL)
        return message
