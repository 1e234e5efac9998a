"""The benchmark harness still works: one tiny measurement per server mode.

No timing is asserted here (the machines are shared and noisy): only that every
subscriber gets every event exactly once, in order, through the real processes.
"""

from __future__ import annotations

import pytest

from bench.run import Measurement, measure_once


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cgt", "raw", "asgi", "sse"])
def test_fan_out_measurement_delivers_everything(mode: str) -> None:
    result = measure_once(
        Measurement("smoke", "fan_out", mode, "memory", {"subscribers": 20, "count": 5})
    )
    assert result["delivered"] == result["expected"] == 100
    assert (result["lost"], result["duplicates"], result["reordered"]) == (0, 0, 0)
    assert result["cpu_seconds"] >= 0


@pytest.mark.slow
def test_replay_measurements_deliver_everything() -> None:
    # The resumable class's fan-out, then the resume of missed events after an id.
    result = measure_once(
        Measurement(
            "smoke",
            "fan_out",
            "replay",
            "memory",
            {"subscribers": 20, "count": 5, "replayed": True},
        )
    )
    assert result["delivered"] == result["expected"] == 100
    assert (result["lost"], result["duplicates"], result["reordered"]) == (0, 0, 0)
    resumed = measure_once(Measurement("smoke", "resume", "replay", "memory", {"count": 50}))
    assert resumed["delivered"] == resumed["expected"] == 50
    assert (resumed["lost"], resumed["duplicates"], resumed["reordered"]) == (0, 0, 0)


@pytest.mark.slow
def test_round_trip_measurement_runs() -> None:
    result = measure_once(
        Measurement("smoke", "round_trip", "cgt", "memory", {"sockets": 2, "duration": 0.3})
    )
    assert result["operations"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cgt", "strawberry"])
def test_http_round_trip_measurement_runs(mode: str) -> None:
    result = measure_once(
        Measurement("smoke", "http_round_trip", mode, "memory", {"connections": 2, "duration": 0.3})
    )
    assert result["operations"] > 0
