"""The chat example's settings with the channel layers of ``CGT_TEST_CHANNEL_LAYERS``
(JSON), for running the example on a channel layer it does not configure itself.

Its processes have ``examples/chat`` on their path, where the example's ``chat``
package is.
"""

from __future__ import annotations

import importlib
import json
import os

globals().update(
    {
        name: value
        for name, value in vars(importlib.import_module("chat.settings")).items()
        if name.isupper()
    }
)
CHANNEL_LAYERS = json.loads(os.environ["CGT_TEST_CHANNEL_LAYERS"])
