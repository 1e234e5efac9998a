from __future__ import annotations

import dataclasses
from typing import Self

import channels_graphql_typed as cgt


@dataclasses.dataclass
class ChatEvent:
    chatroom: str
    text: str


class OnMessage(cgt.Subscription[ChatEvent]):
    chatroom: str
    text: str

    @classmethod
    async def subscribe(cls, info: cgt.Info, chatroom: str) -> list[int]:  # error: override
        return [1]

    @classmethod
    async def publish(cls, payload: ChatEvent, info: cgt.Info, chatroom: str) -> Self | cgt.Skip:
        return cls(chatroom=payload.chatroom, txt=payload.text)  # error: call-arg


class ReturnsWrongResult(cgt.Subscription[ChatEvent]):
    text: str

    @classmethod
    async def publish(cls, payload: ChatEvent, info: cgt.Info) -> str:  # error: override
        return payload.text


class WrongPayloadType(cgt.Subscription[ChatEvent]):
    text: str

    @classmethod
    async def publish(cls, payload: int, info: cgt.Info) -> Self | cgt.Skip:  # error: override
        return cls(text=str(payload))


class WrongFieldType(cgt.Subscription[ChatEvent]):
    count: int

    @classmethod
    async def publish(cls, payload: ChatEvent, info: cgt.Info) -> Self | cgt.Skip:
        return cls(count=payload.text)  # error: arg-type


async def broadcast_wrong_payload() -> None:
    await OnMessage.broadcast(payload="not an event", group="g")  # error: arg-type


def broadcast_sync_wrong_payload() -> None:
    OnMessage.broadcast_sync(payload=42)  # error: arg-type


class ReturnsOneGroupName(cgt.Subscription[ChatEvent]):
    text: str

    @classmethod
    async def subscribe(cls, info: cgt.Info, chatroom: str) -> str:  # error: override
        return chatroom  # a str is a Sequence[str]: one group per character
