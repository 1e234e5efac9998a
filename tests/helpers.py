"""A thin, protocol-aware driver over Channels' WebsocketCommunicator for tests."""

from __future__ import annotations

import json
from typing import Any

from channels.testing import WebsocketCommunicator

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS

Message = dict[str, Any]


class WsSession:
    """One test connection speaking either subprotocol by its message names."""

    def __init__(self, communicator: WebsocketCommunicator, subprotocol: str) -> None:
        self.communicator = communicator
        self.subprotocol = subprotocol
        transport = subprotocol == GRAPHQL_TRANSPORT_WS
        self.start_type = "subscribe" if transport else "start"
        self.stop_type = "complete" if transport else "stop"
        self.result_type = "next" if transport else "data"
        self.skip_keepalive = True
        """Drop the legacy protocol's ``ka`` messages, as clients do."""

    @classmethod
    async def open(
        cls,
        application: Any,
        subprotocol: str,
        *,
        path: str = "/graphql/",
        init: bool = True,
        payload: Message | None = None,
    ) -> WsSession:
        communicator = WebsocketCommunicator(application, path, subprotocols=[subprotocol])
        connected, chosen = await communicator.connect()
        assert connected
        assert chosen == subprotocol
        session = cls(communicator, subprotocol)
        if init:
            ack = await session.init(payload)
            assert ack["type"] == "connection_ack", ack
        return session

    async def send(self, message: Message) -> None:
        await self.communicator.send_to(text_data=json.dumps(message))

    async def send_text(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float = 3) -> Message:
        while True:
            output = await self.communicator.receive_output(timeout)
            assert output["type"] == "websocket.send", f"expected a message, got {output}"
            message: Message = json.loads(output["text"])
            if not (self.skip_keepalive and message == {"type": "ka"}):
                return message

    async def receive_close(self, timeout: float = 3) -> tuple[int, str]:
        output = await self.communicator.receive_output(timeout)
        assert output["type"] == "websocket.close", f"expected a close, got {output}"
        return output.get("code", 1000), output.get("reason", "")

    async def nothing(self, timeout: float = 0.1) -> bool:
        result: bool = await self.communicator.receive_nothing(timeout)
        return result

    async def init(self, payload: Message | None = None) -> Message:
        message: Message = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await self.send(message)
        return await self.receive()

    async def start(
        self,
        id: str,
        query: str,
        variables: Message | None = None,
        operation_name: str | None = None,
    ) -> None:
        payload: Message = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        if operation_name is not None:
            payload["operationName"] = operation_name
        await self.send({"type": self.start_type, "id": id, "payload": payload})

    async def stop(self, id: str) -> None:
        await self.send({"type": self.stop_type, "id": id})

    async def result(self, id: str, timeout: float = 3) -> Message:
        """The payload of the next message, which must be a result of operation ``id``."""
        message = await self.receive(timeout)
        assert message == {"type": self.result_type, "id": id, "payload": message.get("payload")}, (
            message
        )
        payload: Message = message["payload"]
        return payload

    async def completed(self, id: str, timeout: float = 3) -> None:
        message = await self.receive(timeout)
        assert message == {"type": "complete", "id": id}, message

    async def query(
        self,
        id: str,
        query: str,
        variables: Message | None = None,
    ) -> Message:
        """Run a query or mutation to its end; return its only result."""
        await self.start(id, query, variables)
        payload = await self.result(id)
        await self.completed(id)
        return payload

    async def close(self) -> None:
        await self.communicator.disconnect()
