from __future__ import annotations

import channels_graphql_typed as cgt

from .notes.models import Note


class OnNoteEdited(cgt.ModelSubscription[Note]):
    """Declared where only the server (through the URLconf) imports it."""

    class Meta:
        fields = ["id", "text"]
