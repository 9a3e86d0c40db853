"""The hub under many spawns: with 100 servers pending (5 users x 20 named servers, in the `hold`
partition that never starts them), the REST API's latency, the longest stall of the hub's event
loop (JupyterHub's own jupyterhub_event_loop_interval_seconds, and its log line for each stall
above 0.1 s), the hub's memory (RSS from /proc) and CPU. Measured first with no server, then
with all of them pending.

Run as root on the hub machine, with the test cluster up:

    /opt/hubdash/venv/bin/python -m bench.hub_load [--servers 100] [--seconds 60]
        [--kinds hubdash] [--port 13100]

`--kinds hubdash,batchspawner` measures batchspawner the same way (its 100 spawners each run
ssh + squeue twice a second: expect the machine to saturate). Every job is cancelled at the
end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.common import (
    USERS,
    Cleanup,
    live_jobs,
    percentile,
    print_table,
    rss_mb,
    run_cleanly,
)
from bench.hubs import BenchHub, add_hub_arguments, hubs_to_measure, start_hub

METRIC = "jupyterhub_event_loop_interval_seconds"
BUCKET = re.compile(rf'^{METRIC}_bucket{{le="([^"]+)"}} (\S+)$', re.M)
STALL_LINE = re.compile(r"^\[W .*Event loop was unresponsive for at least ([\d.]+)s", re.M)


@dataclass
class Window:
    label: str
    api_ms: list[float]
    stall_bucket: str  # the highest histogram bucket that got an observation
    stall_logged: float  # the longest stall the hub logged, seconds
    stalls_over_100ms: int
    rss_mb: float
    cpu_percent: float


def buckets(hub: BenchHub) -> dict[str, float]:
    headers = {"Authorization": f"token {hub.token}"}
    text = requests.get(f"{hub.url}/hub/metrics", headers=headers, timeout=60).text
    return {le: float(count) for le, count in BUCKET.findall(text)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def api_calls(hub: BenchHub, seconds: float, every: float = 0.2) -> list[float]:
    """REST calls through the proxy, each on a new connection, alternating the user list and
    one user's model (with servers); their latencies in ms."""
    latencies = []
    paths = ["/users"] + [f"/users/{user}" for user in USERS]
    headers = {"Authorization": f"token {hub.token}"}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        answer = requests.get(
            f"{hub.url}/hub/api{paths[n % len(paths)]}", headers=headers, timeout=60
        )
        latencies.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        n += 1
        time.sleep(max(0.0, every - (time.perf_counter() - started)))
    return latencies


def measure(hub: BenchHub, label: str, seconds: float) -> Window:
    log = hub.log_path
    log_offset = log.stat().st_size
    before_buckets, before_cpu = buckets(hub), cpu_seconds(hub.pid)
    started = time.monotonic()
    latencies = api_calls(hub, seconds)
    elapsed = time.monotonic() - started
    after_buckets, after_cpu = buckets(hub), cpu_seconds(hub.pid)
    grown = [le for le, count in after_buckets.items() if count > before_buckets.get(le, 0) and le]
    # Cumulative buckets: the smallest `le` holding every new observation bounds the longest.
    total_new = after_buckets.get("+Inf", 0) - before_buckets.get("+Inf", 0)
    bound = next(
        (
            le
            for le in sorted((le for le in grown if le != "+Inf"), key=float)
            if after_buckets[le] - before_buckets.get(le, 0) >= total_new
        ),
        "+Inf",
    )
    with open(log, errors="replace") as fh:
        fh.seek(log_offset)
        stalls = [float(s) for s in STALL_LINE.findall(fh.read())]
    window = Window(
        label,
        latencies,
        f"<= {float(bound) * 1000:.0f} ms" if bound != "+Inf" else "> 10 s",
        max(stalls, default=0.0),
        len(stalls),
        rss_mb(hub.pid),
        100 * (after_cpu - before_cpu) / elapsed,
    )
    print(
        f"  {hub.kind} {label}: API p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms; longest stall {window.stall_logged:.2f} s; "
        f"RSS {window.rss_mb:.0f} MB; CPU {window.cpu_percent:.0f}%",
        flush=True,
    )
    return window


def spawn_all(hub: BenchHub, servers: int) -> None:
    """`servers` named servers spread over every test user, all into `hold`."""
    names = [(USERS[n % len(USERS)], f"q{n // len(USERS)}") for n in range(servers)]
    hubdash = hub.kind == "hubdash"
    options = {"queue": "hold", "walltime": "30"} if hubdash else {"partition": "hold"}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda un: hub.spawn(un[0], un[1], **options), names))

    def all_pending() -> bool:
        """every server's job pending in the queue"""
        return len(live_jobs(hub.job_prefix)) >= servers

    hub.wait_for(all_pending, 900, step=2)


def bench_kind(kind: str, port: int, prefix: str, args: argparse.Namespace) -> list[Window]:
    hub = start_hub(kind, port, prefix)
    try:
        hub.ensure_users(list(USERS))
        time.sleep(args.warmup)
        windows = [measure(hub, "no server", args.seconds)]
        started = time.monotonic()
        spawn_all(hub, args.servers)
        print(f"  {args.servers} servers pending after {time.monotonic() - started:.0f} s")
        time.sleep(args.warmup)
        windows.append(measure(hub, f"{args.servers} pending", args.seconds))
        return windows
    finally:
        try:
            hub.stop_all(timeout=300)
        finally:
            hub.terminate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=100, help="pending servers")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=10.0, help="wait before each window")
    add_hub_arguments(parser, ["hubdash"])
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: it reads the hub's /proc entry and cancels the jobs it made")
        return 2
    prefix = f"hdbench{os.getpid()}"
    rows = []

    def body(cleanup: Cleanup) -> None:
        for kind, port in hubs_to_measure(args):
            for w in bench_kind(kind, port, prefix, args):
                rows.append(
                    (
                        kind,
                        w.label,
                        str(len(w.api_ms)),
                        f"{percentile(w.api_ms, 50):.1f}",
                        f"{percentile(w.api_ms, 99):.1f}",
                        f"{max(w.api_ms):.0f}",
                        f"{w.stall_logged:.2f}" if w.stalls_over_100ms else "< 0.1",
                        str(w.stalls_over_100ms),
                        w.stall_bucket,
                        f"{w.rss_mb:.0f}",
                        f"{w.cpu_percent:.0f}",
                    )
                )

    if not run_cleanly(prefix, body):
        return 130
    print(f"\nthe hub under load ({args.seconds:g} s windows; API calls through the proxy)\n")
    print_table(
        [
            "hub",
            "servers",
            "API calls",
            "p50 ms",
            "p99 ms",
            "max ms",
            "longest stall s",
            "stalls > 0.1 s",
            "loop metric",
            "RSS MB",
            "CPU %",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
