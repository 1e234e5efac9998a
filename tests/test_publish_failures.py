"""A publish that fails for every subscriber of a broadcast is reported once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from channels_graphql_typed import _contract as operation
from tests.helpers import WsSession
from tests.strawberry.test_fidelity import SECRET, TYPED, OnFidelity, consumer_for

if TYPE_CHECKING:
    import pytest


async def test_one_report_per_broadcast_and_class(
    subprotocol: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(operation, "publish_failures", operation.PublishFailureLog(window=0.3))
    monkeypatch.setattr(
        "channels_graphql_typed._subscription.publish_failures", operation.publish_failures
    )
    consumer = consumer_for("none")
    room = f"failures-{subprotocol}"
    sessions = []
    for _ in range(20):
        session = await WsSession.open(consumer.as_asgi(), subprotocol)
        await session.start("t", TYPED, {"room": room})
        assert await session.result("t") == {"data": None}
        sessions.append(session)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        await OnFidelity.broadcast(payload="explode", group=room)
        for session in sessions:
            failed = await session.result("t")
            assert failed["errors"][0]["message"] == SECRET  # every subscriber is told
        tracebacks = [r for r in caplog.records if r.exc_info and SECRET in str(r.exc_info[1])]
        assert len(tracebacks) == 1
        await sessions[0].nothing(0.5)  # the window closes
    summaries = [r.getMessage() for r in caplog.records if "more notification" in r.getMessage()]
    assert summaries == [
        "OnFidelity.publish raised ValueError again for 19 more notification(s) in 0.3 s "
        "(reported once above)"
    ]
    for session in sessions:
        await session.close()
