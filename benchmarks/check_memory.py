"""Peak memory of `batchthumb check` on a large job: one project, ITEMS plans, an items file.

    python benchmarks/check_memory.py [ITEMS]     (default 100,000)

A sandbox in this process holds the plans (every tenth shows another thumbnail than the job
wants); `batchthumb check` runs as a child, and its peak RSS is read from ``ru_maxrss``.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import anyio

from batchthumb.sandbox import Sandbox, SandboxConfig

PROJECT = "919bb351ef424e2daaf3dd80c179fae9"
TOKEN = "benchmark-token-0123456789"


def url(n: int) -> str:
    return f"/v1/upload/{PROJECT}/202611/{1749730526922581391 + n}.png"


async def main() -> None:
    items = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    box = Sandbox(SandboxConfig(tokens=frozenset({TOKEN})))
    for n in range(items):
        box.add_plan(PROJECT, name=f"Plan {n}", plan_id=f"{n:032d}", img_url=url(n + n % 10 // 9))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "plans.csv").write_text(
            "plan_id,img_url\n" + "".join(f"{n:032d},{url(n)}\n" for n in range(items))
        )
        async with box.serve() as endpoint:
            (folder / "job.yaml").write_text(
                f"endpoint: {endpoint}\ndefaults:\n  project_id: {PROJECT}\nitems_file: plans.csv\n"
            )
            started = time.monotonic()
            done = await anyio.run_process(
                [sys.executable, "-m", "batchthumb", "check", str(folder / "job.yaml")],
                env={"BATCHTHUMB_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
                check=False,
            )
            took = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    last = done.stdout.decode().splitlines()[-1]
    print(f"{items:,} items: exit {done.returncode}, {last}; peak RSS {peak:.0f} MB, {took:.1f} s")


if __name__ == "__main__":
    anyio.run(main)
