"""The chat example's settings with :class:`tests.example.held_layer.HeldChannelLayer` as
the channel layer, for the test that scrapes the example's metrics.

Its processes have the repository root and ``examples/chat`` on their path.
"""

from __future__ import annotations

import importlib

globals().update(
    {
        name: value
        for name, value in vars(importlib.import_module("chat.settings")).items()
        if name.isupper()
    }
)
CHANNEL_LAYERS = {"default": {"BACKEND": "tests.example.held_layer.HeldChannelLayer"}}
