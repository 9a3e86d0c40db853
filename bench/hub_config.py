"""The hub the benchmarks measure hubdash with: the demo's configuration (examples/demo_config.py)
plus a service token for the benchmark, every test-cluster user, the never-starting queue (`hold`,
Grid Engine's `hold.q`; with HUBDASH_SCHEDULER=all in each cluster's entry) and named servers.

Started by bench/hubs.py, which sets the HUBDASH_* variables read here and in the demo config.
"""

import os
from runpy import run_path

from hubdash.spawner.hubsetup import setup_hub

c = get_config()  # noqa: F821
load_subconfig(os.path.join(os.environ["HUBDASH_ROOT"], "examples", "demo_config.py"))  # noqa: F821

run_path(os.path.join(os.environ["HUBDASH_ROOT"], "bench", "bench_access.py"))["add_bench_access"](
    c
)
c.JupyterHub.log_level = "DEBUG" if os.environ.get("HUBDASH_BENCH_DEBUG") else "INFO"
# batchspawner, measured beside us, runs without internal TLS, and so does bench/tinyserver.py:
# so do these hubs, unless HUBDASH_BENCH_TLS=1 (the demo's setting) is given.
if not os.environ.get("HUBDASH_BENCH_TLS"):
    c.JupyterHub.internal_ssl = False
    c.ConfigurableHTTPProxy.api_url = c.ConfigurableHTTPProxy.api_url.replace("https:", "http:")
    # The demo's idle culler was set up for internal TLS (add_idle_culler reads it then).
    for service in c.JupyterHub.services:
        if service.get("name") == "idle-culler":
            service["command"] = [
                arg for arg in service["command"] if not arg.startswith(("--ssl-", "--internal-"))
            ]

c.JobSpawner.job_name_prefix = os.environ["HUBDASH_BENCH_JOB_PREFIX"]
# Another sshd on the login node (bench/class_burst.py runs one at OpenSSH's default limits).
if os.environ.get("HUBDASH_BENCH_LOGIN_PORT"):
    c.JobSpawner.login_port = int(os.environ["HUBDASH_BENCH_LOGIN_PORT"])
    c.JobSpawner.known_hosts = os.environ["HUBDASH_BENCH_KNOWN_HOSTS"]


def with_hold(queues: dict, scheduler: str) -> dict:
    """A queue table plus the test cluster's queue that takes jobs and never starts them
    (Grid Engine's is hold.q)."""
    hold = "hold.q" if scheduler == "sge" else "hold"
    return {**queues, hold: {"description": "takes jobs, never starts them"}}


scheduler = os.environ.get("HUBDASH_SCHEDULER", "slurm")
if scheduler == "all":
    # Each cluster reads its own queue table, not the spawner-wide one.
    c.JobSpawner.clusters = {
        name: {**entry, "queues": with_hold(entry["queues"], entry["scheduler"])}
        for name, entry in c.JobSpawner.clusters.items()
    }
else:
    c.JobSpawner.queues = with_hold(c.JobSpawner.queues, scheduler)
if os.environ.get("HUBDASH_BENCH_TINY"):
    # A trivially small server (bench/tinyserver.py) where only the spawner's cost matters.
    c.JobSpawner.cmd = [
        c.JobSpawner.remote_python,
        os.path.join(os.environ["HUBDASH_ROOT"], "bench", "tinyserver.py"),
    ]

# Options for the dashboard service (bench/stream_flood.py sets its stream caps this way).
dash_args = os.environ.get("HUBDASH_BENCH_DASH_ARGS", "").split()
for service in c.JupyterHub.services:
    if service["name"] == "hubdash" and dash_args:
        service["command"] = [*service["command"], *dash_args]

if os.environ.get("HUBDASH_BENCH_STALLWATCH"):
    # What the loop was doing in each stall (bench/stallwatch.py), for the burst's profile.
    run_path(os.path.join(os.environ["HUBDASH_ROOT"], "bench", "stallwatch.py"))["install"](
        os.environ["HUBDASH_BENCH_STALLWATCH"]
    )

if os.environ.get("HUBDASH_BENCH_EXTRA_CONFIG"):
    load_subconfig(os.environ["HUBDASH_BENCH_EXTRA_CONFIG"])  # noqa: F821

setup_hub(c)
