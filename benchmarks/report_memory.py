"""Peak memory of `batchthumb report` on a large report: writes one, then measures each format.

    python benchmarks/report_memory.py [LINES]     (default 1,000,000)

Each format runs in a process of its own (``batchthumb report ... --format F``, output to a
file), started by a probe process that reads the child's peak RSS (``ru_maxrss``). The
report mixes outcomes and error codes as a real run would, with a few repeated plans, so
the repeat check has work to do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = "919bb351ef424e2daaf3dd80c179fae9"


def write_report(path: Path, lines: int) -> None:
    """A report of ``lines`` item lines (the last 1,000 repeat earlier plans) and a run line."""
    with path.open("w", encoding="utf-8") as f:
        for n in range(lines):
            plan = n if n < lines - 1000 else n - lines + 1000
            failed = n % 50 == 0
            record = {
                "project_id": PROJECT,
                "plan_id": f"{plan:032d}",
                "img_url": f"/v1/upload/{PROJECT}/202611/{1749730526922581391 + n}.png",
                "outcome": "failed" if failed else ("skipped" if n % 7 == 0 else "succeeded"),
                "http_status": 400 if failed else 200,
                "error_code": f"PM.0217500{n % 3}" if failed else None,
                "error": "invalid parameter img_url" if failed else None,
                "attempts": 1 + (n % 11 == 0),
                "elapsed_ms": 20 + n % 300,
                "finished_at": f"2026-11-30T11:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.000Z",
                "request_id": f"{n:016x}",
                "previous_img_url": f"/v1/upload/{PROJECT}/202506/{1749730526922581391 + n}.png",
            }
            f.write(json.dumps(record) + "\n")
        f.write(json.dumps({"kind": "run", "requests": lines, "throttled": 12}) + "\n")


def measure(report: Path, fmt: str, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one `batchthumb report`, in a process of its own."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "with open(sys.argv[3], 'w') as sink:\n"
        "    subprocess.run([sys.executable, '-m', 'batchthumb', 'report', sys.argv[1],"
        " '--format', sys.argv[2]], stdout=sink, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.monotonic() - t)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(report), fmt, str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_kb, took = done.stdout.split()
    return int(peak_kb) / 1024, float(took)


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "big.results.jsonl"
        write_report(report, lines)
        size = report.stat().st_size / 1e6
        print(f"{lines:,} lines, {size:.0f} MB on disk")
        print("| format | peak RSS (MB) | time (s) |")
        print("| --- | --- | --- |")
        for fmt in ("text", "json", "csv", "junit"):
            peak, took = measure(report, fmt, Path(tmp) / f"out.{fmt}")
            print(f"| {fmt} | {peak:.0f} | {took:.1f} |")


if __name__ == "__main__":
    main()
