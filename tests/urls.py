"""Django views of the test suite: broadcasts from sync and async views."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from tests.subscriptions import ChatEvent, OnNewChatMessage


def _event(request: HttpRequest) -> tuple[ChatEvent, str]:
    room = request.GET["room"]
    event = ChatEvent(
        chatroom=room, text=request.GET["text"], sender="alice", sender_channel="view"
    )
    return event, room


def broadcast_sync_view(request: HttpRequest) -> HttpResponse:
    event, room = _event(request)
    OnNewChatMessage.broadcast_sync(payload=event, group=room)
    return HttpResponse("sent")


async def broadcast_async_view(request: HttpRequest) -> HttpResponse:
    event, room = _event(request)
    await OnNewChatMessage.broadcast(payload=event, group=room)
    return HttpResponse("sent")


urlpatterns = [
    path("broadcast-sync/", broadcast_sync_view),
    path("broadcast-async/", broadcast_async_view),
]
