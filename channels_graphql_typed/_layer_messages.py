"""The messages that cross the channel layer, as TypedDicts.

One TypedDict per message, discriminated by a ``Literal`` ``type``, and one function
that builds each: nothing else spells a message out.

* :class:`NotifyMessage` -- a broadcast: deliver ``payload`` to the subscribers of
  ``group`` (sent by :meth:`Subscription.broadcast
  <channels_graphql_typed.Subscription.broadcast>`, once per process in the group);
* :class:`UnsubscribeMessage` -- end every subscription in ``group``;
* :class:`WakeUpMessage`, :class:`ProbeMessage` -- the fan-out's own, which carry
  nothing: a wake-up ends a receive that did not end when cancelled, a probe is a
  harmless round trip while the layer fails (see :mod:`channels_graphql_typed._fanout`).

Receiving
---------
The channel layer is a trust boundary (README, "The channel layer is a trust
boundary"): whatever can write to it can put anything on a process's channel. A
received message is therefore an ``object`` until :func:`read_layer_message` has checked
every field it has; one that is not a well-formed message raises
:class:`MalformedLayerMessage` saying why. The payload's bytes are not decoded here:
:func:`~channels_graphql_typed._serialization.deserialize_payload` does that, once per
process and only for a group with local subscribers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict, cast

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

NotifyType = Literal["cgt.notify"]
UnsubscribeType = Literal["cgt.unsubscribe"]
WakeUpType = Literal["cgt.wake_up"]
ProbeType = Literal["cgt.probe"]

NOTIFY: Final[NotifyType] = "cgt.notify"
UNSUBSCRIBE: Final[UnsubscribeType] = "cgt.unsubscribe"
WAKE_UP: Final[WakeUpType] = "cgt.wake_up"
PROBE: Final[ProbeType] = "cgt.probe"


class NotifyMessage(TypedDict):
    """Deliver one broadcast to the local subscribers of ``group``."""

    type: NotifyType
    group: str
    """The Channels group the message was sent to (see ``fanout.group_name``)."""
    payload: bytes
    """The payload as :func:`~channels_graphql_typed._serialization.serialize_payload`
    encoded it."""


class UnsubscribeMessage(TypedDict):
    """End every local subscription in ``group`` once its queue is drained."""

    type: UnsubscribeType
    group: str


class WakeUpMessage(TypedDict):
    """Sent by the fan-out to its own channel, to end a receive (see ``end_receive``)."""

    type: WakeUpType


class ProbeMessage(TypedDict):
    """Sent by the fan-out to a group nobody joins, to learn whether the layer answers."""

    type: ProbeType


GroupMessage = NotifyMessage | UnsubscribeMessage
"""A message for the subscribers of one group."""
LayerMessage = NotifyMessage | UnsubscribeMessage | WakeUpMessage | ProbeMessage
"""Any message this package sends over the channel layer."""


def notify_message(group: str, payload: bytes) -> NotifyMessage:
    return {"type": NOTIFY, "group": group, "payload": payload}


def unsubscribe_message(group: str) -> UnsubscribeMessage:
    return {"type": UNSUBSCRIBE, "group": group}


def wake_up_message() -> WakeUpMessage:
    return {"type": WAKE_UP}


def probe_message() -> ProbeMessage:
    return {"type": PROBE}


async def send(layer: BaseChannelLayer, channel: str, message: LayerMessage) -> None:
    """Send ``message`` to ``channel`` (Channels types messages as plain dicts)."""
    await layer.send(channel, cast("dict[str, Any]", message))


async def group_send(layer: BaseChannelLayer, group: str, message: LayerMessage) -> None:
    """Send ``message`` to every channel in ``group``."""
    await layer.group_send(group, cast("dict[str, Any]", message))


class MalformedLayerMessage(ValueError):
    """A message from the channel layer that is not one of :data:`LayerMessage`."""

    def __init__(self, reason: str, group: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.group = group
        """The group the message names, when only its payload is malformed."""


def read_layer_message(message: object) -> LayerMessage:
    """``message``, received from the channel layer, once every field of it is checked;
    :class:`MalformedLayerMessage` if it is not a well-formed message."""
    if not isinstance(message, dict):
        raise MalformedLayerMessage(f"not a mapping but {type(message).__name__}")
    kind = message.get("type")
    # Compared, not looked up: a hostile ``type`` may be unhashable.
    if kind == WAKE_UP:
        return wake_up_message()
    if kind == PROBE:
        return probe_message()
    group = message.get("group")
    if kind not in (NOTIFY, UNSUBSCRIBE) or not isinstance(group, str):
        raise MalformedLayerMessage(
            f"type {str(kind)[:40]!r}, group of type {type(group).__name__}"
        )
    if kind == UNSUBSCRIBE:
        return unsubscribe_message(group)
    payload = message.get("payload")
    if not isinstance(payload, bytes):
        raise MalformedLayerMessage(
            f"its payload for group {group} was refused: a payload must be bytes, "
            f"not {type(payload).__name__}",
            group,
        )
    return notify_message(group, payload)
