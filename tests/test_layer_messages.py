"""The channel-layer messages: what the builders make, the reader takes back unchanged;
anything else it refuses, saying why."""

from __future__ import annotations

import pytest

from channels_graphql_typed._layer_messages import (
    NOTIFY,
    UNSUBSCRIBE,
    LayerMessage,
    MalformedLayerMessage,
    notify_message,
    probe_message,
    read_layer_message,
    unsubscribe_message,
    wake_up_message,
)


@pytest.mark.parametrize(
    "message",
    [
        notify_message("cgt.room-0123456789.u_kittens", b"\x00payload"),
        unsubscribe_message("cgt.room-0123456789.all"),
        wake_up_message(),
        probe_message(),
    ],
    ids=lambda message: message["type"],
)
def test_what_is_built_is_read_back(message: LayerMessage) -> None:
    assert read_layer_message(dict(message)) == message


@pytest.mark.parametrize(
    ("received", "reason"),
    [
        (NOTIFY, "not a mapping but str"),
        ({"group": "room"}, "type 'None', group of type str"),
        ({"type": ["unhashable"], "group": "room"}, "type \"['unhashable']\", group of type"),
        ({"type": "cgt.other", "group": "room"}, "type 'cgt.other'"),
        ({"type": UNSUBSCRIBE}, "group of type NoneType"),
        ({"type": NOTIFY, "group": 7, "payload": b""}, "group of type int"),
    ],
)
def test_a_malformed_envelope_is_refused(received: object, reason: str) -> None:
    with pytest.raises(MalformedLayerMessage) as raised:
        read_layer_message(received)
    assert reason in raised.value.reason
    assert raised.value.group is None


def test_a_malformed_payload_is_refused_naming_its_group() -> None:
    with pytest.raises(MalformedLayerMessage, match="must be bytes, not str") as raised:
        read_layer_message({"type": NOTIFY, "group": "room", "payload": "text"})
    assert raised.value.group == "room"
