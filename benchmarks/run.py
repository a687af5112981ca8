"""The batchthumb benchmark: one command, loopback only, bounded, stops by itself.

    python benchmarks/run.py            # the README's table (a few minutes on 2 cores)
    python benchmarks/run.py --quick    # a smoke run of the same code, in well under a minute

It starts the sandbox in a process of its own on 127.0.0.1 and measures, side by side in one
run, with interleaved repetitions and medians: throughput at concurrency 32 (batchthumb, a
bare aiohttp loop, ``curl --parallel``, ``xargs -P`` with one curl per item), client CPU per
1,000 requests, rate accuracy, throttling efficiency, peak memory by job size, the snapshot at
50 ms round trips, and start-up.
Tools that are missing (wrk, hey, curl, xargs, uvloop) are skipped with a note. The table is
printed and written, with the machine it came from, to ``benchmarks/results/latest.json`` and
``benchmarks/results/latest.md``.
"""

from __future__ import annotations

import argparse
import bisect
import compileall
import csv
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from batchthumb.model import RunSettings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
TOKEN = "benchmark-token-0123456789abcdef"
PROJECT = "919bb351ef424e2daaf3dd80c179fae9"
CONCURRENCY = 32
CHILD_TIMEOUT = 600.0  # no child runs longer than this; the benchmark always ends


@dataclass(frozen=True, slots=True)
class Scale:
    """How much work one benchmark run does."""

    items: int  # throughput job size
    reps: int  # interleaved repetitions of the throughput comparison
    xargs_items: int  # xargs forks a curl per item: measured on fewer, extrapolated
    rate_seconds: float  # length of each rate-accuracy run
    throttle_seconds: float  # ideal length of each throttling run
    memory_sizes: tuple[int, ...]
    memory_run_seconds: float  # a memory run sends for this long after validation, then stops
    startup_reps: int


QUICK = Scale(2_000, 1, 300, 2.0, 3.0, (10_000, 100_000), 2.0, 3)
DEFAULT = Scale(20_000, 3, 1_000, 10.0, 10.0, (10_000, 100_000, 1_000_000), 5.0, 5)


# -- processes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Child:
    """A finished child process: times from its resource usage, as the kernel counted them."""

    returncode: int
    started: float  # time.monotonic() just before the spawn
    wall: float
    cpu: float  # user + system seconds, its waited-for children included (curl under xargs)
    max_rss_mb: float
    stderr: str


def run_child(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = CHILD_TIMEOUT,
) -> Child:
    """Run ``argv`` to the end (killed after ``timeout``) and read its rusage via wait4."""
    with tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        text = err.read().decode(errors="replace")
    return Child(
        returncode=proc.returncode,
        started=started,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        stderr=text[-2000:],
    )


class Server:
    """The sandbox in its own process (benchmarks/sandbox_server.py)."""

    def __init__(self, *options: str) -> None:
        self.proc = subprocess.Popen(
            # --autocreate: the benchmark's plans are made up, and the sandbox knows none of them.
            [PY, str(HERE / "sandbox_server.py"), "--autocreate", *options],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise SystemExit(f"the sandbox did not start: {line!r}")
        self.url = line.removeprefix("listening on ")

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        """Forget the PUTs seen so far."""
        self._get("/_bench/reset")

    def seen(self) -> Seen:
        """The PUTs seen since the last reset."""
        body = self._get("/_bench/stats")
        return Seen(sorted(body["arrivals"]), {int(k): v for k, v in body["statuses"].items()})

    def cpu(self) -> float:
        """CPU seconds the sandbox process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Stop the sandbox."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Seen:
    """What the sandbox saw: PUT arrival times (monotonic, sorted) and answer statuses."""

    arrivals: list[float]
    statuses: dict[int, int]

    @property
    def span(self) -> float:
        """Seconds from the first PUT to the last."""
        return self.arrivals[-1] - self.arrivals[0] if len(self.arrivals) > 1 else 0.0

    @property
    def rate(self) -> float:
        """The steady-state rate: requests per second from the first PUT to the last."""
        return (len(self.arrivals) - 1) / self.span if self.span else 0.0

    def busiest_second(self) -> int:
        """The most PUTs that arrived in any one-second window."""
        times = self.arrivals
        return max(
            (bisect.bisect_left(times, t + 1.0, lo=i) - i for i, t in enumerate(times)), default=0
        )


# -- job files -------------------------------------------------------------------------------


def plan_id(n: int) -> str:
    """A valid, distinct plan id for item ``n``."""
    return f"{n:032x}"


def img_url(n: int) -> str:
    """A valid img_url for item ``n``."""
    return f"/v1/upload/{PROJECT}/202506/{n}.png"


def write_yaml_job(path: Path, count: int, **settings: object) -> Path:
    """A job file listing ``count`` items inline, as most users write them."""
    with path.open("w", encoding="utf-8") as f:
        for key, value in settings.items():
            f.write(f"{key}: {value}\n")
        f.write(f"defaults:\n  project_id: {PROJECT}\nitems:\n")
        for n in range(count):
            f.write(f"  - plan_id: {plan_id(n)}\n    img_url: {img_url(n)}\n")
    return path


def write_exported_job(path: Path, count: int) -> Path:
    """A job listing ``count`` items inline the way ``export``, ``undo``, ``migrate -o`` and
    ``--backup`` write them (batchthumb.jobwriter): one quoted flow mapping and a note a line.
    """
    with path.open("w", encoding="utf-8") as f:
        f.write(f'defaults:\n  project_id: "{PROJECT}"\nitems:\n')
        for n in range(count):
            f.write(f'  - {{plan_id: "{plan_id(n)}", img_url: "{img_url(n)}"}}  # Plan {n}\n')
    return path


def write_csv_job(path: Path, count: int) -> Path:
    """A job file whose ``count`` items are in a CSV ``items_file`` beside it."""
    data = path.with_suffix(".csv")
    with data.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("project_id", "plan_id", "img_url"))
        writer.writerows((PROJECT, plan_id(n), img_url(n)) for n in range(count))
    path.write_text(f"items_file: {data.name}\n", encoding="utf-8")
    return path


def batchthumb(
    job: Path,
    server: Server,
    *options: str,
    timeout: float = CHILD_TIMEOUT,
    snapshot: bool = False,
) -> Child:
    """``batchthumb run JOB`` against the server, quietly, with a fresh report."""
    report = job.with_suffix(".results.jsonl")
    report.unlink(missing_ok=True)
    argv = [PY, "-m", "batchthumb", "run", str(job), "--endpoint", server.url]
    # --no-snapshot unless asked: the same PUTs as every other client, none skipped as already
    # set by an earlier repetition, and no list calls among the PUTs the sandbox counts.
    argv += ["--report", str(report), "--no-progress", *options]
    argv += [] if snapshot else ["--no-snapshot"]
    child = run_child(argv, env={"BATCHTHUMB_TOKEN": TOKEN}, timeout=timeout)
    report.unlink(missing_ok=True)
    return child


# -- the measurements ------------------------------------------------------------------------


Client = Callable[[Server, int], Child]


@dataclass(slots=True)
class Clients:
    """The ways to send N PUTs at concurrency 32 that the throughput table compares."""

    work: Path
    jobs: dict[int, Path] = field(default_factory=dict)

    def batchthumb(self, server: Server, count: int) -> Child:
        if count not in self.jobs:
            self.jobs[count] = write_yaml_job(self.work / f"throughput-{count}.yaml", count)
        return batchthumb(self.jobs[count], server, "--concurrency", str(CONCURRENCY))

    def aiohttp_floor(self, server: Server, count: int) -> Child:
        argv = [PY, str(HERE / "floor.py"), server.url, str(count), str(CONCURRENCY)]
        return run_child(argv, env={"BATCHTHUMB_TOKEN": TOKEN})

    def curl_parallel(self, server: Server, count: int) -> Child:
        config = self.work / f"curl-{count}.cfg"
        with config.open("w") as f:
            for n in range(count):
                url = f"{server.url}/v3/plan/{PROJECT}/management/{plan_id(n)}/img"
                body = json.dumps({"img_url": img_url(n)}).replace('"', '\\"')
                if n:
                    f.write("next\n")  # options apply to one transfer each
                f.write(
                    f'url = "{url}"\nrequest = "PUT"\noutput = "/dev/null"\nsilent\n'
                    'header = "Content-Type: application/json;charset=UTF-8"\n'
                    f'header = "X-Auth-Token: {TOKEN}"\ndata = "{body}"\n'
                )
        argv = ["curl", "-s", "--parallel", "--parallel-max", str(CONCURRENCY), "-K", str(config)]
        return run_child(argv)

    def xargs_curl(self, server: Server, count: int) -> Child:
        lines = self.work / f"xargs-{count}.txt"
        with lines.open("w") as f:
            for n in range(count):
                url = f"{server.url}/v3/plan/{PROJECT}/management/{plan_id(n)}/img"
                f.write(f"'{json.dumps({'img_url': img_url(n)})}' {url}\n")
        argv = ["xargs", "-a", str(lines), "-P", str(CONCURRENCY), "-n", "2", "curl", "-s"]
        argv += ["-o", "/dev/null", "-X", "PUT", "-H", "Content-Type: application/json"]
        argv += ["-H", f"X-Auth-Token: {TOKEN}", "--data"]
        return run_child(argv)


def throughput(
    server: Server, clients: Clients, scale: Scale, notes: list[str]
) -> list[dict[str, Any]]:
    """Each client sends the same PUTs, repetitions interleaved; medians of each measure."""
    plan: list[tuple[str, Client, int]] = [
        ("batchthumb", clients.batchthumb, scale.items),
        ("bare aiohttp loop (floor)", clients.aiohttp_floor, scale.items),
    ]
    if shutil.which("curl"):
        plan.append(("curl --parallel --parallel-max 32 -K", clients.curl_parallel, scale.items))
        if shutil.which("xargs"):
            plan.append(("xargs -P 32 curl (one per item)", clients.xargs_curl, scale.xargs_items))
        else:
            notes.append("xargs not found: the xargs row is skipped")
    else:
        notes.append("curl not found: the curl rows are skipped")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in plan}
    for rep in range(scale.reps):
        for name, client, count in plan:
            server.reset()
            server_cpu = server.cpu()
            child = client(server, count)
            seen = server.seen()
            ok = seen.statuses.get(200, 0)
            if child.returncode != 0 or ok != count:
                raise SystemExit(
                    f"{name}: exit {child.returncode}, {ok} of {count} PUTs answered 200 "
                    f"({seen.statuses}); {child.stderr}"
                )
            runs[name].append(
                {
                    "requests": count,
                    "rate": seen.rate,
                    "wall": child.wall,
                    "first_request": seen.arrivals[0] - child.started,
                    "cpu_per_1000": child.cpu / count * 1000,
                    "server_cpu_share": (server.cpu() - server_cpu) / child.wall,
                }
            )
            print(
                f"  rep {rep + 1}/{scale.reps} {name}: {runs[name][-1]['rate']:.0f}/s", flush=True
            )
    rows = []
    for name, _, count in plan:
        median = {key: statistics.median(r[key] for r in runs[name]) for key in runs[name][0]}
        extrapolated = count != scale.items
        rows.append(
            {
                "client": name,
                "measured_items": count,
                "steady_rate": median["rate"],
                "wall_s": median["wall"] * (scale.items / count),
                "wall_extrapolated": extrapolated,
                "first_request_s": median["first_request"],
                "cpu_s_per_1000": median["cpu_per_1000"],
                "server_cpu_share": median["server_cpu_share"],
            }
        )
    return rows


def ceiling(server: Server, seconds: float, notes: list[str]) -> list[dict[str, Any]]:
    """The sandbox alone under a fast load generator: what it can take at most."""
    url = f"{server.url}/v3/plan/{PROJECT}/management/{plan_id(0)}/img"
    body = json.dumps({"img_url": img_url(0)})
    rows = []
    duration = f"{max(1, round(seconds))}s"
    if shutil.which("wrk"):
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(
            f'wrk.method = "PUT"\nwrk.body = {json.dumps(body)}\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["X-Auth-Token"] = "{TOKEN}"\n'
        )
        rows.append(
            _load(
                server,
                "wrk -t2 -c32",
                ["wrk", "-t2", f"-c{CONCURRENCY}", "-d", duration, "-s", str(script), url],
            )
        )
        script.unlink()
    if shutil.which("hey"):
        argv = ["hey", "-z", duration, "-c", str(CONCURRENCY), "-m", "PUT"]
        argv += ["-T", "application/json", "-H", f"X-Auth-Token: {TOKEN}", "-d", body, url]
        rows.append(_load(server, "hey -c 32", argv))
    if not rows:
        notes.append("neither wrk nor hey is installed: the sandbox's ceiling was not measured")
    return rows


def _load(server: Server, name: str, argv: list[str]) -> dict[str, Any]:
    server.reset()
    server_cpu = server.cpu()
    child = run_child(argv, timeout=120)
    seen = server.seen()
    return {
        "generator": name,
        "steady_rate": seen.rate,
        "server_cpu_share": (server.cpu() - server_cpu) / child.wall,
        "generator_cpu_s_per_1000": child.cpu / max(1, len(seen.arrivals)) * 1000,
    }


def rate_accuracy(server: Server, work: Path, scale: Scale) -> list[dict[str, Any]]:
    """batchthumb at a configured rate (burst 1): its mean rate and its busiest second."""
    rows = []
    for rate in (10, 100, 1000):
        count = max(10, round(rate * scale.rate_seconds))
        job = write_yaml_job(work / f"rate-{rate}.yaml", count)
        server.reset()
        child = batchthumb(
            job, server, "--rate", str(rate), "--burst", "1", "--concurrency", str(CONCURRENCY)
        )
        seen = server.seen()
        if child.returncode != 0:
            raise SystemExit(f"rate {rate}: exit {child.returncode}: {child.stderr}")
        rows.append(
            {
                "configured": rate,
                "requests": count,
                "achieved": seen.rate,
                "error_pct": (seen.rate / rate - 1) * 100,
                "busiest_second": seen.busiest_second(),
                "bound": rate + 1,
            }
        )
        print(f"  rate {rate}/s: {seen.rate:.2f}/s", flush=True)
    return rows


def throttling(work: Path, scale: Scale) -> list[dict[str, Any]]:
    """batchthumb with no --rate against a sandbox that answers 429 above its limit."""
    rows = []
    # The default concurrency is what a user with no flags gets; 32 shows the cost of a wide
    # first wave, whose requests are all in flight before the first 429 comes back.
    for limit, concurrency in ((50, None), (50, CONCURRENCY), (200, None), (200, CONCURRENCY)):
        count = round(limit * scale.throttle_seconds)
        job = write_yaml_job(work / f"throttle-{limit}.yaml", count)
        options = () if concurrency is None else ("--concurrency", str(concurrency))
        with Server("--rate-limit", str(limit)) as server:
            child = batchthumb(job, server, *options)
            seen = server.seen()
        ideal = count / limit
        puts = len(seen.arrivals)
        rows.append(
            {
                "limit": limit,
                "concurrency": concurrency or RunSettings().concurrency,
                "items": count,
                "ideal_s": ideal,
                "span_s": seen.span,
                "wall_s": child.wall,
                "vs_ideal": seen.span / ideal,
                "puts": puts,
                "throttled_pct": seen.statuses.get(429, 0) / puts * 100,
                "exit": child.returncode,
            }
        )
        print(f"  limit {limit}/s: {seen.span / ideal:.2f}x ideal", flush=True)
    return rows


SNAPSHOT_LATENCY = 0.05  # seconds per request: a round trip to the cloud, not to loopback
# (projects, plans in each): the job, a list call for every 5 PUTs, and a common one.
SNAPSHOT_SHAPES = ((200, 5), (10, 100))


def snapshot(work: Path, scale: Scale) -> list[dict[str, Any]]:
    """Jobs of 1,000 plans at 50 ms round trips, with the snapshot and without.

    With it, each project is listed (one call per 200 plans) before its first PUT; the
    listings overlap the other projects' PUTs. Each run gets a fresh sandbox, so no plan is
    already set and every run sends the same requests.
    """
    rows = []
    for projects, plans in SNAPSHOT_SHAPES:
        job = work / f"snapshot-{projects}.yaml"
        with job.open("w", encoding="utf-8") as f:
            f.write("items:\n")
            for p in range(projects):
                project = f"{p:032x}"
                for n in range(plans):
                    url = f"/v1/upload/{project}/202506/{n}.png"
                    item = f"project_id: {project}, plan_id: {plan_id(n)}, img_url: {url}"
                    f.write(f"  - {{{item}}}\n")
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(scale.reps):
            for with_snapshot in (False, True):
                with Server("--latency", str(SNAPSHOT_LATENCY)) as server:
                    child = batchthumb(job, server, snapshot=with_snapshot)
                    arrivals = server.seen().arrivals
                if child.returncode != 0 or not arrivals:
                    raise SystemExit(f"the snapshot run failed: {child.stderr}")
                runs[with_snapshot].append((child.wall, arrivals[0] - child.started))
        walls = {mode: statistics.median(wall for wall, _ in runs[mode]) for mode in runs}
        ratio = walls[True] / walls[False]
        rows.append(
            {
                "projects": projects,
                "plans": plans,
                "latency_s": SNAPSHOT_LATENCY,
                "concurrency": RunSettings().concurrency,
                "no_snapshot_wall_s": walls[False],
                "wall_s": walls[True],
                "first_put_s": statistics.median(first for _, first in runs[True]),
                "no_snapshot_first_put_s": statistics.median(first for _, first in runs[False]),
                "vs_no_snapshot": ratio,
            }
        )
        print(f"  {projects} x {plans}: {ratio:.2f}x --no-snapshot", flush=True)
    return rows


def memory(server: Server, work: Path, scale: Scale) -> list[dict[str, Any]]:
    """Peak RSS of validate, and of a run that sends for a few seconds, by job size."""
    rows = []
    for count in scale.memory_sizes:
        for layout, write in (
            ("items_file (CSV)", write_csv_job),
            ("YAML items: (as export writes them)", write_exported_job),
        ):
            job = write(work / f"memory-{count}-{layout[:4].strip()}.yaml", count)
            check = run_child([PY, "-m", "batchthumb", "validate", str(job)])
            server.reset()
            limit = f"{scale.memory_run_seconds:g}s"
            run = batchthumb(
                job, server, "--concurrency", str(CONCURRENCY), "--max-duration", limit
            )
            sent = len(server.seen().arrivals)
            rows.append(
                {
                    "items": count,
                    "layout": layout,
                    "validate_rss_mb": check.max_rss_mb,
                    "validate_s": check.wall,
                    "run_rss_mb": run.max_rss_mb,
                    "run_sent": sent,
                    "run_finished": run.returncode == 0,
                    "run_exit": run.returncode,
                }
            )
            print(f"  {count} items, {layout}: run peak {run.max_rss_mb:.0f} MB", flush=True)
            for path in work.glob("memory-*"):
                path.unlink()
    return rows


def startup(work: Path, scale: Scale) -> list[dict[str, Any]]:
    """Median start-up times, interleaved: bare Python, --help, validate of 100,000 items."""
    yaml_job = write_yaml_job(work / "startup-100000.yaml", 100_000)
    csv_job = write_csv_job(work / "startup-100000-csv.yaml", 100_000)
    commands = {
        "python -c pass": [PY, "-c", "pass"],
        "batchthumb --help": [PY, "-m", "batchthumb", "--help"],
        "batchthumb validate (100,000 YAML items)": [
            PY,
            "-m",
            "batchthumb",
            "validate",
            str(yaml_job),
        ],
        "batchthumb validate (100,000 CSV items_file)": [
            PY,
            "-m",
            "batchthumb",
            "validate",
            str(csv_job),
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(scale.startup_reps):
        for name, argv in commands.items():
            child = run_child(argv)
            if child.returncode != 0:
                raise SystemExit(f"{name}: exit {child.returncode}: {child.stderr}")
            times[name].append(child.wall)
    return [{"command": name, "wall_s": statistics.median(t)} for name, t in times.items()]


# -- the report ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures came from."""
    cpu = "unknown"
    with_cpuinfo = Path("/proc/cpuinfo")
    if with_cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", with_cpuinfo.read_text(), re.MULTILINE)
        cpu = match[1] if match else cpu
    versions = {}
    for name in ("aiohttp", "anyio", "yaml", "uvloop"):
        spec = importlib.util.find_spec(name)
        if spec is None:
            versions[name] = None
            continue
        module = __import__(name)
        versions[name] = getattr(module, "__version__", "?")
    import yaml

    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
        "uvloop": versions.pop("uvloop"),
        "versions": versions,
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
        "",
    ]


def markdown(result: dict[str, Any]) -> str:
    """The results as the Markdown tables the README shows."""
    m = result["machine"]
    scale = result["scale"]
    out = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}, "
        f"libyaml {'yes' if m['libyaml'] else 'no'}, uvloop {m['uvloop'] or 'not installed'}. "
        f"{result['date']}; throughput: {scale['items']:,} items at concurrency {CONCURRENCY}, "
        f"median of {scale['reps']} interleaved repetitions.",
        "",
    ]
    if result["ceiling"]:
        out += _table(
            ("sandbox alone, load generator", "steady rate (req/s)", "sandbox CPU share"),
            [
                (r["generator"], f"{r['steady_rate']:,.0f}", f"{r['server_cpu_share']:.0%}")
                for r in result["ceiling"]
            ],
        )
    rows = []
    for r in result["throughput"]:
        wall = f"{r['wall_s']:.1f}"
        if r["wall_extrapolated"]:
            wall += f" (extrapolated from {r['measured_items']:,} items)"
        rows.append(
            (
                r["client"],
                f"{r['steady_rate']:,.0f}",
                wall,
                f"{r['first_request_s']:.2f}",
                f"{r['cpu_s_per_1000']:.2f}",
                f"{r['server_cpu_share']:.0%}",
            )
        )
    out += _table(
        (
            "client",
            "steady rate (req/s, as the sandbox sees it)",
            "wall time (s)",
            "first request (s)",
            "client CPU s per 1,000 req",
            "sandbox CPU share",
        ),
        rows,
    )
    out += _table(
        ("configured rate (/s, burst 1)", "achieved mean (/s)", "error", "busiest second", "bound"),
        [
            (
                r["configured"],
                f"{r['achieved']:.2f}",
                f"{r['error_pct']:+.2f}%",
                r["busiest_second"],
                f"{r['bound']} (rate + burst)",
            )
            for r in result["rate_accuracy"]
        ],
    )
    out += _table(
        (
            "sandbox limit (429 above)",
            "concurrency",
            "items",
            "ideal (s)",
            "first to last PUT (s)",
            "vs ideal",
        ),
        [
            (
                f"{r['limit']}/s",
                f"{r['concurrency']}"
                + (" (default)" if r["concurrency"] == RunSettings().concurrency else ""),
                f"{r['items']:,}",
                f"{r['ideal_s']:.1f}",
                f"{r['span_s']:.1f}",
                f"{r['vs_ideal']:.2f}x, {r['throttled_pct']:.1f}% answered 429",
            )
            for r in result["throttling"]
        ],
    )
    out += _table(
        ("items", "layout", "validate: peak RSS (MB), time (s)", "run: peak RSS (MB)", "sent"),
        [
            (
                f"{r['items']:,}",
                r["layout"],
                f"{r['validate_rss_mb']:.0f}, {r['validate_s']:.2f}",
                f"{r['run_rss_mb']:.0f}",
                f"{r['run_sent']:,}"
                + (" (all)" if r["run_finished"] else " (then --max-duration)"),
            )
            for r in result["memory"]
        ],
    )
    out += _table(
        (
            "snapshot at 50 ms round trips, concurrency 8",
            "requests",
            "wall time (s): --no-snapshot, snapshot",
            "first PUT (s): --no-snapshot, snapshot",
            "snapshot vs --no-snapshot",
        ),
        [
            (
                f"{r['projects']} projects x {r['plans']} plans",
                f"{r['projects'] * r['plans']:,} PUTs + {r['projects']} lists",
                f"{r['no_snapshot_wall_s']:.1f}, {r['wall_s']:.1f}",
                f"{r['no_snapshot_first_put_s']:.2f}, {r['first_put_s']:.2f}",
                f"{r['vs_no_snapshot']:.2f}x",
            )
            for r in result["snapshot"]
        ],
    )
    out += _table(
        ("start-up", "wall (s, median)"),
        [(f"`{r['command']}`", f"{r['wall_s']:.3f}") for r in result["startup"]],
    )
    out += [f"Note: {note}" for note in result["notes"]]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the tables; write them as JSON and Markdown."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--items", type=int, help="throughput job size (default 20,000)")
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 3)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where results go")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else DEFAULT
    if args.items:
        scale = Scale(**{**asdict(scale), "items": args.items})
    if args.reps:
        scale = Scale(**{**asdict(scale), "reps": args.reps})
    notes: list[str] = []
    # Byte-compile batchthumb as pip does on install: under PYTHONDONTWRITEBYTECODE (set in
    # some containers) every run would otherwise compile its source anew, some 40 ms of CPU
    # that an installed copy never spends and that the floor's aiohttp does not either.
    compileall.compile_dir(ROOT / "batchthumb", quiet=1)
    info = machine()
    if info["uvloop"] is None:
        notes.append(
            "uvloop is not installed: batchthumb ran on asyncio's own loop "
            "(`pip install '.[uvloop]'` to use it)"
        )
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": info,
        "scale": asdict(scale),
    }
    with tempfile.TemporaryDirectory(prefix="batchthumb-bench-") as tmp:
        work = Path(tmp)
        with Server() as server:
            print("sandbox ceiling", flush=True)
            result["ceiling"] = ceiling(server, 5.0 if not args.quick else 2.0, notes)
            print("throughput", flush=True)
            result["throughput"] = throughput(server, Clients(work), scale, notes)
            print("rate accuracy", flush=True)
            result["rate_accuracy"] = rate_accuracy(server, work, scale)
            print("memory", flush=True)
            result["memory"] = memory(server, work, scale)
        print("throttling", flush=True)
        result["throttling"] = throttling(work, scale)
        print("snapshot", flush=True)
        result["snapshot"] = snapshot(work, scale)
        print("start-up", flush=True)
        result["startup"] = startup(work, scale)
    result["notes"] = notes
    table = markdown(result)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "latest.md").write_text(table)
    print(f"written: {args.out / 'latest.json'}, {args.out / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
