"""The chat example's limit on failed logins (``chat.login_attempts``), on a fake clock."""

from __future__ import annotations

import pytest

from examples.chat.chat.login_attempts import LoginAttemptLimiter, TooManyLoginAttempts


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def limiter(clock: FakeClock, *, max_keys: int = 100) -> LoginAttemptLimiter:
    return LoginAttemptLimiter(max_failures=3, window=60.0, max_keys=max_keys, clock=clock)


def test_failures_past_the_limit_are_refused_until_the_oldest_leaves_the_window(
    clock: FakeClock,
) -> None:
    attempts = limiter(clock)
    for _ in range(3):
        attempts.begin(["user"])
        clock.now += 10
    with pytest.raises(TooManyLoginAttempts) as refused:
        attempts.begin(["user"])
    # The first failure was 30 s ago: it leaves the 60 s window in 30 s.
    assert refused.value.retry_after == 30
    assert str(refused.value) == "Too many login attempts; try again in 30 s"
    clock.now += 29.5
    with pytest.raises(TooManyLoginAttempts, match="try again in 1 s"):
        attempts.begin(["user"])
    clock.now += 0.5
    attempts.begin(["user"])  # one slot is free again, then none
    with pytest.raises(TooManyLoginAttempts, match="try again in 10 s"):
        attempts.begin(["user"])


def test_running_attempts_count_and_successes_do_not(clock: FakeClock) -> None:
    attempts = limiter(clock)
    running = [attempts.begin(["user"]) for _ in range(3)]  # none has ended yet
    with pytest.raises(TooManyLoginAttempts):
        attempts.begin(["user"])
    attempts.succeeded(running[0])
    attempts.succeeded(running[0])  # twice changes nothing: the others are still failures
    attempts.begin(["user"])
    with pytest.raises(TooManyLoginAttempts):
        attempts.begin(["user"])


def test_an_attempt_counts_against_each_of_its_keys_and_is_refused_by_any(
    clock: FakeClock,
) -> None:
    attempts = limiter(clock)
    for number in range(3):
        attempts.begin([f"user-{number}", "connection"])
    # The connection is at its limit, whatever the username...
    with pytest.raises(TooManyLoginAttempts):
        attempts.begin(["user-new", "connection"])
    # ...and the refused attempt did not count against that username.
    for number in range(3):
        attempts.begin(["user-new", f"connection-{number}"])
    with pytest.raises(TooManyLoginAttempts):
        attempts.begin(["user-new", "another connection"])


def test_a_key_named_twice_counts_once(clock: FakeClock) -> None:
    attempts = limiter(clock)
    attempts.begin(["user", "user"])
    attempts.begin(["user"])
    attempts.begin(["user"])
    with pytest.raises(TooManyLoginAttempts):
        attempts.begin(["user"])


def test_keys_are_forgotten_once_their_failures_leave_the_window(clock: FakeClock) -> None:
    attempts = limiter(clock)
    for number in range(40):
        attempts.begin([f"key-{number}"])
        clock.now += 1
    assert len(attempts) == 40
    clock.now += 20  # key-0's failure is 60 s old, key-1's 59 s
    attempts.begin(["late"])
    assert len(attempts) == 40
    clock.now += 40
    attempts.begin(["later"])  # every key-N failure has left the window, not "late"'s
    assert len(attempts) == 2


def test_at_most_max_keys_are_kept_the_least_recently_failed_forgotten_first(
    clock: FakeClock,
) -> None:
    attempts = limiter(clock, max_keys=50)
    for _ in range(3):
        attempts.begin(["first"])
    with pytest.raises(TooManyLoginAttempts):
        attempts.begin(["first"])
    for number in range(1000):
        attempts.begin([f"key-{number}"])
        assert len(attempts) <= 50
    attempts.begin(["first"])  # forgotten
    for _ in range(2):
        attempts.begin(["key-999"])  # the most recent key is kept
    with pytest.raises(TooManyLoginAttempts):
        attempts.begin(["key-999"])


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_failures": 0, "window": 60.0, "max_keys": 10},
        {"max_failures": 5, "window": 0.0, "max_keys": 10},
        {"max_failures": 5, "window": 60.0, "max_keys": 0},
    ],
)
def test_limits_must_be_positive(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        LoginAttemptLimiter(**arguments)  # type: ignore[arg-type]
