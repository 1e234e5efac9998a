from __future__ import annotations

from django.conf import settings
from django.db import models


class Message(models.Model):
    chatroom = models.CharField(max_length=100)
    text = models.TextField()
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    sent_at = models.DateTimeField(auto_now_add=True)
