"""The dashboard's status page, in Chromium: how long after the scheduler starts a queued job the
page shows it running, and how many bytes the page costs to load.

Run as root on the hub machine, with the test cluster up and a free CPU in `debug`:

    /opt/hubdash/venv/bin/python -m bench.dashboard [--rounds 5] [--port 13100]

Per round it spawns a server of carol into `hold` (queued for ever), opens its status page
(/services/hubdash/status/carol/<server>) logged in as carol, waits for "queued", then moves
the job to `debug` (`scontrol update JobId=N Partition=debug`), where it starts at once. The
start is slurmctld's log line allocating the job (ms); the page's moment is taken in
the page itself (Date.now() in a MutationObserver on #status-word) when it leaves "queued";
the spawner's own moment is its "running" progress event (the server's state history).
Transfer size: every response of the page's first load (headers + encoded bodies, as
Chromium counts them), the live event stream excluded; "cold" is the first round (empty
cache), "warm" the later ones. Every job is cancelled at the end,
also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from playwright.sync_api import Page, sync_playwright

from bench.common import (
    Cleanup,
    free_cpus,
    percentile,
    print_table,
    run_cleanly,
)
from bench.hubs import BenchHub, start_hub
from bench.spawn_overhead import allocated_at

USER = "carol"
DASH = "/services/hubdash/"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
WATCH_STATUS = """() => {
  const word = document.getElementById("status-word");
  window.hdbenchLeftQueue = null;
  new MutationObserver(() => {
    const status = word.getAttribute("data-status");
    if (window.hdbenchLeftQueue === null && status !== "queued") {
      window.hdbenchLeftQueue = {status: status, at: Date.now()};
    }
  }).observe(word, {attributes: true, attributeFilter: ["data-status"]});
}"""


def log_in(page: Page, hub: BenchHub) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", USER)
    page.fill("#password_input", USER)  # the test cluster's users: password = name
    page.click("#login_submit")
    page.wait_for_url(lambda url: "/hub/login" not in url, timeout=30_000)


@dataclass
class Round:
    shown: float  # seconds from the allocation to the page showing it
    spawner: float | None  # ... to the spawner's "running" progress event
    status: str  # what the page showed first after "queued"
    loaded: int  # bytes of the page's load


def one_round(page: Page, hub: BenchHub, name: str) -> Round:
    hub.spawn(USER, name, queue="hold", walltime="10")
    job_id = hub.wait_for(lambda: hub.job_id(USER, name), 60)
    sizes: list[int] = []

    def finished(request) -> None:  # noqa: ANN001 - Playwright's Request
        s = request.sizes()
        sizes.append(s["responseHeadersSize"] + s["responseBodySize"])

    page.on("requestfinished", finished)
    page.goto(f"{hub.url}{DASH}status/{USER}/{name}", wait_until="load")
    page.wait_for_selector('#status-word[data-status="queued"]', timeout=60_000)
    page.remove_listener("requestfinished", finished)
    loaded = sum(sizes)
    page.evaluate(WATCH_STATUS)
    subprocess.run(
        ["scontrol", "update", f"JobId={job_id}", "Partition=debug"], check=True, timeout=30
    )
    page.wait_for_function("() => window.hdbenchLeftQueue !== null", timeout=120_000)
    left = page.evaluate("() => window.hdbenchLeftQueue")
    alloc = allocated_at(job_id)
    state = (hub.server(USER, name) or {}).get("state") or {}
    told = [e["time"] for e in state.get("history", []) if e.get("phase") == "running"]
    hub.stop(USER, name)
    hub.wait_for(lambda: hub.server(USER, name) is None, 120)
    return Round(
        left["at"] / 1000.0 - alloc, told[0] - alloc if told else None, left["status"], loaded
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="queued -> running changes to time")
    parser.add_argument("--port", type=int, default=13100, help="the hub's port")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: it moves jobs with scontrol and reads slurmctld's log")
        return 2
    print(f"{free_cpus()} idle CPUs in debug (the moved job needs one)")
    prefix = f"hdbench{os.getpid()}"
    results = []

    def body(cleanup: Cleanup) -> None:
        hub = start_hub("hubdash", args.port, prefix)
        cleanup.append(hub.terminate)
        cleanup.append(lambda: hub.stop_all(timeout=120))
        hub.ensure_users([USER])
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                log_in(page, hub)
                for n in range(args.rounds):
                    result = one_round(page, hub, f"dash{n}")
                    results.append(result)
                    print(
                        f"  round {n + 1}: page showed '{result.status}' {result.shown:.2f} s "
                        f"after the allocation (spawner knew at {result.spawner or 0:.2f} s); "
                        f"load {result.loaded / 1024:.0f} KiB",
                        flush=True,
                    )
                    time.sleep(1)
            finally:
                browser.close()

    if not run_cleanly(prefix, body):
        return 130
    delays = [r.shown for r in results]
    told = [r.spawner for r in results if r.spawner is not None]
    sizes = [r.loaded for r in results]
    print()
    print_table(
        [
            "rounds",
            "alloc->page p50 s",
            "max s",
            "alloc->spawner knew p50 s",
            "page showed",
            "load KiB cold",
            "warm (p50)",
        ],  # fmt: skip
        [
            (
                len(results),
                f"{percentile(delays, 50):.2f}",
                f"{max(delays):.2f}",
                f"{percentile(told, 50):.2f}" if told else "-",
                ", ".join(sorted({r.status for r in results})),
                f"{sizes[0] / 1024:.0f}",
                f"{percentile(sizes[1:], 50) / 1024:.0f}" if len(sizes) > 1 else "-",
            )
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
