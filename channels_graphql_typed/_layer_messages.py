"""The messages that cross the channel layer, as TypedDicts.

One TypedDict per message, discriminated by a ``Literal`` ``type``, and one function
that builds each: nothing else spells a message out.

* :class:`NotifyMessage` -- a broadcast: deliver ``payload`` to the subscribers of
  ``group`` (sent by :meth:`Subscription.broadcast
  <channels_graphql_typed.Subscription.broadcast>`, once per process in the group);
* :class:`UnsubscribeMessage` -- end every subscription in ``group``;
* :class:`WakeUpMessage`, :class:`ProbeMessage` -- the fan-out's own, which carry
  nothing: a wake-up ends a receive that did not end when cancelled, a probe is a
  harmless round trip while the layer fails (see :mod:`channels_graphql_typed._fanout`);
* :class:`JoinedMessage` -- the fan-out's own too: sent to a group it just joined, its
  arrival says that the membership is in effect (see ``FanOut._confirm_joined``).

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

import math
import re
from typing import TYPE_CHECKING, Any, Final, Literal, NotRequired, TypedDict, cast

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

NotifyType = Literal["cgt.notify"]
UnsubscribeType = Literal["cgt.unsubscribe"]
WakeUpType = Literal["cgt.wake_up"]
ProbeType = Literal["cgt.probe"]
JoinedType = Literal["cgt.joined"]

_EVENT_ID: Final = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")

NOTIFY: Final[NotifyType] = "cgt.notify"
UNSUBSCRIBE: Final[UnsubscribeType] = "cgt.unsubscribe"
WAKE_UP: Final[WakeUpType] = "cgt.wake_up"
PROBE: Final[ProbeType] = "cgt.probe"
JOINED: Final[JoinedType] = "cgt.joined"


class NotifyMessage(TypedDict):
    """Deliver one broadcast to the local subscribers of ``group``."""

    type: NotifyType
    group: str
    """The Channels group the message was sent to (see ``fanout.group_name``)."""
    payload: bytes
    """The payload as :func:`~channels_graphql_typed._serialization.serialize_payload`
    encoded it."""
    sent_at: NotRequired[float]
    """When the broadcast was issued (seconds since the epoch, on the sender's clock):
    the start of the broadcast-to-send latency that the metrics report."""
    event_id: NotRequired[str]
    """The broadcast's id in its class's replay history (resumable classes only: see
    :mod:`channels_graphql_typed._replay`)."""


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


class JoinedMessage(TypedDict):
    """Sent by a fan-out to a group it joined: when it comes back, the join is in effect."""

    type: JoinedType
    group: str
    token: str
    """Which of the fan-out's waits it ends (other processes in the group ignore it)."""


GroupMessage = NotifyMessage | UnsubscribeMessage
"""A message for the subscribers of one group."""
LayerMessage = NotifyMessage | UnsubscribeMessage | WakeUpMessage | ProbeMessage | JoinedMessage
"""Any message this package sends over the channel layer."""


def notify_message(
    group: str, payload: bytes, sent_at: float | None = None, event_id: str | None = None
) -> NotifyMessage:
    message: NotifyMessage = {"type": NOTIFY, "group": group, "payload": payload}
    if sent_at is not None:
        message["sent_at"] = sent_at
    if event_id is not None:
        message["event_id"] = event_id
    return message


def unsubscribe_message(group: str) -> UnsubscribeMessage:
    return {"type": UNSUBSCRIBE, "group": group}


def joined_message(group: str, token: str) -> JoinedMessage:
    return {"type": JOINED, "group": group, "token": token}


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
    if kind == JOINED and isinstance(group, str):
        token = message.get("token")
        if not isinstance(token, str) or len(token) > 64:
            raise MalformedLayerMessage(f"a join confirmation for group {group} without a token")
        return joined_message(group, token)
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
    event_id = message.get("event_id")
    if event_id is not None and not (
        isinstance(event_id, str) and len(event_id) <= 41 and _EVENT_ID.fullmatch(event_id)
    ):
        raise MalformedLayerMessage(
            f"its event id for group {group} was refused: '<ms>-<n>' is expected, not "
            f"{type(event_id).__name__} {str(event_id)[:40]!r}",
            group,
        )
    sent_at = message.get("sent_at")
    if sent_at is None:
        return notify_message(group, payload, None, event_id)
    # A bool is an int, and a NaN or an infinity would poison every latency sum.
    number = isinstance(sent_at, float | int) and not isinstance(sent_at, bool)
    if not number or not math.isfinite(sent_at):
        raise MalformedLayerMessage(
            f"its broadcast time for group {group} was refused: a number of seconds is "
            f"expected, not {type(sent_at).__name__} {str(sent_at)[:40]!r}",
            group,
        )
    return notify_message(group, payload, float(sent_at), event_id)


# --- single connection mode's event streams (see channels_graphql_typed._event_streams) ------

StreamSubmitType = Literal["cgt.stream.submit"]
StreamStopType = Literal["cgt.stream.stop"]
StreamAnswerType = Literal["cgt.stream.answer"]

STREAM_SUBMIT: Final[StreamSubmitType] = "cgt.stream.submit"
STREAM_STOP: Final[StreamStopType] = "cgt.stream.stop"
STREAM_ANSWER: Final[StreamAnswerType] = "cgt.stream.answer"

MAX_STREAM_FIELD_LENGTH: Final = 1024
"""The longest string field of a stream message but a submission's ``body``."""
MAX_STREAM_ANSWER_BODY: Final = 64 * 1024
"""The longest answer body (an answer holds errors or nothing: results go to the stream)."""


class StreamSubmitMessage(TypedDict):
    """A request that reached another process submits an operation to the event stream
    that ``token`` names; the answer goes to ``reply``."""

    type: StreamSubmitType
    token: str
    principal: str
    """Who sent the request (see ``_event_streams.principal_of``): the stream's own
    principal must match."""
    server: str
    """The server class that took the request: the stream's own must match."""
    method: str
    """``GET`` or ``POST``: a mutation needs ``POST``."""
    body: str
    """The operation (``query``, ``variables``...) as JSON text, checked again here."""
    reply: str


class StreamStopMessage(TypedDict):
    """A ``DELETE`` that reached another process stops one operation of a stream."""

    type: StreamStopType
    token: str
    principal: str
    server: str
    operation_id: str
    reply: str


class StreamAnswerMessage(TypedDict):
    """The stream's process answers a forwarded request: its status and body."""

    type: StreamAnswerType
    status: int
    body: bytes


StreamRequestMessage = StreamSubmitMessage | StreamStopMessage


def stream_submit_message(
    *, token: str, principal: str, server: str, method: str, body: str, reply: str
) -> StreamSubmitMessage:
    return {
        "type": STREAM_SUBMIT,
        "token": token,
        "principal": principal,
        "server": server,
        "method": method,
        "body": body,
        "reply": reply,
    }


def stream_stop_message(
    *, token: str, principal: str, server: str, operation_id: str, reply: str
) -> StreamStopMessage:
    return {
        "type": STREAM_STOP,
        "token": token,
        "principal": principal,
        "server": server,
        "operation_id": operation_id,
        "reply": reply,
    }


def stream_answer_message(status: int, body: bytes) -> StreamAnswerMessage:
    return {"type": STREAM_ANSWER, "status": status, "body": body}


async def send_stream_message(
    layer: BaseChannelLayer,
    channel: str,
    message: StreamRequestMessage | StreamAnswerMessage,
) -> None:
    await layer.send(channel, cast("dict[str, Any]", message))


def _string_field(message: dict[Any, Any], name: str, limit: int = MAX_STREAM_FIELD_LENGTH) -> str:
    value = message.get(name)
    if not isinstance(value, str) or len(value) > limit:
        what = type(value).__name__ if not isinstance(value, str) else "a string too long"
        raise MalformedLayerMessage(f"a stream message's {name!r} is {what}")
    return value


def read_stream_request(message: object) -> StreamRequestMessage | None:
    """A message received on the event streams' channel, once every field is checked:
    a request, or None for a wake-up; :class:`MalformedLayerMessage` otherwise. (The
    token and the body are read by the stream, which knows their limits.)"""
    if not isinstance(message, dict):
        raise MalformedLayerMessage(f"not a mapping but {type(message).__name__}")
    kind = message.get("type")
    if kind == WAKE_UP:
        return None
    if kind not in (STREAM_SUBMIT, STREAM_STOP):
        raise MalformedLayerMessage(f"type {str(kind)[:40]!r} on the event streams' channel")
    token = _string_field(message, "token")
    principal = _string_field(message, "principal")
    server = _string_field(message, "server")
    reply = _string_field(message, "reply")
    if kind == STREAM_STOP:
        return stream_stop_message(
            token=token,
            principal=principal,
            server=server,
            operation_id=_string_field(message, "operation_id"),
            reply=reply,
        )
    method = message.get("method")
    if method not in ("GET", "POST"):
        raise MalformedLayerMessage(f"a stream submission's method is {str(method)[:10]!r}")
    body = message.get("body")
    if not isinstance(body, str):
        raise MalformedLayerMessage(f"a stream submission's body is {type(body).__name__}")
    return stream_submit_message(
        token=token,
        principal=principal,
        server=server,
        method="GET" if method == "GET" else "POST",
        body=body,
        reply=reply,
    )


def read_stream_answer(message: object) -> StreamAnswerMessage:
    """A forwarded request's answer, once checked; :class:`MalformedLayerMessage`
    otherwise."""
    if not isinstance(message, dict) or message.get("type") != STREAM_ANSWER:
        raise MalformedLayerMessage("not a stream answer")
    status = message.get("status")
    body = message.get("body")
    if type(status) is not int or not 200 <= status <= 599:
        raise MalformedLayerMessage(f"a stream answer's status is {str(status)[:10]!r}")
    if not isinstance(body, bytes) or len(body) > MAX_STREAM_ANSWER_BODY:
        raise MalformedLayerMessage("a stream answer's body is not bytes of a bounded size")
    return stream_answer_message(status, body)
