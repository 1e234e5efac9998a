from __future__ import annotations

import channels_graphql_typed as cgt

from .models import Draft


class OnDraftChanged(cgt.ModelSubscription[Draft]):
    """Found by autodiscovery: no module imports this one."""

    class Meta:
        fields = ["id", "text"]
