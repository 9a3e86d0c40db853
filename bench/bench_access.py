"""What both bench hubs add to their configuration: the benchmark's own service token and role,
every test-cluster user (and those of $HUBDASH_BENCH_USERS), unlimited named servers, spawns
that answer at once, and a log line for every event-loop stall. The token comes from
$HUBDASH_BENCH_TOKEN, set by bench/hubs.py.

A hub config runs it with `runpy.run_path(...)["add_bench_access"](c)`: a file loaded with
load_subconfig would get a config of its own, and its service list would replace the hub's.
"""

import os
from runpy import run_path
from typing import Any


def add_bench_access(c: Any) -> None:
    # The same service and role the e2e tests' hub has (harness/hubapi.py), under the bench's
    # name: run from its file, since this one is run from its file too (no package here).
    hubapi = os.path.join(os.environ["HUBDASH_ROOT"], "harness", "hubapi.py")
    run_path(hubapi)["add_api_service"](c, "hubdash-bench", os.environ["HUBDASH_BENCH_TOKEN"])
    # The five test users, and more of the test bed's (scripts/testcluster up --users N) when
    # a benchmark names them in $HUBDASH_BENCH_USERS (separated by spaces).
    more = os.environ.get("HUBDASH_BENCH_USERS", "").split()
    c.Authenticator.allowed_users = {"alice", "bob", "carol", "dave", "erin", *more}
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0  # the hub-load bench wants 20 each
    # POST /users/.../servers answers at once (202): the bench starts spawns side by side.
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
    # Every stall of the hub's event loop above 0.1 s gets its own log line, with its length.
    c.PeriodicMetricsCollector.event_loop_interval_log_threshold = 0.1
