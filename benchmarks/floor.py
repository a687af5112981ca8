"""The floor for this stack: a bare aiohttp loop that does only the PUTs, nothing else.

One ClientSession, a connector of ``concurrency`` connections, ``concurrency`` workers pulling
from one shared iterator, a JSON body and the same token header as batchthumb. No validation,
no journal, no retries, no rate governor: whatever batchthumb adds costs time against this.

Usage: ``python floor.py BASE_URL COUNT CONCURRENCY`` with the token in ``BATCHTHUMB_TOKEN``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator

import aiohttp

PROJECT = "919bb351ef424e2daaf3dd80c179fae9"


def requests(base: str, count: int) -> Iterator[tuple[str, bytes]]:
    """The (url, body) of every PUT, made as they are needed."""
    for n in range(count):
        url = f"{base}/v3/plan/{PROJECT}/management/{n:032x}/img"
        body = json.dumps({"img_url": f"/v1/upload/{PROJECT}/202506/{n}.png"}).encode()
        yield url, body


async def worker(session: aiohttp.ClientSession, todo: Iterator[tuple[str, bytes]]) -> int:
    """Send PUTs until the shared iterator runs dry; count the failures."""
    failures = 0
    for url, body in todo:
        async with session.put(url, data=body) as resp:
            await resp.read()
            failures += resp.status != 200
    return failures


async def main(base: str, count: int, concurrency: int) -> int:
    """Send ``count`` PUTs with ``concurrency`` workers; the number of non-200 answers."""
    headers = {
        "X-Auth-Token": os.environ["BATCHTHUMB_TOKEN"],
        "Content-Type": "application/json;charset=UTF-8",
    }
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        todo = requests(base, count)
        results = await asyncio.gather(*(worker(session, todo) for _ in range(concurrency)))
    return sum(results)


if __name__ == "__main__":
    failed = asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    sys.exit(1 if failed else 0)
