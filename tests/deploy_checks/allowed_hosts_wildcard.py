"""A sound deployment but for ``ALLOWED_HOSTS = ["*"]``, which the consumers' default
origin policy follows."""

from __future__ import annotations

from tests.deploy_checks.well_configured import *  # noqa: F403

ALLOWED_HOSTS = ["*"]
