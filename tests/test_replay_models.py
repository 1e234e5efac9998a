"""A resumable model subscription: changes get event ids and a subscriber that comes back
gets the changes it missed (in-memory layer)."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry

import channels_graphql_typed as cgt
from tests.app.models import Note
from tests.helpers import WsSession
from tests.schema import Query

pytestmark = pytest.mark.django_db(transaction=True)


class OnNoteResumable(cgt.ModelSubscription[Note]):
    """Changes to notes, resumable."""

    replay = cgt.Replay(events=100)

    class Meta:
        fields = ["id", "text"]


@strawberry.type
class Subscription:
    on_note_resumable = OnNoteResumable.field()


class NoteConsumer(cgt.GraphqlWsConsumer):
    schema = strawberry.Schema(query=Query, subscription=Subscription)
    confirm_subscriptions = True


app = NoteConsumer.as_asgi()
NOTES = "subscription { onNoteResumable { action node { text } } }"


async def subscribe(subprotocol: str, after: str | None = None) -> WsSession:
    session = await WsSession.open(app, subprotocol)
    payload: dict[str, Any] = {"query": NOTES}
    if after is not None:
        payload["extensions"] = {cgt.RESUME_AFTER_EXTENSION: after}
    await session.send({"type": session.start_type, "id": "s", "payload": payload})
    assert await session.result("s") == {"data": None}
    return session


async def change(session: WsSession) -> tuple[str, str, str]:
    result = await session.result("s")
    value = result["data"]["onNoteResumable"]
    return value["action"], value["node"]["text"], result["extensions"][cgt.EVENT_ID_EXTENSION]


async def test_a_model_subscription_resumes_after_its_last_change(subprotocol: str) -> None:
    first = await subscribe(subprotocol)
    note = await Note.objects.acreate(text="one")
    action, text, last_id = await change(first)
    assert (action, text) == ("CREATED", "one")
    await first.close()
    note.text = "two"
    await note.asave()
    await note.adelete()
    second = await subscribe(subprotocol, after=last_id)
    assert (await change(second))[:2] == ("UPDATED", "two")
    assert (await change(second))[:2] == ("DELETED", "two")
    assert await second.nothing()
    await second.close()
