"""Where the memory of idle sockets goes: ``python -m bench.memory_profile [options]``.

Opens ``--sockets`` idle sockets in one process, through Channels' ``WebsocketCommunicator``
against the benchmark's consumers (``bench/app.py``, in-memory layer), each with
``connection_init`` and ``--per-socket`` subscriptions confirmed, and compares
``tracemalloc`` snapshots taken before and after: the bytes per socket that each mode
holds, then the sites that hold the most, per socket. ``--mode`` picks ``cgt`` (this
library's ``BenchConsumer``), ``raw`` (the plain Channels consumer) or ``both``.

The communicator's own objects (its queues and futures) are counted in both modes
alike; the resident memory of a real server is measured by ``python -m bench.run --only
"idle memory"``. This finds where the difference comes from.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import tracemalloc
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from channels.testing import WebsocketCommunicator

from bench import app

QUERY = 'subscription { onBench(group: "g0") { seq ts } }'


async def open_socket(application: Any, per_socket: int) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, "/graphql/", subprotocols=["graphql-transport-ws"]
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data='{"type":"connection_init"}')
    assert json.loads(await communicator.receive_from())["type"] == "connection_ack"
    for index in range(per_socket):
        frame = {"type": "subscribe", "id": str(index), "payload": {"query": QUERY}}
        await communicator.send_to(text_data=json.dumps(frame))
    for _ in range(per_socket):
        assert json.loads(await communicator.receive_from())["payload"] == {"data": None}
    return communicator


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    gc.collect()


async def profile(
    mode: str, sockets: int, per_socket: int, frames: int, top: int, detail: str = ""
) -> float:
    application = app.BenchConsumer.as_asgi() if mode == "cgt" else app.RawConsumer.as_asgi()
    raw = mode == "raw"
    per_socket_here = 1 if raw else per_socket
    # Warm up: class-level caches, the document cache, the fan-out's channel and tasks.
    warm = [await open_socket(application, per_socket_here) for _ in range(5)]
    await settle()
    tracemalloc.start(frames)
    before = tracemalloc.take_snapshot()
    opened = [await open_socket(application, per_socket_here) for _ in range(sockets)]
    await settle()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(ignore), after.filter_traces(ignore)
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    per = total / sockets
    label = f"{mode}, {per_socket_here} subscription(s) per socket"
    print(f"\n== {label}: {per / 1024:.1f} KB per socket ({sockets} sockets)")
    print("-- by line, bytes per socket")
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[-1]
        print(
            f"{stat.size_diff / sockets:9.0f}  {stat.count_diff / sockets:5.1f} blocks  "
            f"{_short(frame.filename)}:{frame.lineno}"
        )
    print("-- by file, bytes per socket")
    for stat in after.compare_to(before, "filename")[:top]:
        print(f"{stat.size_diff / sockets:9.0f}  {_short(stat.traceback[-1].filename)}")
    if frames > 1:
        # Each allocation charged to the innermost frame of this library or of bench/
        # that led to it (a task's own frames start at the event loop: those allocated
        # in a task of Channels' or asyncio's show their own site).
        print("-- by the innermost frame of this library (else the allocation site)")
        charged: dict[str, list[int]] = {}
        for stat in after.compare_to(before, "traceback"):
            ours = [frame for frame in stat.traceback if _ours(frame.filename)]
            where = ours[-1] if ours else stat.traceback[-1]
            entry = charged.setdefault(f"{_short(where.filename)}:{where.lineno}", [0, 0])
            entry[0] += stat.size_diff
            entry[1] += stat.count_diff
        ranked = sorted(charged.items(), key=lambda item: -item[1][0])
        for site, (size, count) in ranked[:top]:
            print(f"{size / sockets:9.0f}  {count / sockets:5.1f} blocks  {site}")
        if detail:
            print(f"-- allocated under {detail}, by allocation site")
            for stat in after.compare_to(before, "traceback"):
                sites = [f"{_short(frame.filename)}:{frame.lineno}" for frame in stat.traceback]
                if any(site.endswith(detail) for site in sites) and stat.size_diff:
                    print(f"{stat.size_diff / sockets:9.0f}  {' <- '.join(reversed(sites[-4:]))}")
    for communicator in [*opened, *warm]:
        await communicator.disconnect()
    return per


def _ours(filename: str) -> bool:
    return "channels_graphql_typed" in filename or (
        "/bench/" in filename and not filename.endswith("memory_profile.py")
    )


def _short(filename: str) -> str:
    for marker in ("site-packages/", "channels_graphql_typed/", "bench/", "python3."):
        if marker in filename:
            return filename.split(marker, 1)[1] if marker != "python3." else filename
    return filename


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["cgt", "raw", "both"], default="both")
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--per-socket", type=int, default=1)
    parser.add_argument("--frames", type=int, default=25, help="traceback depth (1: fastest)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--detail", default="", help="FILE:LINE: list what was allocated under that frame"
    )
    arguments = parser.parse_args()
    modes = ["raw", "cgt"] if arguments.mode == "both" else [arguments.mode]
    results = {}
    for mode in modes:
        results[mode] = await profile(
            mode,
            arguments.sockets,
            arguments.per_socket,
            arguments.frames,
            arguments.top,
            arguments.detail,
        )
    if len(results) == 2:
        print(f"\ncgt / raw: {results['cgt'] / results['raw']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
