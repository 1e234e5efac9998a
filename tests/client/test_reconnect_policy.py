"""The reconnection policy (:mod:`channels_graphql_typed._client.reconnect`), without an
event loop: backoff, fatal close codes, ``should_retry``, the client's state changes."""

from __future__ import annotations

import copy
import pickle

import pytest

import channels_graphql_typed as cgt
from channels_graphql_typed._client.reconnect import (
    ALLOWED_TRANSITIONS,
    FATAL_CLOSE_CODES,
    backoff_delay,
    is_fatal,
    retry_by_default,
    should_reconnect,
)

State = cgt.GraphqlWsClientState


def closed(code: int) -> cgt.GraphqlWsConnectionClosed:
    return cgt.GraphqlWsConnectionClosed(code, "reason")


def always(error: cgt.GraphqlWsClientError) -> bool:
    return True


def never(error: cgt.GraphqlWsClientError) -> bool:
    return False


@pytest.mark.parametrize("retry", [0, 1, 2, 5])
def test_the_backoff_is_exponential_with_a_jitter_between_the_bounds(retry: int) -> None:
    assert backoff_delay(retry, lambda low, high: low) == 2**retry + 0.3
    assert backoff_delay(retry, lambda low, high: high) == 2**retry + 3.0


def test_the_default_backoff_draws_its_jitter() -> None:
    delays = {backoff_delay(0) for _ in range(20)}
    assert all(1.3 <= delay <= 4.0 for delay in delays)
    assert len(delays) > 1


def test_the_fatal_codes_are_those_the_issue_names_and_bad_response() -> None:
    assert {
        cgt.CloseCode.BAD_REQUEST,
        cgt.CloseCode.UNAUTHORIZED,
        cgt.CloseCode.FORBIDDEN,
        cgt.CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE,
        cgt.CloseCode.SUBSCRIBER_ALREADY_EXISTS,
        cgt.CloseCode.TOO_MANY_INITIALISATION_REQUESTS,
        cgt.CloseCode.INTERNAL_ERROR,
        cgt.CloseCode.BAD_RESPONSE,
    } == FATAL_CLOSE_CODES
    assert [int(code) for code in sorted(FATAL_CLOSE_CODES)] == [
        4004, 4400, 4401, 4403, 4406, 4409, 4429, 4500
    ]  # fmt: skip


@pytest.mark.parametrize("code", sorted(FATAL_CLOSE_CODES))
def test_a_fatal_code_is_never_retried_whatever_should_retry_says(code: int) -> None:
    assert is_fatal(closed(code))
    assert not should_reconnect(closed(code), 0, 100, always)


@pytest.mark.parametrize("code", [1000, 1001, 1006, 1011, 1012, 4408, 4499])
def test_other_closes_are_retried_while_attempts_remain(code: int) -> None:
    assert not is_fatal(closed(code))
    assert should_reconnect(closed(code), 0, 3, retry_by_default)
    assert should_reconnect(closed(code), 2, 3, retry_by_default)
    assert not should_reconnect(closed(code), 3, 3, retry_by_default)


def test_no_attempts_means_no_reconnection() -> None:
    assert not should_reconnect(closed(1012), 0, 0, always)


def test_should_retry_has_the_last_word_on_the_rest() -> None:
    seen: list[cgt.GraphqlWsClientError] = []

    def record(error: cgt.GraphqlWsClientError) -> bool:
        seen.append(error)
        return False

    error = closed(1012)
    assert not should_reconnect(error, 0, 5, record)
    assert seen == [error]
    assert not should_reconnect(closed(1012), 0, 5, never)


def test_by_default_closes_and_timeouts_are_retried_protocol_errors_are_not() -> None:
    assert retry_by_default(closed(1006))
    assert retry_by_default(cgt.GraphqlWsTimeoutError("Waiting for connection_ack"))
    assert not retry_by_default(cgt.GraphqlWsProtocolError("garbage"))
    assert not is_fatal(cgt.GraphqlWsProtocolError("garbage"))


def test_every_state_can_close_and_closed_is_final() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(State)
    assert ALLOWED_TRANSITIONS[State.CLOSED] == frozenset()
    for state in set(State) - {State.CLOSED}:
        assert State.CLOSED in ALLOWED_TRANSITIONS[state]


def test_only_a_failed_connection_leads_to_reconnecting() -> None:
    reaching = {
        state for state, targets in ALLOWED_TRANSITIONS.items() if State.RECONNECTING in targets
    }
    assert reaching == {State.CONNECTING, State.CONNECTED, State.RECONNECTING}
    assert State.RECONNECTING not in ALLOWED_TRANSITIONS[State.IDLE]
    assert State.CONNECTED not in ALLOWED_TRANSITIONS[State.IDLE]


def test_the_exhausted_error_is_a_close_with_its_context() -> None:
    error = cgt.GraphqlWsRetriesExhausted(1006, "Cannot connect", None, 3)
    assert isinstance(error, cgt.GraphqlWsConnectionClosed)
    assert (error.code, error.reason, error.payload, error.attempts) == (
        1006,
        "Cannot connect",
        None,
        3,
    )
    assert (
        str(error)
        == "Gave up after 3 reconnection attempts: WebSocket closed with code 1006: Cannot connect"
    )
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert isinstance(clone, cgt.GraphqlWsRetriesExhausted)
        assert (clone.code, clone.attempts) == (1006, 3)
