"""Payload serialization: bounded on both sides, total on untrusted bytes, and limited to
registered types (the channel layer is a trust boundary)."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import subprocess
import sys
import textwrap
from typing import Any

import hypothesis
import msgpack
import pytest
from hypothesis import strategies as st

import channels_graphql_typed as cgt
from channels_graphql_typed._serialization import (
    FORMAT_MARKER,
    MAX_PAYLOAD_DEPTH,
    MAX_PAYLOAD_SIZE,
    copy_payload,
    deserialize_payload,
    registered_payload_types,
    serialize_payload,
)
from tests.subscriptions import ChatEvent, Measurement, Tree

TAG = 20
TUPLE, ENUM, DATACLASS, MODEL, NAMED_TUPLE = 1, 4, 5, 6, 7


def tag(kind: int) -> msgpack.ExtType:
    return msgpack.ExtType(TAG, bytes([kind]))


def wire(tree: Any) -> bytes:
    """Bytes in this version's format, holding ``tree`` as an attacker wrote it."""
    return FORMAT_MARKER + msgpack.packb(tree, use_bin_type=True)


def old_format_bomb(levels: int) -> bytes:
    """The earlier format's nested tuples: each level a msgpack document inside the
    extension data of the level above (about 3.5 bytes a level)."""
    data = msgpack.packb(None)
    for _ in range(levels):
        data = msgpack.packb(msgpack.ExtType(7, data))
    return data


def nested_tree(levels: int) -> Tree:
    tree = Tree("leaf")
    for number in range(levels - 1):
        tree = Tree(f"level {number}", tree)
    return tree


def nested_lists(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


# --- the sender's bounds --------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        nested_tree,
        nested_lists,
        lambda levels: _nested(levels, lambda inner: (inner,)),
        lambda levels: _nested(levels, lambda inner: {"k": inner}),
        lambda levels: _nested(levels, lambda inner: frozenset({inner})),
    ],
    ids=["dataclasses", "lists", "tuples", "dicts", "frozensets"],
)
@pytest.mark.parametrize("levels", [MAX_PAYLOAD_DEPTH + 1, 330, 5000])
def test_the_sender_refuses_payloads_nested_too_deep(build: Any, levels: int) -> None:
    with pytest.raises(cgt.PayloadSerializationError, match=f"more than {MAX_PAYLOAD_DEPTH}"):
        serialize_payload(build(levels))


def _nested(levels: int, wrap: Any) -> Any:
    """``levels`` containers, one inside the other."""
    value: Any = 0
    for _ in range(levels):
        value = wrap(value)
    return value


def test_payloads_at_the_depth_limit_round_trip() -> None:
    for value in (nested_tree(MAX_PAYLOAD_DEPTH), nested_lists(MAX_PAYLOAD_DEPTH)):
        assert deserialize_payload(serialize_payload(value)) == value


def test_a_payload_that_refers_to_itself_is_refused_clearly() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(cgt.PayloadSerializationError, match="levels deep"):
        serialize_payload(loop)


def test_the_size_limit_applies_on_both_sides() -> None:
    serialize_payload("x" * (MAX_PAYLOAD_SIZE - 100))
    with pytest.raises(cgt.PayloadSerializationError, match=f"more than {MAX_PAYLOAD_SIZE}"):
        serialize_payload("x" * MAX_PAYLOAD_SIZE)
    with pytest.raises(cgt.PayloadSerializationError, match=f"more than {MAX_PAYLOAD_SIZE}"):
        deserialize_payload(wire("x" * MAX_PAYLOAD_SIZE))


# --- the decoder on hostile bytes -----------------------------------------------------------

HOSTILE: dict[str, bytes] = {
    "earlier format, 200 nested tuples (crashed the decoder)": old_format_bomb(200),
    "earlier format, 5000 nested tuples": old_format_bomb(5000),
    "100,000 nested arrays": FORMAT_MARKER + b"\x91" * 100_000 + b"\xc0",
    "100,000 nested maps": FORMAT_MARKER + b"\x81\xa1k" * 100_000 + b"\xc0",
    "nested tuples past the depth limit": wire(_nested(200, lambda inner: [tag(TUPLE), inner])),
    "an enum of a module that is not registered": wire([tag(ENUM), "this:X", 1]),
    "a named tuple of the standard library": wire([tag(NAMED_TUPLE), "os:stat_result", [0] * 10]),
    "a dataclass that is not registered": wire([tag(DATACLASS), "tests.settings:X", {}]),
    "a model that is not registered": wire([tag(MODEL), "auth.User", None, ["password"], ["x"]]),
    "a registered model with an unknown field": wire(
        [tag(MODEL), "app.Note", None, ["id", "secret"], [1, "x"]]
    ),
    "a registered dataclass with fields that are not a map": wire(
        [tag(DATACLASS), "tests.subscriptions:Measurement", [1, 2]]
    ),
    "an unknown tag": wire([msgpack.ExtType(TAG, b"\x63"), 1]),
    "a tag that is not first": wire([1, tag(TUPLE)]),
    "an unknown extension type": wire(msgpack.ExtType(99, b"")),
    "a bad date": wire(msgpack.ExtType(2, b"\xff\xfe")),
    "a list as a key": wire({(1, 2): 3}),
    "truncated": wire(["a" * 100])[:-10],
    "extra data": wire(1) + b"\x01",
    "empty": b"",
    "not bytes": "a string",  # type: ignore[dict-item]
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_decoder_refuses_hostile_bytes_with_its_error(name: str) -> None:
    with pytest.raises(cgt.PayloadSerializationError):
        deserialize_payload(HOSTILE[name])


def test_no_hostile_bytes_crash_a_decoding_process_or_import_a_module() -> None:
    # In a process of its own: a decoder that crashes (the earlier one exhausted the C
    # stack: SIGSEGV) must fail this test, not end the test run.
    script = textwrap.dedent(
        """
        import json, os, sys
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        import django
        django.setup()
        import tests.subscriptions
        from channels_graphql_typed._serialization import deserialize_payload
        outcomes = {}
        for name, data in json.loads(sys.stdin.read()).items():
            try:
                deserialize_payload(bytes.fromhex(data))
                outcomes[name] = "decoded"
            except Exception as error:
                outcomes[name] = type(error).__name__
        print(json.dumps({"outcomes": outcomes, "imported this": "this" in sys.modules}))
        """
    )
    hostile = {name: data.hex() for name, data in HOSTILE.items() if isinstance(data, bytes)}
    process = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(hostile),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    report = json.loads(process.stdout.splitlines()[-1])
    assert report["outcomes"] == dict.fromkeys(hostile, "PayloadSerializationError")
    assert report["imported this"] is False
    assert "Beautiful is better than ugly" not in process.stdout


leaf_extensions = st.builds(
    msgpack.ExtType,
    st.sampled_from([1, 2, 3, 4, 5, 6, TAG, 7, 99]),
    st.one_of(st.binary(max_size=20), st.sampled_from([bytes([k]) for k in range(9)])),
)
msgpack_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(),
        st.text(max_size=20),
        st.binary(max_size=20),
        st.sampled_from(
            ["tests.subscriptions:Measurement", "tests.subscriptions:Tree", "app.Note"]
        ),
        leaf_extensions,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=4).map(lambda items: [tag(1 + len(items) % 7), *items]),
        st.dictionaries(
            st.one_of(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1)), children, max_size=4
        ),
    ),
    max_leaves=40,
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.binary(max_size=512), st.booleans())
def test_arbitrary_bytes_decode_or_raise_the_decoders_error(data: bytes, marked: bool) -> None:
    with contextlib.suppress(cgt.PayloadSerializationError):
        deserialize_payload(FORMAT_MARKER + data if marked else data)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(msgpack_values)
def test_arbitrary_wire_trees_decode_or_raise_the_decoders_error(tree: Any) -> None:
    with contextlib.suppress(cgt.PayloadSerializationError):
        deserialize_payload(wire(tree))


payload_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=5), children, max_size=3),
        st.builds(Measurement, sensor=st.text(max_size=5), value=st.integers(0, 9)),
    ),
    max_leaves=60,
)


def _depth(value: Any) -> int:
    if isinstance(value, list | tuple):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, Measurement):
        return 1
    return 0


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(payload_values, st.integers(0, 40))
def test_payloads_round_trip_exactly_when_within_the_depth_limit(value: Any, wrap: int) -> None:
    for _ in range(wrap):
        value = [value]
    if _depth(value) > MAX_PAYLOAD_DEPTH:
        with pytest.raises(cgt.PayloadSerializationError):
            serialize_payload(value)
        return
    restored = deserialize_payload(serialize_payload(value))
    assert restored == value
    assert repr(restored) == repr(value)  # tuples stay tuples, lists lists


def _mutable_parts(value: Any) -> list[Any]:
    """Every object reachable from ``value`` that code could change in place."""
    if isinstance(value, list | set | dict):
        items = list(value.values()) if isinstance(value, dict) else list(value)
        return [value, *(part for item in items for part in _mutable_parts(item))]
    if isinstance(value, tuple | frozenset):
        return [part for item in value for part in _mutable_parts(item)]
    if dataclasses.is_dataclass(value) or hasattr(value, "_state"):
        fields = vars(value).values() if hasattr(value, "__dict__") else ()
        return [value, *(part for item in fields for part in _mutable_parts(item))]
    return []


def assert_independent_copy(original: Any) -> None:
    copied = copy_payload(original)
    assert repr(copied) == repr(original)
    shared = {id(part) for part in _mutable_parts(original)} & {
        id(part) for part in _mutable_parts(copied)
    }
    assert not shared, "the copy shares mutable parts with the original"


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(payload_values)
def test_a_copy_of_a_decoded_payload_shares_nothing_mutable(value: Any) -> None:
    decoded = deserialize_payload(serialize_payload(value))
    assert copy_payload(decoded) == decoded
    assert_independent_copy(decoded)


def test_copies_of_dataclasses_and_models_are_rebuilt_like_decoded_ones() -> None:
    from tests.app.models import Note

    tree = deserialize_payload(serialize_payload(Tree("a", Tree("b"))))
    assert copy_payload(tree) == tree
    assert_independent_copy(tree)
    note = deserialize_payload(serialize_payload(Note(pk=3, text="hi")))
    copied = copy_payload(note)
    assert (type(copied), copied.pk, copied.text) == (Note, 3, "hi")
    assert copied is not note
    assert copied._state is not note._state
    assert copy_payload(ChatEvent("r", "t", "s", "c")) == ChatEvent("r", "t", "s", "c")


# --- the registry ---------------------------------------------------------------------------


class Unregistered(enum.Enum):
    A = 1


@dataclasses.dataclass
class AlsoUnregistered:
    x: int


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (Unregistered.A, "tests.test_serialization:Unregistered"),
        (AlsoUnregistered(1), "tests.test_serialization:AlsoUnregistered"),
        ({"nested": [AlsoUnregistered(1)]}, "tests.test_serialization:AlsoUnregistered"),
    ],
)
def test_the_sender_refuses_unregistered_types_naming_them(payload: Any, name: str) -> None:
    with pytest.raises(cgt.PayloadSerializationError, match=f"{name}.*register_payload_type"):
        serialize_payload(payload)


def test_the_types_reachable_from_declarations_are_registered() -> None:
    from tests.app.models import Message, Note
    from tests.model_subscriptions import OnMessageChanged
    from tests.subscriptions import Color, Everything, OnNewChatMessage

    registered = set(registered_payload_types())
    # A payload type parameter, what its fields reach, and the subscription class itself.
    assert {ChatEvent, OnNewChatMessage, Tree, Measurement} <= registered
    # payload_types of a subscription typed Any, and what they reach.
    assert {Everything, Note, Color} <= registered
    # A model subscription's ModelEvent[Message]: through the generic base's parameter.
    assert {cgt.ModelEvent, cgt.ModelAction, Message, OnMessageChanged} <= registered
    assert AlsoUnregistered not in registered


@dataclasses.dataclass
class RegisteredLater:
    x: int
    color: Unregistered


def test_registering_by_hand_lets_a_type_and_what_it_reaches_travel() -> None:
    value = RegisteredLater(1, Unregistered.A)
    if RegisteredLater not in set(registered_payload_types()):
        with pytest.raises(cgt.PayloadSerializationError, match="RegisteredLater"):
            serialize_payload(value)
        data = FORMAT_MARKER + msgpack.packb(
            [tag(DATACLASS), "tests.test_serialization:RegisteredLater", {"x": 1}]
        )
        with pytest.raises(cgt.PayloadSerializationError, match="not a registered"):
            deserialize_payload(data)
    assert cgt.register_payload_type(RegisteredLater) is RegisteredLater
    assert deserialize_payload(serialize_payload(value)) == value


def test_only_payload_kinds_can_be_registered() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    cgt.register_payload_type(Local)
    with pytest.raises(cgt.PayloadSerializationError, match="module level"):
        serialize_payload(Local(1))
    with pytest.raises(TypeError, match="dataclasses, enums, named tuples and Django models"):
        cgt.register_payload_type(int)
