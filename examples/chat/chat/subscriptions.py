"""The chat's model subscription, in the module that channels_graphql_typed imports at
startup in every process (``"channels_graphql_typed"`` is in ``INSTALLED_APPS``): a
message edited or deleted from a shell or ``manage.py`` notifies the chat pages too."""

from __future__ import annotations

import channels_graphql_typed as cgt

from .models import ChatMessage


class OnChatMessageChanged(cgt.ModelSubscription[ChatMessage]):
    """Messages created, edited or deleted, in every chatroom (the chat page asks for
    edits and deletions, and keeps those of its room)."""

    class Meta:
        fields = ["id", "chatroom", "text", "sender"]
