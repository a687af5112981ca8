"""The sandbox in a process of its own, for the benchmark: it notes when every PUT arrives.

Takes the options of ``batchthumb sandbox`` (``--rate-limit 50`` and so on), listens on a free
loopback port and prints ``listening on URL``. Two extra routes serve the harness:
``GET /_bench/reset`` forgets what was seen, ``GET /_bench/stats`` answers it as JSON: the
arrival time of every PUT (``time.monotonic()``, which is system-wide on Linux, so the harness
can compare it with its own clock) and the status counts since the last reset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from array import array
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from batchthumb.sandbox.command import add_arguments, build_sandbox


async def serve(args: argparse.Namespace) -> None:
    """Serve the sandbox the options describe until SIGTERM or SIGINT."""
    sandbox = build_sandbox(args)
    arrivals = array("d")
    statuses_at_reset: Counter[int] = Counter()

    @web.middleware
    async def note_arrival(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        if request.method == "PUT":
            arrivals.append(time.monotonic())
        return await handler(request)

    async def reset(_: web.Request) -> web.Response:
        del arrivals[:]
        statuses_at_reset.clear()
        statuses_at_reset.update(sandbox.stats.status_counts)
        statuses_at_reset[200] += 1  # this very answer, counted once it is sent
        return web.json_response({"ok": True})

    async def stats(_: web.Request) -> web.Response:
        statuses = Counter(sandbox.stats.status_counts)
        statuses.subtract(statuses_at_reset)
        body = {
            "arrivals": arrivals.tolist(),
            "statuses": {str(k): v for k, v in statuses.items() if v},
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    app = sandbox.build_app()
    app.middlewares.append(note_arrival)
    app.router.add_get("/_bench/reset", reset)
    app.router.add_get("/_bench/stats", stats)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    """Parse the ``batchthumb sandbox`` options and serve."""
    parser = argparse.ArgumentParser(prog="sandbox_server.py")
    add_arguments(parser)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
