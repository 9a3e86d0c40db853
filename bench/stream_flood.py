"""One user floods the dashboard with live event streams: how many the dashboard refuses (429)
and keeps open, and what the flood does to the hub's REST API latency for another user.

Run as root on the hub machine, with the test cluster up:

    /opt/hubdash/venv/bin/python -m bench.stream_flood [--streams 300] [--requests 300]
        [--cap N] [--port 13400]

dave opens `--streams` event streams at once (the My servers page's stream,
/services/hubdash/api/users/dave/events, each on its own connection through the proxy) and
holds them. Meanwhile carol calls the hub's REST API (GET /hub/api/users/carol with her own
token, one request every 50 ms on a kept-alive connection) `--requests` times; the same is
measured before the flood. Also counted: the hub's API requests a second in each window (from
its jupyterhub_request_duration_seconds_count, less carol's own), i.e. what the dashboard
asked of the hub for dave's streams. `--cap N` sets the dashboard's per-user and total caps
to N (default: the dashboard's own defaults), e.g. `--cap 1000` for a flood without a cap.

The hub and its dashboard service run this checkout's code (PYTHONPATH), whatever copy the
venv holds. No server is started and no job submitted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from bench.common import ROOT, Cleanup, percentile, print_table, run_cleanly
from bench.hubs import BenchHub, start_hub

FLOODER, PROBER = "dave", "carol"
DASH = "/services/hubdash/"
REQUESTS_METRIC = re.compile(
    r'^jupyterhub_request_duration_seconds_count\{[^}]*\} (\S+)$', re.M
)  # fmt: skip


@dataclass
class Flood:
    """The streams of one user, opened at once and held until `stop` is set."""

    host: str
    port: int
    path: str
    token: str
    count: int
    statuses: Counter = field(default_factory=Counter)
    answered_after: float = 0.0  # seconds until every stream had its answer
    answered_at: float = 0.0  # time.monotonic() then
    stop: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)

    async def _one(self) -> asyncio.StreamWriter | None:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: token {self.token}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            self.statuses[int(head.split()[1])] += 1
            return writer
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            self.statuses[type(exc).__name__] += 1
            return None

    async def _run(self) -> None:
        started = time.monotonic()
        writers = await asyncio.gather(*(self._one() for _ in range(self.count)))
        self.answered_at = time.monotonic()
        self.answered_after = self.answered_at - started
        self.answered.set()
        await asyncio.to_thread(self.stop.wait)  # held open, nothing read: a hostile client
        for writer in writers:
            if writer is not None:
                writer.close()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)
        thread.start()
        return thread


def hub_requests(hub: BenchHub) -> float:
    """Every request the hub has answered so far (its own request-duration counters)."""
    headers = {"Authorization": f"token {hub.token}"}
    text = requests.get(f"{hub.url}/hub/metrics", headers=headers, timeout=60).text
    return sum(float(value) for value in REQUESTS_METRIC.findall(text))


def probe(
    hub: BenchHub, token: str, count: int, every: float = 0.05, starts: list[float] | None = None
) -> list[float]:
    """`count` calls of GET /hub/api/users/<PROBER> with the prober's token; latencies, ms
    (and when each began, time.monotonic(), appended to `starts`)."""
    session = requests.Session()
    session.headers["Authorization"] = f"token {token}"
    latencies = []
    for _ in range(count):
        if starts is not None:
            starts.append(time.monotonic())
        started = time.perf_counter()
        answer = session.get(f"{hub.url}/hub/api/users/{PROBER}", timeout=60)
        latencies.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        time.sleep(max(0.0, every - (time.perf_counter() - started)))
    session.close()
    return latencies


def window(
    hub: BenchHub, token: str, count: int, starts: list[float] | None = None
) -> tuple[list[float], float]:
    """Probe latencies, and the hub's other API requests a second meanwhile."""
    before, started = hub_requests(hub), time.monotonic()
    latencies = probe(hub, token, count, starts=starts)
    elapsed = time.monotonic() - started
    others = hub_requests(hub) - before - count - 1  # less the probe's and this metrics read
    return latencies, others / elapsed


def dashboard_answers(hub: BenchHub, token: str) -> bool:
    """Whether the dashboard serves the prober's cards (it is up and knows the token)."""
    answer = requests.get(
        f"{hub.url}{DASH}api/users/{PROBER}/cards",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    return answer.status_code == 200


def stream_opens(hub: BenchHub, token: str) -> int:
    """The status of one more stream of the flooder (read its head, then hang up)."""
    with requests.get(
        f"{hub.url}{DASH}api/users/{FLOODER}/events",
        headers={"Authorization": f"token {token}", "Accept": "text/event-stream"},
        stream=True,
        timeout=30,
    ) as answer:
        return answer.status_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=300, help="streams the flooder opens")
    parser.add_argument("--requests", type=int, default=300, help="API calls per window")
    parser.add_argument("--cap", type=int, default=0, help="the dashboard's stream caps")
    parser.add_argument("--port", type=int, default=13400, help="the hub's port (+1, +50, +81)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the hub it starts authenticates the test cluster's users (PAM)")
        return 2
    prefix = f"hdbench{os.getpid()}"
    tokens = {user: secrets.token_hex(16) for user in (FLOODER, PROBER)}
    # This checkout's hub and dashboard (a managed service keeps PYTHONPATH).
    os.environ["PYTHONPATH"] = str(ROOT)
    if args.cap:
        caps = f"--HubDash.max_streams_per_user={args.cap} --HubDash.max_streams_total={args.cap}"
        os.environ["HUBDASH_BENCH_DASH_ARGS"] = caps
    extra = f"c.JupyterHub.api_tokens = {{{tokens[FLOODER]!r}: {FLOODER!r}, "
    extra += f"{tokens[PROBER]!r}: {PROBER!r}}}\n"
    results: dict[str, object] = {}

    def body(cleanup: Cleanup) -> None:
        hub = start_hub("hubdash", args.port, prefix, extra_config=extra)
        cleanup.append(hub.terminate)
        # The dashboard is up; asked with the prober's token: the flooder's is new to it, so
        # each stream of the flood may ask the hub who it is (the worst case).
        hub.wait_for(lambda: dashboard_answers(hub, tokens[PROBER]), 60)
        probe(hub, tokens[PROBER], 20)  # warm-up: the prober's token is known, pools open
        results["quiet"] = window(hub, tokens[PROBER], args.requests)
        print(f"  without the flood: {summary(results['quiet'][0])}", flush=True)

        flood = Flood("127.0.0.1", args.port, f"{DASH}api/users/{FLOODER}/events",
                      tokens[FLOODER], args.streams)  # fmt: skip
        thread = flood.start()
        cleanup.append(lambda: (flood.stop.set(), thread.join(30)))
        starts: list[float] = []
        results["flood"] = window(hub, tokens[PROBER], args.requests, starts)
        flood.answered.wait(60)
        # Calls begun while the streams were being answered, and once they were all held.
        phases = [start >= flood.answered_at for start in starts]
        flood_ms = results["flood"][0]
        results["opening"] = [ms for ms, held in zip(flood_ms, phases, strict=True) if not held]
        results["held"] = [ms for ms, held in zip(flood_ms, phases, strict=True) if held]
        print(f"  during the flood:  {summary(results['flood'][0])}", flush=True)
        results["statuses"], results["answered_after"] = flood.statuses, flood.answered_after
        flood.stop.set()
        thread.join(30)
        started = time.monotonic()
        hub.wait_for(lambda: stream_opens(hub, tokens[FLOODER]) == 200, 30)
        results["released_after"] = time.monotonic() - started

    if not run_cleanly(prefix, body):
        return 130
    report(args, results)
    return 0


def summary(latencies: list[float]) -> str:
    return f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms"


def report(args: argparse.Namespace, results: dict) -> None:
    statuses: Counter = results["statuses"]
    others = ", ".join(f"{k}: {v}" for k, v in statuses.items() if k not in (200, 429))
    print(
        f"\n{FLOODER} opened {args.streams} streams at once (caps: "
        f"{args.cap or 'the defaults'}): {statuses[200]} open, {statuses[429]} refused (429)"
        f"{'; ' + others if others else ''}; all answered within "
        f"{results['answered_after']:.1f} s. After the flood closed, a new stream opened "
        f"within {results['released_after']:.1f} s.\n"
    )
    rows = []
    windows = [
        ("without the flood", *results["quiet"]),
        ("during the flood", *results["flood"]),
        ("- while opening", results["opening"], None),
        ("- held open", results["held"], None),
    ]
    for label, latencies, rate in windows:
        if not latencies:
            continue
        rows.append(
            (
                label,
                str(len(latencies)),
                f"{percentile(latencies, 50):.1f}",
                f"{percentile(latencies, 99):.1f}",
                f"{max(latencies):.0f}",
                "" if rate is None else f"{rate:.1f}",
            )
        )
    quiet, flood = results["quiet"][0], results["flood"][0]
    print(f"{PROBER}'s hub API calls (GET /hub/api/users/{PROBER}, her own token)\n")
    print_table(["window", "calls", "p50 ms", "p99 ms", "max ms", "other hub req/s"], rows)
    print(
        f"ratio during/without: p50 {percentile(flood, 50) / percentile(quiet, 50):.2f}, "
        f"p99 {percentile(flood, 99) / percentile(quiet, 99):.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
