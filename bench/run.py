"""Run the benchmark suite and print a table: ``python -m bench.run [--quick] [--only NAME]``.

Each measurement starts a fresh server process (uvicorn, uvloop, one worker) and a
separate load-client process on 127.0.0.1, samples the server's CPU time and memory
around the measured part, and stops both. Every figure is the median of ``--repeat``
runs (min and max beside it) and is compared with the baselines measured in the same
run: "raw" (a plain Channels consumer forwarding pre-rendered frames) and "asgi" (raw
ASGI fan-out without Channels). Targets print PASS or FAIL; nothing here is a test.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OBSERVED = "observed"
"""The mode of ``cgt`` with Prometheus metrics and every OpenTelemetry span recorded."""
OBSERVING: dict[str, str] = {OBSERVED: "all", "metrics": "metrics", "sampled": "sampled"}
"""The modes of ``cgt`` observed, and what their server observes (``BENCH_OBSERVE``):
metrics and every span, metrics only, metrics and 1% of the traces."""
TEN_THOUSAND = "fan-out N=10000 at 1/s for 60 s"
REPLAY = "replay"
"""The mode of ``cgt`` whose subscribers listen to the resumable class
(``onBenchReplayed``): every broadcast gets an event id and a place in the history."""
SSE = "sse"
"""The mode of ``cgt`` whose load client subscribes over Server-Sent Events (distinct
connections mode, one POST per subscriber) instead of WebSocket."""


@dataclasses.dataclass(frozen=True)
class Measurement:
    name: str
    kind: str  # fan_out, idle, round_trip, http_round_trip
    mode: str
    layer: str
    params: dict[str, Any]
    extensions: bool = False
    """Serve the schema with Strawberry's MaskErrors and QueryDepthLimiter extensions."""

    @property
    def server_mode(self) -> str:
        """The server's BENCH_MODE: ``observed`` is ``cgt`` with metrics and tracing,
        ``sse`` is ``cgt`` subscribed to over Server-Sent Events."""
        return "cgt" if self.mode in OBSERVING or self.mode in (SSE, REPLAY) else self.mode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def start_server(
    mode: str, layer: str, port: int, *, extensions: bool = False, observe: str = ""
) -> subprocess.Popen[bytes]:
    environment = dict(os.environ, BENCH_MODE=mode, BENCH_LAYER=layer, PYTHONPATH=str(ROOT))
    environment["BENCH_EXTENSIONS"] = "1" if extensions else ""
    # The benchmark's own settings, also when the caller has others (the test suite).
    environment["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    environment["BENCH_OBSERVE"] = observe
    environment["BENCH_REDIS_PREFIX"] = f"cgt-bench-{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.app:application",
            "--host",
            HOST,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--ws-max-queue",
            "100000",
        ],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the {mode} server did not start")


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def measure_once(measurement: Measurement) -> dict[str, Any]:
    port = free_port()
    server = start_server(
        measurement.server_mode,
        measurement.layer,
        port,
        extensions=measurement.extensions,
        observe=OBSERVING.get(measurement.mode, ""),
    )
    scenario = dict(measurement.params, kind=measurement.kind, port=port)
    if measurement.mode == SSE:
        scenario["transport"] = SSE
    client = subprocess.Popen(
        [sys.executable, "-m", "bench.client", json.dumps(scenario)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        rss_before = rss_bytes(server.pid)
        assert client.stdout is not None
        assert client.stdin is not None
        ready = client.stdout.readline().strip()
        if ready != "READY":
            raise RuntimeError(f"the load client failed before it was ready: {ready!r}")
        time.sleep(0.5)  # let the server settle before sampling
        cpu_before = cpu_seconds(server.pid)
        rss_ready = rss_bytes(server.pid)
        client.stdin.write("FIRE\n")
        client.stdin.flush()
        line = client.stdout.readline()
        cpu_after = cpu_seconds(server.pid)
        client.wait(120)
        if not line:
            raise RuntimeError("the load client printed no result")
        result: dict[str, Any] = json.loads(line)
        result["cpu_seconds"] = cpu_after - cpu_before
        result["rss_growth"] = rss_ready - rss_before
        result["rss_ready"] = rss_ready
        return result
    finally:
        stop(client)
        stop(server)
        for stream in (client.stdin, client.stdout):
            if stream is not None:
                stream.close()


def summarize(runs: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
    values = [float(run[key]) for run in runs]
    return statistics.median(values), min(values), max(values)


def fan_out(name: str, layer: str, modes: list[str], **params: Any) -> list[Measurement]:
    return [Measurement(name, "fan_out", mode, layer, params) for mode in modes]


def suite(quick: bool) -> list[Measurement]:
    scale = 0.2 if quick else 1.0
    n100 = {"subscribers": 100, "count": int(200 * scale) or 10}
    n1000 = {"subscribers": int(1000 * scale), "count": 20}
    n5000 = {"subscribers": int(5000 * scale), "count": 5, "rate": 1, "timeout": 30}
    measurements: list[Measurement] = []
    measurements += fan_out("fan-out N=100", "memory", ["raw", "asgi", "cgt"], **n100)
    measurements += fan_out("fan-out N=1000", "memory", ["raw", "asgi", "cgt"], **n1000)
    measurements += fan_out(
        "observed fan-out N=1000", "memory", ["cgt", OBSERVED, "metrics", "sampled"], **n1000
    )
    # The same fan-out of a resumable class (replay history, event ids) against the
    # plain one, on the in-memory ring and on Redis Streams; then the resume of 1,000
    # missed events by one subscription.
    for layer in ("memory", "redis_pubsub"):
        name = "replay fan-out N=1000" + ("" if layer == "memory" else f" {layer}")
        measurements += fan_out(name, layer, ["cgt"], **n1000)
        measurements.append(Measurement(name, "fan_out", REPLAY, layer, dict(n1000, replayed=True)))
        measurements.append(
            Measurement(
                "resume of 1000 missed" + ("" if layer == "memory" else f" {layer}"),
                "resume",
                REPLAY,
                layer,
                {"count": 1000},
            )
        )
    # The same server and subscription, over Server-Sent Events against WebSocket.
    measurements += fan_out("SSE fan-out N=1000", "memory", ["cgt", SSE], **n1000)
    # The raw baseline needs minutes just to join 5000 sockets to a group (the in-memory
    # layer scans every member on each operation): the target for N=5000 is absolute.
    measurements += fan_out("fan-out N=5000 at 1/s", "memory", ["cgt"], **n5000)
    # Ten thousand sockets of one subscription each on one process, a broadcast a second
    # for a minute: the run also reports how long the sockets took to open and the
    # server's resident memory with all of them open.
    n10000 = {
        "subscribers": int(10_000 * scale),
        "count": 60 if not quick else 5,
        "rate": 1,
        "timeout": 120,
    }
    measurements += fan_out(TEN_THOUSAND, "memory", ["cgt"], **n10000)
    measurements += fan_out("10 groups N=1000", "memory", ["raw", "cgt"], groups=10, **n1000)
    measurements += fan_out("half SKIP N=1000", "memory", ["raw", "cgt"], skip_half=True, **n1000)
    measurements += [
        Measurement(
            "legacy graphql-ws N=1000",
            "fan_out",
            "cgt",
            "memory",
            dict(n1000, subprotocol="graphql-ws"),
        )
    ]
    for layer in ("redis_pubsub", "redis_core"):
        measurements += fan_out(f"fan-out N=100 {layer}", layer, ["raw", "cgt"], **n100)
        measurements += fan_out(f"fan-out N=1000 {layer}", layer, ["raw", "cgt"], **n1000)
        measurements += fan_out(
            f"10 groups N=1000 {layer}", layer, ["raw", "cgt"], groups=10, **n1000
        )
        measurements += fan_out(
            f"half SKIP N=1000 {layer}", layer, ["raw", "cgt"], skip_half=True, **n1000
        )
    measurements.append(
        Measurement(
            "churn: 50 re-subscribing / 500 ms",
            "churn",
            "cgt",
            "memory",
            {"subscribers": int(500 * scale), "churners": 50, "rate": 20, "duration": 5.0},
        )
    )
    idle = {"subscribers": int(1000 * scale), "count": 0, "idle": True}
    measurements += [
        Measurement("idle memory, 1 per socket", "idle", mode, "memory", idle)
        for mode in ("raw", "cgt")
    ]
    measurements.append(
        Measurement(
            "idle memory, 10 per socket",
            "idle",
            "cgt",
            "memory",
            dict(idle, subscribers=int(100 * scale), per_socket=10),
        )
    )
    for sockets in (1, 100):
        measurements += [
            Measurement(
                f"query round trip, {sockets} socket(s)",
                "round_trip",
                mode,
                "memory",
                {"sockets": sockets, "duration": 2.0 if quick else 3.0},
            )
            for mode in ("strawberry", "cgt")
        ]
    for connections in (1, 10):
        measurements += [
            Measurement(
                f"HTTP query round trip, {connections} conn.",
                "http_round_trip",
                mode,
                "memory",
                {"connections": connections, "duration": 2.0 if quick else 3.0},
            )
            for mode in ("strawberry", "cgt")
        ]
    # The same with extensions on the schema (both servers run them).
    measurements += [
        Measurement(
            "query round trip with extensions, 1 socket(s)",
            "round_trip",
            mode,
            "memory",
            {"sockets": 1, "duration": 2.0 if quick else 3.0},
            extensions=True,
        )
        for mode in ("strawberry", "cgt")
    ]
    measurements += [
        Measurement(
            "fan-out N=1000 with extensions", "fan_out", mode, "memory", n1000, extensions=True
        )
        for mode in ("raw", "cgt")
    ]
    return measurements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller N, one repetition")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    arguments = parser.parse_args()
    repeat = 1 if arguments.quick else arguments.repeat
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    measurements = [
        m for m in suite(arguments.quick) if not arguments.only or arguments.only in m.name
    ]
    # Round after round of every measurement, rather than every repetition of one, then
    # the next: a machine whose load drifts weighs on every mode alike.
    for round_number in range(1, repeat + 1):
        for measurement in measurements:
            runs = results.setdefault((measurement.name, measurement.mode), [])
            try:
                runs.append(measure_once(measurement))
            except Exception as exc:
                print(f"! {measurement.name} [{measurement.mode}]: {exc}", file=sys.stderr)
            print(
                f"measured {measurement.name} [{measurement.mode}] ({round_number}/{repeat})",
                file=sys.stderr,
                flush=True,
            )
    report(measurements, results)


def report(
    measurements: list[Measurement], results: dict[tuple[str, str], list[dict[str, Any]]]
) -> None:
    print()
    print(
        f"{'scenario':34} {'mode':10} {'median/s':>10} {'min':>9} {'max':>9} "
        f"{'x raw':>6} {'x asgi':>6} {'p50 ms':>7} {'p99 ms':>7} {'burst s':>7} "
        f"{'cpu s/1k':>8} {'lost':>5} {'dup':>4} {'reord':>5}"
    )
    medians: dict[tuple[str, str], float] = {}
    for measurement in measurements:
        runs = results.get((measurement.name, measurement.mode)) or []
        if not runs:
            print(f"{measurement.name:34} {measurement.mode:10} (no successful run)")
            continue
        if measurement.kind == "idle":
            growth = [run["rss_growth"] / max(1, run["subscribers"]) * 1000 for run in runs]
            medians[(measurement.name, measurement.mode)] = statistics.median(growth)
            raw = medians.get((measurement.name, "raw"))
            ratio = f"{statistics.median(growth) / raw:6.2f}" if raw else "      "
            extra = ""
            per_socket = int(measurement.params.get("per_socket", 1))
            single = medians.get(("idle memory, 1 per socket", measurement.mode))
            if per_socket > 1 and single:
                # What each subscription beyond the first costs on an open socket: a
                # socket of N subscriptions, less a socket of one, over N - 1.
                socket_bytes = statistics.median(growth) * per_socket / 1000
                each = (socket_bytes - single / 1000) / (per_socket - 1)
                extra = f"; {each / 1024:.1f} KB per extra subscription on a socket"
            print(
                f"{measurement.name:34} {measurement.mode:10} "
                f"{statistics.median(growth) / 1e6:8.2f}MB {min(growth) / 1e6:8.2f}M "
                f"{max(growth) / 1e6:8.2f}M {ratio}  (RSS growth per 1000 subscriptions{extra})"
            )
            continue
        if measurement.kind == "churn":
            p50 = statistics.median(run["subscribe_p50"] for run in runs) * 1000
            p99 = statistics.median(run["subscribe_p99"] for run in runs) * 1000
            print(
                f"{measurement.name:34} {measurement.mode:10} subscribe latency p50 "
                f"{p50:.1f} ms, p99 {p99:.1f} ms over "
                f"{statistics.median(run['resubscriptions'] for run in runs):.0f} "
                f"re-subscriptions; steady subscribers lost "
                f"{sum(run['lost'] for run in runs)}"
            )
            continue
        median, low, high = summarize(runs, "per_second")
        medians[(measurement.name, measurement.mode)] = median
        raw = medians.get((measurement.name, "raw"))
        asgi = medians.get((measurement.name, "asgi"))
        x_raw = f"{median / raw:6.2f}" if raw else "      "
        unobserved = medians.get((measurement.name, "cgt"))
        if (measurement.mode in OBSERVING or measurement.mode in (SSE, REPLAY)) and unobserved:
            x_raw = f"{median / unobserved:6.2f}"  # x cgt: unobserved, over WebSocket
        x_asgi = f"{median / asgi:6.2f}" if asgi else "      "
        if measurement.kind == "resume":
            seconds = statistics.median(run["seconds"] for run in runs)
            print(
                f"{measurement.name:34} {measurement.mode:10} {median:10.0f} {low:9.0f} "
                f"{high:9.0f}  (events/s; {seconds:.3f} s to resume all, "
                f"slowest {max(run['seconds'] for run in runs):.3f} s; lost "
                f"{sum(run['lost'] for run in runs)}, dup "
                f"{sum(run['duplicates'] for run in runs)}, reord "
                f"{sum(run['reordered'] for run in runs)})"
            )
            continue
        if measurement.kind in ("round_trip", "http_round_trip"):
            peer = medians.get((measurement.name, "strawberry"))
            x_raw = f"{median / peer:6.2f}" if peer and measurement.mode != "strawberry" else x_raw
            print(
                f"{measurement.name:34} {measurement.mode:10} {median:10.0f} {low:9.0f} "
                f"{high:9.0f} {x_raw} (x strawberry)"
            )
            continue
        delivered = statistics.median(run["delivered"] for run in runs)
        cpu = statistics.median(run["cpu_seconds"] for run in runs)
        print(
            f"{measurement.name:34} {measurement.mode:10} {median:10.0f} {low:9.0f} "
            f"{high:9.0f} {x_raw} {x_asgi} "
            f"{statistics.median(r['p50'] for r in runs) * 1000:7.1f} "
            f"{statistics.median(r['p99'] for r in runs) * 1000:7.1f} "
            f"{statistics.median(r['burst_seconds'] for r in runs):7.2f} "
            f"{cpu / max(delivered, 1) * 1000:8.3f} "
            f"{sum(r['lost'] for r in runs):5d} {sum(r['duplicates'] for r in runs):4d} "
            f"{sum(r['reordered'] for r in runs):5d}"
        )
        if measurement.name == TEN_THOUSAND:
            print(
                f"{'':34} {'':10} sockets opened in "
                f"{statistics.median(run['connect_seconds'] for run in runs):.1f} s "
                f"(median), server RSS with all open "
                f"{statistics.median(run['rss_ready'] for run in runs) / 2**20:.0f} MiB"
            )
        # Any fan-out: the sockets the server closed before the end explain its losses.
        closed = collections.Counter[str]()
        for run in runs:
            closed.update(run.get("closed_early", {}))
        if closed:
            print(f"{'':34} {'':10} sockets the server closed: {dict(closed)}")
    print()
    targets(measurements, results, medians)


def targets(
    measurements: list[Measurement],
    results: dict[tuple[str, str], list[dict[str, Any]]],
    medians: dict[tuple[str, str], float],
) -> None:
    def ratio(name: str, mode: str, baseline: str) -> float | None:
        ours, base = medians.get((name, mode)), medians.get((name, baseline))
        return ours / base if ours is not None and base else None

    def verdict(
        label: str, value: float | None, minimum: float | None = None, maximum: float | None = None
    ) -> None:
        if value is None:
            print(f"  n/a   {label}")
            return
        ok = (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
        print(f"  {'PASS' if ok else 'FAIL'}  {label}: {value:.2f}")

    print("Targets:")
    verdict("fan-out N=1000 memory, x raw >= 5", ratio("fan-out N=1000", "cgt", "raw"), 5)
    verdict("fan-out N=1000 memory, x asgi >= 0.25", ratio("fan-out N=1000", "cgt", "asgi"), 0.25)
    verdict(
        "fan-out N=1000 redis pub/sub, x raw >= 5",
        ratio("fan-out N=1000 redis_pubsub", "cgt", "raw"),
        5,
    )

    def worst_p99_without_loss(name: str) -> float | None:
        """The worst run's p99 of ``name``; infinite when any run lost a notification."""
        runs = results.get((name, "cgt")) or []
        if not runs:
            return None
        if sum(run["lost"] for run in runs):
            return float("inf")
        return max(float(run["p99"]) for run in runs)

    verdict(
        "N=5000 at 1/s, p99 seconds <= 2 and no loss",
        worst_p99_without_loss("fan-out N=5000 at 1/s"),
        maximum=2,
    )
    verdict(
        "N=10000 at 1/s for 60 s, p99 seconds < 1 and no loss",
        worst_p99_without_loss(TEN_THOUSAND),
        maximum=0.999,
    )
    # Tracing as deployed: the metrics and a ratio sampler (1% of the traces). Every
    # span recorded is reported beside it (a span per subscriber and event costs more
    # than the fan-out itself), not held to the target.
    verdict(
        "fan-out N=1000 with metrics and 1% of traces, x without >= 0.9",
        ratio("observed fan-out N=1000", "sampled", "cgt"),
        0.9,
    )

    def cpu_per_delivered(name: str, mode: str) -> float | None:
        runs = results.get((name, mode)) or []
        if not runs:
            return None
        each: list[float] = [run["cpu_seconds"] / max(1, run["delivered"]) for run in runs]
        return statistics.median(each)

    for suffix in ("", " redis_pubsub"):
        name = f"replay fan-out N=1000{suffix}"
        replayed, plain = cpu_per_delivered(name, REPLAY), cpu_per_delivered(name, "cgt")
        verdict(
            f"{name}: CPU per delivered, resumable x plain <= 1.3",
            replayed / plain if replayed is not None and plain else None,
            maximum=1.3,
        )
        resumes = results.get((f"resume of 1000 missed{suffix}", REPLAY)) or []
        verdict(
            f"resume of 1000 missed{suffix}: seconds (median) < 1, nothing lost",
            statistics.median(run["seconds"] for run in resumes)
            if resumes and not any(run["lost"] for run in resumes)
            else (float("inf") if resumes else None),
            maximum=0.999,
        )
    verdict(
        "fan-out N=1000 over SSE, x the same over WebSocket >= 0.7",
        ratio("SSE fan-out N=1000", SSE, "cgt"),
        0.7,
    )
    verdict("10 groups N=1000, x raw >= 3", ratio("10 groups N=1000", "cgt", "raw"), 3)
    verdict(
        "idle memory per subscription, x raw <= 1.25",
        ratio("idle memory, 1 per socket", "cgt", "raw"),
        maximum=1.25,
    )
    verdict(
        "query round trip 1 socket, x strawberry >= 1.5",
        ratio("query round trip, 1 socket(s)", "cgt", "strawberry"),
        1.5,
    )
    verdict(
        "HTTP query round trip 1 connection, x strawberry's AsyncGraphQLView >= 1.5",
        ratio("HTTP query round trip, 1 conn.", "cgt", "strawberry"),
        1.5,
    )
    verdict(
        "query round trip with MaskErrors + QueryDepthLimiter, x strawberry >= 1.5",
        ratio("query round trip with extensions, 1 socket(s)", "cgt", "strawberry"),
        1.5,
    )
    verdict(
        "fan-out N=1000 with MaskErrors + QueryDepthLimiter, x raw >= 10",
        ratio("fan-out N=1000 with extensions", "cgt", "raw"),
        10,
    )
    problems = sum(
        run.get("lost", 0) + run.get("duplicates", 0) + run.get("reordered", 0)
        for runs in results.values()
        for run in runs
    )
    verdict("no loss, duplicate or reorder anywhere (count)", problems, maximum=0)


if __name__ == "__main__":
    main()
