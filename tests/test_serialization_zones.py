"""A zone-aware datetime keeps its ZoneInfo zone across the channel layer, so that DST
arithmetic in ``publish`` is right."""

from __future__ import annotations

import datetime
import zoneinfo

import msgpack
import pytest

import channels_graphql_typed as cgt
from channels_graphql_typed._serialization import deserialize_payload, serialize_payload
from tests.test_serialization import wire

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def round_trip(value: object) -> object:
    return deserialize_payload(serialize_payload(value))


def test_a_zoneinfo_datetime_comes_back_in_its_zone() -> None:
    before_dst = datetime.datetime(2026, 3, 28, 12, 0, tzinfo=PARIS)
    decoded = round_trip(before_dst)
    assert isinstance(decoded, datetime.datetime)
    assert decoded == before_dst
    assert decoded.tzinfo is PARIS
    # A day later in Paris is 23 hours later: the offset alone would say 24.
    next_day = (decoded + datetime.timedelta(days=1)).astimezone(datetime.UTC)
    assert next_day - before_dst.astimezone(datetime.UTC) == datetime.timedelta(hours=23)


def test_an_ambiguous_wall_time_keeps_its_fold() -> None:
    second = datetime.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS)
    decoded = round_trip(second)
    assert isinstance(decoded, datetime.datetime)
    assert decoded.fold == 1
    assert decoded.utcoffset() == datetime.timedelta(hours=1)


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2026, 1, 1, 12, 0),
        datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC),
        datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=5))),
    ],
)
def test_naive_and_fixed_offset_datetimes_are_unchanged(value: datetime.datetime) -> None:
    decoded = round_trip(value)
    assert decoded == value
    assert isinstance(decoded, datetime.datetime)
    assert decoded.tzinfo == value.tzinfo


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T12:00:00+01:00[Not/AZone]",
        "2026-01-01T12:00:00+01:00[../../etc/passwd]",
        "2026-01-01T12:00:00+01:00[/etc/localtime]",
        "2026-01-01T12:00:00+01:00]",
        "2026-01-01T12:00:00+01:00[" + "A" * 300 + "]",
    ],
)
def test_a_bad_zone_from_the_layer_is_the_decoders_error(text: str) -> None:
    with pytest.raises(cgt.PayloadSerializationError):
        deserialize_payload(wire(msgpack.ExtType(1, text.encode())))
