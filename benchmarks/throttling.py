"""The throttling matrix: batchthumb against rate limits in the shapes real gateways use.

    python benchmarks/throttling.py               # the README's tables (29 min at --jobs 3)
    python benchmarks/throttling.py --only-latency  # only the 50 ms cells (about half of it)
    python benchmarks/throttling.py --quick       # a few short cells, for development
    python benchmarks/throttling.py --jobs 4      # cells run four at a time (default 4)
    python benchmarks/throttling.py --simulate    # the same cells on a virtual clock, in seconds

Each cell is the real CLI (``batchthumb run --no-snapshot``, no ``--rate``) in a subprocess
against the sandbox in another (``benchmarks/sandbox_server.py``), which notes when every PUT
arrives. The shapes: a token bucket of the sandbox's default size (a tenth of a second),
fixed windows of 1 s and 60 s, a sliding window of 1 s, and limits that fall or rise during
the run; at 5, 20, 50, 200 and 1,000 requests per second; at the default concurrency and at 32
workers. Then a few rows on ``rate`` and ``Retry-After``, and every shape again at a 50 ms
round trip (the sandbox's ``--latency``).

"Ideal" is the least time the limit allows for the cell's N PUTs, first to last: a greedy
client replayed against the sandbox's own limiter (so a bucket's burst and a window's whole
allowance count as sent at once), with the cell's workers, each request taking the round trip
this client takes with nothing limiting it. That round trip is measured first, one run per
worker count and latency against an unlimited sandbox (``--rate`` at its maximum, so no slow
start), alone, so it is the client's fastest: a few workers cannot reach a high limit, nor send
a minute's allowance at once, and the cells measure the governor, not the machine. Every cell
is at least 20 s of ideal by the limit alone. Results go to
``benchmarks/results/throttling.json`` and ``.md``.

``--simulate`` runs the very same cells through ``tests/simulate.py``: the real governor
against the sandbox's real limiter on a virtual clock, with a loopback round trip of 1 to 9 ms
(jittered as much as the real run's arrivals are, so answers come back out of order and
requests paced apart may arrive bunched) and the sandbox's latency held before the limit, as
the sandbox holds it. It does not depend on the machine's load, so it is what the governor
is tuned against; its results go to ``throttling-simulated.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from run import HERE, ROOT, Server, _table, batchthumb, machine, write_yaml_job

sys.path.insert(0, str(ROOT))  # tests/simulate.py, for --simulate

from batchthumb.model import MAXIMA, RunSettings
from batchthumb.sandbox.command import add_arguments, build_sandbox
from batchthumb.sandbox.limits import Limiter, RateLimit
from tests.simulate import simulate

LIMITS = (5, 20, 50, 200, 1000)
DEFAULT_CONCURRENCY = RunSettings().concurrency
WORKERS = (DEFAULT_CONCURRENCY, 32)
MIN_IDEAL = 20.0
LATENCY = 0.05
TARGET_RATIO, TARGET_MEDIAN, TARGET_THROTTLED = 1.15, 1.10, 3.0
SIM_ROUND_TRIP, SIM_JITTER = 0.001, 0.004  # loopback: 1 ms, plus up to 4 ms more each way
MAX_RATE = MAXIMA["rate"]
CALIBRATION_ITEMS, CALIBRATION_SECONDS = 20_000, 5.0  # the unlimited runs: loopback, 50 ms


@dataclass(frozen=True, slots=True)
class Cell:
    """One run: a limit, the sandbox's flags for it, the client's flags."""

    shape: str
    limit: float
    workers: int
    server: tuple[str, ...]
    client: tuple[str, ...] = ()
    latency: float = 0.0
    note: str = ""
    min_ideal: float = MIN_IDEAL


def shapes(limit: float) -> dict[str, tuple[str, ...]]:
    """The sandbox options of each shape at ``limit`` requests per second."""
    rate = f"{limit:g}"
    return {
        "token bucket": ("--rate-limit", rate),
        "fixed 1 s window": ("--rate-limit", rate, "--limit-shape", "fixed"),
        "fixed 60 s window": (
            "--rate-limit", rate, "--limit-shape", "fixed", "--limit-window", "60",
        ),
        "sliding 1 s window": ("--rate-limit", rate, "--limit-shape", "sliding"),
        "falling 2x to 1x at 5 s": ("--rate-limit", f"{2 * limit:g}@0,{rate}@5"),
        "rising 0.5x to 1x at 5 s": ("--rate-limit", f"{limit / 2:g}@0,{rate}@5"),
    }  # fmt: skip


def sandbox_limit(options: tuple[str, ...]) -> RateLimit:
    """The limit the sandbox builds from ``options`` (the very code it runs)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    limit = build_sandbox(parser.parse_args(list(options))).config.rate_limit
    assert limit is not None, options
    return limit


def ideal_span(
    options: tuple[str, ...], items: int, workers: int = 1, round_trip: float = 0.0
) -> float:
    """First to last of ``items`` PUTs sent as early as the limit allows (a greedy client).

    The client has ``workers``, each taking ``round_trip`` a request: a worker sends again
    only once its answer is back, so a few workers cannot reach a high limit at all.
    """
    limiter = Limiter(sandbox_limit(options))
    free = [0.0] * workers  # when each worker is next free, a heap
    now, sent = 0.0, 0
    while sent < items:
        now = max(now, free[0])
        wait = limiter.admit(now)
        if wait is None:
            heapq.heapreplace(free, now + round_trip)
            sent += 1
        else:
            now += max(wait, 1e-6)
    return now


def items_for(cell: Cell) -> tuple[int, float]:
    """Enough items for at least ``min_ideal`` seconds of ideal, and that ideal."""
    if "60" in cell.server:
        # A minute's allowance goes at once: a quarter of one more makes the cell 60 s, and
        # shows how soon the next minute is used once it opens.
        items = round(cell.limit * 75)
        return items, ideal_span(cell.server, items)
    items = max(10, round(cell.limit * cell.min_ideal))
    while True:
        span = ideal_span(cell.server, items)
        if span >= cell.min_ideal - 1e-6:
            return items, span
        items = max(items + 1, round(items * cell.min_ideal / max(span, 1.0)))


def client_rate(cell: Cell) -> float:
    """The cell's ``--rate``, or 0 (none)."""
    if "--rate" not in cell.client:
        return 0.0
    return float(cell.client[cell.client.index("--rate") + 1])


def cell_ideal(cell: Cell, round_trip: float) -> tuple[int, float]:
    """The cell's items, and the least time its limit, workers and ``--rate`` allow.

    ``round_trip``: what one request takes this client with nothing limiting it, measured.
    """
    items, _ = items_for(cell)
    ideal = ideal_span(cell.server, items, cell.workers, round_trip)
    if client_rate(cell):  # a configured rate allows no more than itself
        ideal = max(ideal, (items - 1) / client_rate(cell))
    return items, ideal


def measure_round_trip(workers: int, latency: float, work: Path, simulated: bool) -> float:
    """What one request takes this client, ``workers`` at a time, with nothing limiting it.

    The cells' ideals use it: the limit is what they measure, not how fast the client and the
    sandbox are on this machine. ``--rate`` at its maximum spares the slow start (part of what
    the cells measure), and there is no limit to meet.
    """
    items = round(workers * CALIBRATION_SECONDS / latency) if latency else CALIBRATION_ITEMS
    if simulated:
        outcome, _ = simulate(
            None, items=items, workers=workers, round_trip=SIM_ROUND_TRIP, jitter=SIM_JITTER,
            latency=latency, rate=MAX_RATE,
        )  # fmt: skip
        span = outcome.sent_span
    else:
        job = write_yaml_job(work / f"round-trip-{workers}-{latency:g}.yaml", items)
        server_options = ("--autocreate",) + (("--latency", f"{latency:g}") if latency else ())
        with Server(*server_options) as server:
            child = batchthumb(
                job, server, "--concurrency", str(workers), "--rate", f"{MAX_RATE:g}",
                timeout=900.0,
            )  # fmt: skip
            span = server.seen().span
        if child.returncode:
            raise SystemExit(f"the unlimited run exited {child.returncode}: {child.stderr}")
    return span * workers / (items - 1)


def run_cell(cell: Cell, work: Path, index: int, round_trip: float) -> dict[str, Any]:
    """Run one cell; what the sandbox saw, against the ideal."""
    items, ideal = cell_ideal(cell, round_trip)
    job = write_yaml_job(work / f"cell-{index}.yaml", items)
    # --autocreate: the job's plans are made up, and the sandbox knows none of them.
    server_options = ("--autocreate", *cell.server)
    server_options += ("--latency", f"{cell.latency:g}") if cell.latency else ()
    with Server(*server_options) as server:
        child = batchthumb(
            job, server, "--concurrency", str(cell.workers), *cell.client, timeout=900.0
        )
        seen = server.seen()
    row = cell_row(
        cell, items, ideal, seen.span, len(seen.arrivals), seen.statuses.get(429, 0),
        child.returncode,
    )  # fmt: skip
    if child.returncode:  # a failed cell says why, in the results and on the console
        row["error"] = child.stderr.strip().splitlines()[-3:]
        print(f"  cell {index} exited {child.returncode}:", *row["error"], sep="\n    ")
    return row


def simulate_cell(cell: Cell, work: Path, index: int, round_trip: float) -> dict[str, Any]:
    """Run one cell on the virtual clock of tests/simulate.py; the same row as a real run."""
    items, ideal = cell_ideal(cell, round_trip)
    outcome, _ = simulate(
        sandbox_limit(cell.server),
        items=items,
        workers=cell.workers,
        round_trip=SIM_ROUND_TRIP,
        jitter=SIM_JITTER,
        latency=cell.latency,
        seed=index,
        rate=client_rate(cell),
        states_limit=True,  # the sandbox's 429s name their limit, as APIG's do
    )
    puts = len(outcome.arrivals)
    return cell_row(cell, items, ideal, outcome.sent_span, puts, outcome.throttled, 0)


def cell_row(
    cell: Cell, items: int, ideal: float, span: float, puts: int, throttled: int, exit: int
) -> dict[str, Any]:
    """One cell's row of the tables, printed as it comes."""
    row = {
        "shape": cell.shape,
        "limit": cell.limit,
        "workers": cell.workers,
        "latency_ms": round(cell.latency * 1000),
        "client": " ".join(cell.client),
        "note": cell.note,
        "items": items,
        "ideal_s": ideal,
        "span_s": span,
        "ratio": span / ideal if ideal else float("nan"),
        "puts": puts,
        "throttled": throttled,
        "throttled_pct": throttled / puts * 100 if puts else 0.0,
        "exit": exit,
    }
    extra = f" {row['client']}" if row["client"] else ""
    extra += f" {row['latency_ms']} ms" if cell.latency else ""
    print(
        f"  {cell.shape} {cell.limit:g}/s x{cell.workers}{extra}: {row['ratio']:.2f}x, "
        f"{row['throttled_pct']:.1f}% throttled, exit {exit}",
        flush=True,
    )
    return row


def cells(quick: bool) -> tuple[list[Cell], list[Cell], list[Cell]]:
    """The matrix, the extra rows and the 50 ms subset."""
    limits = (20, 200) if quick else LIMITS
    min_ideal = 5.0 if quick else MIN_IDEAL
    names = ("token bucket", "fixed 1 s window") if quick else tuple(shapes(1))
    workers = (DEFAULT_CONCURRENCY,) if quick else WORKERS
    matrix = [
        Cell(name, limit, count, shapes(limit)[name], min_ideal=min_ideal)
        for name in names
        for limit in limits
        for count in workers
    ]
    bucket = shapes(50)["token bucket"]
    extras = [
        Cell("token bucket", 50, 8, bucket, ("--rate", "40"), note="rate below the limit"),
        Cell("token bucket", 50, 8, bucket, ("--rate", "100"), note="rate above the limit"),
        Cell("token bucket", 50, 8, bucket, note="no rate (the same cell as in the matrix)"),
        Cell(
            "fixed 60 s window",
            5,
            8,
            (*shapes(5)["fixed 60 s window"], "--limit-retry-after", "seconds"),
            note="Retry-After in seconds",
        ),
        Cell(
            "fixed 60 s window",
            5,
            8,
            (*shapes(5)["fixed 60 s window"], "--limit-retry-after", "date"),
            note="Retry-After as an HTTP date",
        ),
        Cell(
            "token bucket",
            50,
            8,
            (*bucket, "--throttle-code", "APIG.0308"),
            note="code spelled APIG.0308",
        ),
        Cell(
            "token bucket of 1",
            20,
            8,
            (*shapes(20)["token bucket"], "--limit-burst", "1"),
            note="a bucket holding 1",
        ),
    ]
    if quick:
        extras = extras[:2]
    latency_names = ("token bucket",) if quick else names
    slow = [
        Cell(name, limit, count, shapes(limit)[name], latency=LATENCY, min_ideal=min_ideal)
        for name in latency_names
        for limit in limits
        for count in workers
    ]
    return matrix, extras, slow


def matrix_table(rows: list[dict[str, Any]]) -> list[str]:
    """Shapes down, limit x workers across: time/ideal and % throttled per cell."""
    columns = sorted({(r["limit"], r["workers"]) for r in rows})
    header = ["shape", *(f"{limit:g}/s x{workers}" for limit, workers in columns)]
    body = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        line: list[object] = [shape]
        for limit, workers in columns:
            match = [
                r for r in rows if (r["shape"], r["limit"], r["workers"]) == (shape, limit, workers)
            ]
            line.append(cell_text(match[0]) if match else "")
        body.append(line)
    return _table(header, body)


def cell_text(row: dict[str, Any]) -> str:
    """``1.04x, 0.8%`` in bold when it misses a target."""
    text = f"{row['ratio']:.2f}x, {row['throttled_pct']:.1f}%"
    missed = row["ratio"] > TARGET_RATIO or row["throttled_pct"] > TARGET_THROTTLED
    return f"**{text}**" if missed or row["exit"] != 0 else text


def summary_lines(rows: list[dict[str, Any]], what: str) -> list[str]:
    """The median cell and the misses of a table."""
    if not rows:
        return []
    ratios = [r["ratio"] for r in rows]
    missed = [r for r in rows if r["ratio"] > TARGET_RATIO or r["throttled_pct"] > TARGET_THROTTLED]
    return [
        f"{what}: median cell {statistics.median(ratios):.2f}x ideal (target at most "
        f"{TARGET_MEDIAN:.2f}x); {len(rows) - len(missed)} of {len(rows)} cells meet both "
        f"targets (at most {TARGET_RATIO:.2f}x, at most {TARGET_THROTTLED:g}% throttled); "
        f"median throttled {statistics.median(r['throttled_pct'] for r in rows):.1f}%; "
        f"bold cells miss.",
    ]


def markdown(result: dict[str, Any]) -> str:
    """The tables of a result, as Markdown."""
    info = result["machine"]
    if result.get("simulated"):
        what = (
            f"Simulated {result['date']} (`python benchmarks/throttling.py --simulate`: "
            f"tests/simulate.py's virtual clock, loopback {SIM_ROUND_TRIP * 1000:g} ms plus up "
            f"to {SIM_JITTER * 1000:g} ms each way)."
        )
    else:
        what = (
            f"Run {result['date']} on {info['cpu']}, {info['cores']} cores, Python "
            f"{info['python']}, {result['jobs']} cells at a time, load average "
            f"{result['load_before']} before and {result['load_after']} after "
            f"({result['minutes']:.0f} minutes)."
        )
    trips = "; ".join(f"{key}: {ms:g} ms" for key, ms in result["round_trips_ms"].items())
    out = [
        f"{what} Each cell: time/ideal, first to last PUT, and the share of PUTs answered 429. "
        f"Round trips with nothing limiting them, which the ideals use: {trips}.",
        "",
    ]
    if result["matrix"]:
        out += [
            "Loopback:",
            "",
            *matrix_table(result["matrix"]),
            "",
            *summary_lines(result["matrix"], "Loopback"),
            "",
        ]
    if result["latency"]:
        out += [
            f"At a {LATENCY * 1000:.0f} ms round trip (sandbox `--latency {LATENCY:g}`):",
            "",
            *matrix_table(result["latency"]),
            "",
            *summary_lines(result["latency"], f"{LATENCY * 1000:.0f} ms"),
            "",
        ]
    if result["extras"]:
        out += _table(
            ["limit", "workers", "client", "what it shows", "time/ideal", "throttled", "exit"],
            [
                [
                    f"{r['shape']} {r['limit']:g}/s",
                    r["workers"],
                    r["client"] or "(no rate)",
                    r["note"],
                    f"{r['ratio']:.2f}x",
                    f"{r['throttled']} ({r['throttled_pct']:.1f}%)",
                    r["exit"],
                ]
                for r in result["extras"]
            ],
        )
    return "\n".join(out).rstrip() + "\n"


def load() -> str:
    """The one-minute load average."""
    return Path("/proc/loadavg").read_text().split()[0]


def main(argv: list[str] | None = None) -> int:
    """Run the matrix; print and write the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few short cells")
    parser.add_argument("--jobs", type=int, default=4, help="cells run at once (default 4)")
    parser.add_argument("--no-latency", action="store_true", help="skip the 50 ms cells")
    parser.add_argument("--only-latency", action="store_true", help="only the 50 ms cells")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where results go")
    parser.add_argument(
        "--simulate", action="store_true", help="the same cells on a virtual clock (seconds)"
    )
    args = parser.parse_args(argv)
    matrix, extras, slow = cells(args.quick)
    if args.no_latency:
        slow = []
    if args.only_latency:
        matrix, extras = [], []
    everything = [*matrix, *extras, *slow]
    # Longest first, so the slow cells do not all end up at the tail.
    order = sorted(range(len(everything)), key=lambda i: -items_for(everything[i])[1])
    started = time.monotonic()
    jobs = 1 if args.simulate else args.jobs  # the simulation is CPU alone: threads gain nothing
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "jobs": jobs,
        "simulated": args.simulate,
        "load_before": load(),
    }
    print(f"{len(everything)} cells, {jobs} at a time", flush=True)
    run = simulate_cell if args.simulate else run_cell
    with tempfile.TemporaryDirectory(prefix="batchthumb-throttling-") as tmp:
        # One at a time, before the cells: measured alone, the client is at its fastest, so
        # the ideals are if anything too short.
        round_trips = {
            key: measure_round_trip(*key, Path(tmp), args.simulate)
            for key in sorted({(c.workers, c.latency) for c in everything})
        }
        result["round_trips_ms"] = {
            f"{workers} workers at {f'{latency * 1000:g} ms' if latency else 'loopback'}": round(
                seconds * 1000, 2
            )
            for (workers, latency), seconds in round_trips.items()
        }
        print("round trips, unlimited:", result["round_trips_ms"], flush=True)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {
                i: pool.submit(
                    run,
                    everything[i],
                    Path(tmp),
                    i,
                    round_trips[everything[i].workers, everything[i].latency],
                )
                for i in order
            }
            rows = [futures[i].result() for i in range(len(everything))]
    result["load_after"] = load()
    result["minutes"] = (time.monotonic() - started) / 60
    result["matrix"] = rows[: len(matrix)]
    result["extras"] = rows[len(matrix) : len(matrix) + len(extras)]
    result["latency"] = rows[len(matrix) + len(extras) :]
    table = markdown(result)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "throttling-quick" if args.quick else "throttling"
    name += "-latency" if args.only_latency else ""
    name += "-simulated" if args.simulate else ""
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(table)
    print(f"written: {args.out / f'{name}.json'}, {args.out / f'{name}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
