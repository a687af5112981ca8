"""The human summary printed at the end of a run."""

from __future__ import annotations

from batchthumb.progress import format_duration
from batchthumb.runner import RunSummary

SHOWN_CODES = 10  # error codes listed one a line; the report has the rest


def format_summary(summary: RunSummary, *, configured_rate: float, skipped: int = 0) -> str:
    """Counts by outcome, failures by error code (with an example plan each), time taken, and
    the rate achieved against the cap."""
    tally = summary.tally
    done = tally.succeeded + tally.failed
    lines = [
        f"{tally.succeeded} succeeded, {tally.failed} failed, "
        f"{skipped + tally.skipped} skipped, in {format_duration(summary.elapsed)}"
    ]
    if tally.error_codes:
        lines.append("failed by error:")
        top = sorted(tally.error_codes.items(), key=lambda kv: (-kv[1], kv[0]))
        for code, count in top[:SHOWN_CODES]:
            lines.append(f"  {code} x{count} (e.g. plan {tally.examples.get(code, '?')})")
        if len(top) > SHOWN_CODES:
            rest = sum(count for _, count in top[SHOWN_CODES:])
            lines.append(f"  {len(top) - SHOWN_CODES} more codes, {rest} items: see the report")
    cap = f"{configured_rate:g}/s" if configured_rate > 0 else "no cap"
    # Over less than a second, a rate says more about the clock than about the run.
    achieved = f"{summary.requests / summary.elapsed:.1f}/s" if summary.elapsed >= 1 else "-"
    lines.append(f"{summary.requests} requests for {done} items, {achieved} (configured: {cap})")
    sides = [("", summary.governor)]
    if summary.source_governor is not None:  # a migration's source has its own limits
        sides = [("target: ", summary.governor), ("source: ", summary.source_governor)]
    for side, gov in sides:
        if gov.throttled:
            settled = f"{gov.rate:.1f}/s" if gov.rate is not None else "no cap"
            lines.append(
                f"{side}throttled {gov.throttled} times, rate lowered {gov.rate_cuts} times, "
                f"settled at {settled}"
            )
    if summary.stopped:
        lines.append(f"stopped early ({summary.stopped})")
    return "\n".join(lines)
