"""The load client: a separate process that opens the sockets and checks every notification.

Usage: ``python -m bench.client SCENARIO_JSON``. It prints ``READY`` once all sockets are
subscribed, waits for ``FIRE`` on stdin (the orchestrator samples the server's CPU time
in between), triggers the broadcasts through the server's ``/fire``, and prints one JSON
line of results. Every subscriber must get every event exactly once and in order;
losses, duplicates and reorders are counted and reported, never hidden.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

TRANSPORT_WS = "graphql-transport-ws"
BATCH = 25
"""Sockets opened at once: more makes channels-redis run out of connections."""


@dataclass
class Subscriber:
    expected: int
    seen: set[int] = field(default_factory=set)
    highest: int = -1
    received: int = 0
    duplicates: int = 0
    reordered: int = 0
    latencies: list[float] = field(default_factory=list)
    last_receive: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, seq: int, ts: float, now: float) -> None:
        self.received += 1
        self.latencies.append(now - ts)
        self.last_receive = now
        if seq in self.seen:
            self.duplicates += 1
            return
        if seq < self.highest:
            self.reordered += 1
        self.highest = max(self.highest, seq)
        self.seen.add(seq)
        if len(self.seen) >= self.expected:
            self.done.set()

    @property
    def lost(self) -> int:
        return max(0, self.expected - len(self.seen))


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def open_subscriber(
    session: aiohttp.ClientSession,
    url: str,
    subprotocol: str,
    query: str,
    expected: int,
    subscriptions: int,
) -> tuple[aiohttp.ClientWebSocketResponse, list[Subscriber]]:
    socket = await session.ws_connect(url, protocols=[subprotocol], max_msg_size=0)
    assert socket.protocol == subprotocol, socket.protocol
    await socket.send_str('{"type":"connection_init"}')
    while (await socket.receive_json())["type"] != "connection_ack":
        pass
    start = "subscribe" if subprotocol == TRANSPORT_WS else "start"
    for index in range(subscriptions):
        await socket.send_str(
            json.dumps({"type": start, "id": str(index), "payload": {"query": query}})
        )
    confirmed = 0
    while confirmed < subscriptions:
        message = await socket.receive_json()
        if message.get("type") in ("next", "data"):
            assert message["payload"] == {"data": None}, message
            confirmed += 1
    return socket, [Subscriber(expected) for _ in range(subscriptions)]


CLOSED_EARLY: collections.Counter[str] = collections.Counter()
"""The sockets the server closed while their reader was reading, by close code."""


async def read(socket: aiohttp.ClientWebSocketResponse, subscribers: list[Subscriber]) -> None:
    async for message in socket:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        now = time.time()
        data = orjson.loads(message.data)
        if data.get("type") not in ("next", "data"):
            continue
        (event,) = data["payload"]["data"].values()  # onBench or onBenchReplayed
        subscribers[int(data["id"])].record(event["seq"], event["ts"], now)
    # Iteration ends without yielding the close frame: the reader got here because the
    # server closed the socket (the client cancels its readers instead).
    CLOSED_EARLY[str(socket.close_code)] += 1


SSE_HEADERS = {"content-type": "application/json", "accept": "text/event-stream"}
EVENT_END = b"\n\n"
NEXT_EVENT = b"event: next\ndata: "


async def open_sse_subscriber(
    session: aiohttp.ClientSession, url: str, query: str, expected: int
) -> tuple[aiohttp.ClientResponse, list[Subscriber]]:
    """A subscription over Server-Sent Events (distinct connections mode): one POST whose
    response is the event stream. The server starts the response once the subscription
    is in its groups, so the response's headers are its confirmation."""
    response = await session.post(url, json={"query": query}, headers=SSE_HEADERS)
    assert response.status == 200, response.status
    assert response.content_type == "text/event-stream", response.content_type
    return response, [Subscriber(expected)]


async def read_sse(response: aiohttp.ClientResponse, subscribers: list[Subscriber]) -> None:
    buffer = b""
    subscriber = subscribers[0]
    while chunk := await response.content.readany():
        now = time.time()
        buffer += chunk
        *events, buffer = buffer.split(EVENT_END)
        for event in events:
            # Heartbeats are comments (":"); the end of the stream is "complete".
            if event.startswith(NEXT_EVENT):
                data = orjson.loads(event[len(NEXT_EVENT) :])["data"]["onBench"]
                subscriber.record(data["seq"], data["ts"], now)


async def fan_out(scenario: dict[str, Any]) -> dict[str, Any]:
    if scenario.get("transport") == "sse":
        return await sse_fan_out(scenario)
    url = f"http://127.0.0.1:{scenario['port']}"
    subprotocol = scenario.get("subprotocol", TRANSPORT_WS)
    count: int = scenario["count"]
    groups: int = scenario.get("groups", 1)
    per_socket: int = scenario.get("per_socket", 1)
    field_name = "onBenchReplayed" if scenario.get("replayed") else "onBench"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets: list[tuple[aiohttp.ClientWebSocketResponse, list[Subscriber]]] = []
        readers: list[asyncio.Task[None]] = []
        connect_started = time.monotonic()
        for start in range(0, scenario["subscribers"], BATCH):
            batch = []
            for index in range(start, min(start + BATCH, scenario["subscribers"])):
                skip = scenario.get("skip_half", False) and index % 2 == 1
                query = (
                    f'subscription {{ {field_name}(group: "g{index % groups}"'
                    f"{', skip: true' if skip else ''}) {{ seq ts }} }}"
                )
                expected = 0 if skip else count
                batch.append(
                    open_subscriber(
                        session, url + "/graphql/", subprotocol, query, expected, per_socket
                    )
                )
            opened = await asyncio.gather(*batch)
            sockets.extend(opened)
            # Read each socket from the moment it is open: a socket nobody reads does not
            # answer the server's keep-alive pings, and the server closes it once they
            # time out (uvicorn: 20 s + 20 s), long before ten thousand sockets are open.
            readers += [asyncio.create_task(read(socket, subs)) for socket, subs in opened]
        # Every socket opened, its connection_init acknowledged and its subscriptions
        # confirmed, in batches of BATCH.
        connect_seconds = time.monotonic() - connect_started
        subscribers = [subscriber for _, subs in sockets for subscriber in subs]
        print("READY", flush=True)
        if scenario.get("idle"):
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            result: dict[str, Any] = {"subscribers": len(subscribers)}
        else:
            result = await fire_and_count(session, url, scenario, subscribers)
        result["connect_seconds"] = connect_seconds
        result["closed_early"] = dict(CLOSED_EARLY)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*(socket.close() for socket, _ in sockets), return_exceptions=True)
        await asyncio.gather(*readers, return_exceptions=True)
    return result


async def sse_fan_out(scenario: dict[str, Any]) -> dict[str, Any]:
    """The fan-out over Server-Sent Events: one event stream (one HTTP connection) per
    subscriber."""
    url = f"http://127.0.0.1:{scenario['port']}"
    groups: int = scenario.get("groups", 1)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        streams: list[tuple[aiohttp.ClientResponse, list[Subscriber]]] = []
        for start in range(0, scenario["subscribers"], BATCH):
            batch = [
                open_sse_subscriber(
                    session,
                    url + "/graphql/",
                    f'subscription {{ onBench(group: "g{index % groups}") {{ seq ts }} }}',
                    scenario["count"],
                )
                for index in range(start, min(start + BATCH, scenario["subscribers"]))
            ]
            streams.extend(await asyncio.gather(*batch))
        readers = [asyncio.create_task(read_sse(response, subs)) for response, subs in streams]
        subscribers = [subscriber for _, subs in streams for subscriber in subs]
        print("READY", flush=True)
        result = await fire_and_count(session, url, scenario, subscribers)
        for reader in readers:
            reader.cancel()
        for response, _ in streams:
            response.close()
        await asyncio.gather(*readers, return_exceptions=True)
    return result


async def fire_and_count(
    session: aiohttp.ClientSession,
    url: str,
    scenario: dict[str, Any],
    subscribers: list[Subscriber],
) -> dict[str, Any]:
    """Wait for FIRE, have the server broadcast, and count what every subscriber got."""
    count: int = scenario["count"]
    groups: int = scenario.get("groups", 1)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    fired_at = time.time()
    query_string = f"count={count}&groups={groups}"
    if scenario.get("rate"):
        query_string += f"&rate={scenario['rate']}"
    if scenario.get("replayed"):
        query_string += "&replayed=1"
    async with session.get(f"{url}/fire?{query_string}") as response:
        assert response.status == 200
    burst = time.time() - fired_at
    waiting = [s.done.wait() for s in subscribers if s.expected]
    timeout = scenario.get("timeout", 60)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*waiting), timeout)
    await asyncio.sleep(scenario.get("settle", 0.3))  # duplicates would show here
    last = max((s.last_receive for s in subscribers), default=fired_at)
    received = sum(s.received for s in subscribers)
    latencies = [value for s in subscribers for value in s.latencies]
    expected_total = sum(s.expected for s in subscribers)
    result = {
        "delivered": received,
        "expected": expected_total,
        "lost": sum(s.lost for s in subscribers),
        "duplicates": sum(s.duplicates for s in subscribers),
        "reordered": sum(s.reordered for s in subscribers),
        "seconds": max(last - fired_at, 1e-9),
        "burst_seconds": burst,
        "p50": statistics.median(latencies) if latencies else 0.0,
        "p99": percentile(latencies, 0.99),
    }
    result["per_second"] = received / result["seconds"]
    return result


async def churn(scenario: dict[str, Any]) -> dict[str, Any]:
    """Steady subscribers receive a broadcast stream while churners complete and
    re-subscribe every 500 ms: the time from subscribe to confirmation, and no loss for
    the steady ones."""
    url = f"http://127.0.0.1:{scenario['port']}"
    rate: float = scenario.get("rate", 20)
    duration: float = scenario.get("duration", 5.0)
    count = int(rate * duration)
    query = 'subscription { onBench(group: "g0") { seq ts } }'
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        steady: list[tuple[aiohttp.ClientWebSocketResponse, list[Subscriber]]] = []
        for start in range(0, scenario["subscribers"], BATCH):
            batch = [
                open_subscriber(session, url + "/graphql/", TRANSPORT_WS, query, count, 1)
                for _ in range(start, min(start + BATCH, scenario["subscribers"]))
            ]
            steady.extend(await asyncio.gather(*batch))
        readers = [asyncio.create_task(read(socket, subs)) for socket, subs in steady]
        churn_sockets = []
        for _ in range(scenario["churners"]):
            socket = await session.ws_connect(url + "/graphql/", protocols=[TRANSPORT_WS])
            await socket.send_str('{"type":"connection_init"}')
            await socket.receive_json()
            churn_sockets.append(socket)
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        latencies: list[float] = []
        stop = asyncio.Event()

        async def churner(socket: aiohttp.ClientWebSocketResponse) -> None:
            number = 0
            confirmed: dict[str, asyncio.Event] = {}

            async def reader() -> None:
                async for message in socket:
                    data = orjson.loads(message.data)
                    if data.get("payload") == {"data": None}:
                        confirmed[data["id"]].set()

            reading = asyncio.create_task(reader())
            try:
                while not stop.is_set():
                    if number:
                        await socket.send_str(f'{{"type":"complete","id":"{number}"}}')
                    number += 1
                    identifier = str(number)
                    confirmed[identifier] = asyncio.Event()
                    started = time.monotonic()
                    payload = json.dumps({"query": query})
                    await socket.send_str(
                        f'{{"type":"subscribe","id":"{identifier}","payload":{payload}}}'
                    )
                    await asyncio.wait_for(confirmed[identifier].wait(), 10)
                    latencies.append(time.monotonic() - started)
                    await asyncio.sleep(0.5)
            finally:
                reading.cancel()

        churners = [asyncio.create_task(churner(socket)) for socket in churn_sockets]
        async with session.get(f"{url}/fire?count={count}&rate={rate}") as response:
            assert response.status == 200
        subscribers = [subscriber for _, subs in steady for subscriber in subs]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in subscribers)), 10)
        stop.set()
        await asyncio.gather(*churners, return_exceptions=True)
        for reader_task in readers:
            reader_task.cancel()
        for socket in [s for s, _ in steady] + churn_sockets:
            await socket.close()
    return {
        "subscribe_p50": statistics.median(latencies) if latencies else 0.0,
        "subscribe_p99": percentile(latencies, 0.99),
        "resubscriptions": len(latencies),
        "delivered": sum(s.received for s in subscribers),
        "expected": count * len(subscribers),
        "lost": sum(s.lost for s in subscribers),
        "duplicates": sum(s.duplicates for s in subscribers),
        "reordered": sum(s.reordered for s in subscribers),
    }


async def round_trips(scenario: dict[str, Any]) -> dict[str, Any]:
    """Sequential query round trips on each of ``sockets`` sockets for ``duration`` s."""
    url = f"http://127.0.0.1:{scenario['port']}/graphql/"
    duration: float = scenario.get("duration", 3.0)
    query = json.dumps({"query": '{ echo(text: "hello") }'})
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = []
        for _ in range(scenario["sockets"]):
            socket = await session.ws_connect(url, protocols=[TRANSPORT_WS])
            await socket.send_str('{"type":"connection_init"}')
            await socket.receive_json()
            sockets.append(socket)
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        deadline = time.monotonic() + duration
        counts = [0] * len(sockets)

        async def loop(index: int, socket: aiohttp.ClientWebSocketResponse) -> None:
            number = 0
            while time.monotonic() < deadline:
                number += 1
                await socket.send_str(f'{{"type":"subscribe","id":"{number}","payload":{query}}}')
                while True:
                    message = orjson.loads((await socket.receive()).data)
                    if message["type"] == "complete":
                        break
                    assert message["type"] == "next", message
                    assert message["payload"] == {"data": {"echo": "hello"}}, message
                counts[index] += 1

        started = time.monotonic()
        await asyncio.gather(*(loop(i, s) for i, s in enumerate(sockets)))
        elapsed = time.monotonic() - started
        for socket in sockets:
            await socket.close()
    return {"operations": sum(counts), "seconds": elapsed, "per_second": sum(counts) / elapsed}


async def http_round_trips(scenario: dict[str, Any]) -> dict[str, Any]:
    """Sequential GraphQL-over-HTTP query round trips (POST) on each of ``connections``
    kept-alive connections for ``duration`` s."""
    url = f"http://127.0.0.1:{scenario['port']}/graphql/"
    duration: float = scenario.get("duration", 3.0)
    body = json.dumps({"query": '{ echo(text: "hello") }'}).encode()
    headers = {"content-type": "application/json", "accept": "application/json"}
    connections: int = scenario["connections"]
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def post() -> None:
            async with http.post(url, data=body, headers=headers) as response:
                assert response.status == 200, response.status
                answer = orjson.loads(await response.read())
                assert answer == {"data": {"echo": "hello"}}, answer

        for _ in range(connections):  # open the connections (and warm the server) first
            await post()
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        deadline = time.monotonic() + duration
        counts = [0] * connections

        async def loop(index: int) -> None:
            while time.monotonic() < deadline:
                await post()
                counts[index] += 1

        started = time.monotonic()
        await asyncio.gather(*(loop(index) for index in range(connections)))
        elapsed = time.monotonic() - started
    return {"operations": sum(counts), "seconds": elapsed, "per_second": sum(counts) / elapsed}


EVENT_ID = "channels_graphql_typed.event_id"
RESUME_AFTER = "channels_graphql_typed.resume_after"
RESUMED = 'subscription { onBenchReplayed(group: "g0") { seq ts } }'


async def resume(scenario: dict[str, Any]) -> dict[str, Any]:
    """The resume of ``count`` missed events: subscribe, take one event's id, stop;
    ``count`` more are broadcast; on FIRE, subscribe again after that id and time the
    arrival of every missed event (in order, once each)."""
    url = f"http://127.0.0.1:{scenario['port']}"
    count: int = scenario["count"]
    async with aiohttp.ClientSession() as session:
        socket = await session.ws_connect(
            url + "/graphql/", protocols=[TRANSPORT_WS], max_msg_size=0
        )
        await socket.send_str('{"type":"connection_init"}')
        while (await socket.receive_json())["type"] != "connection_ack":
            pass

        async def subscribe(operation_id: str, extensions: dict[str, Any]) -> None:
            payload = {"query": RESUMED, "extensions": extensions}
            await socket.send_str(
                json.dumps({"type": "subscribe", "id": operation_id, "payload": payload})
            )

        async def next_result() -> dict[str, Any]:
            while True:
                message = await socket.receive_json()
                if message.get("type") == "next":
                    result: dict[str, Any] = message["payload"]
                    return result
                if message.get("type") in ("error", "complete"):
                    raise RuntimeError(f"the subscription ended: {message}")

        await subscribe("1", {})
        assert await next_result() == {"data": None}  # confirmed: in its group
        async with session.get(f"{url}/fire?count=1&groups=1&replayed=1") as response:
            assert response.status == 200
        seen = await next_result()
        last_id = seen["extensions"][EVENT_ID]
        await socket.send_str('{"type":"complete","id":"1"}')
        async with session.get(f"{url}/fire?count={count}&groups=1&replayed=1") as response:
            assert response.status == 200  # missed: no subscription is listening
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        subscriber = Subscriber(count)
        started = time.time()
        await subscribe("2", {RESUME_AFTER: last_id})
        first = await next_result()
        assert first == {"data": None}, first  # the confirmation comes first
        while len(subscriber.seen) < count:
            result = await asyncio.wait_for(next_result(), 30)
            event = result["data"]["onBenchReplayed"]
            subscriber.record(event["seq"], event["ts"], time.time())
        resumed = time.time() - started
        await socket.close()
    return {
        "delivered": subscriber.received,
        "expected": count,
        "lost": subscriber.lost,
        "duplicates": subscriber.duplicates,
        "reordered": subscriber.reordered,
        "seconds": resumed,
        "per_second": subscriber.received / resumed,
    }


async def main() -> None:
    scenario = json.loads(sys.argv[1])
    run = {
        "round_trip": round_trips,
        "http_round_trip": http_round_trips,
        "churn": churn,
        "resume": resume,
    }.get(scenario["kind"], fan_out)
    result = await run(scenario)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
