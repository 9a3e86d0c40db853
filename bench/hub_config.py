"""The hub the benchmarks measure hubdash with: the demo's configuration (examples/demo_config.py)
plus a service token for the benchmark, every test-cluster user, a `hold` queue and named servers.

Started by bench/hubs.py, which sets the HUBDASH_* variables read here and in the demo config.
"""

import os

from spawner.hubsetup import setup_hub

c = get_config()  # noqa: F821
load_subconfig(os.path.join(os.environ["HUBDASH_ROOT"], "examples", "demo_config.py"))  # noqa: F821

services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
c.JupyterHub.services = services + [
    {"name": "hubdash-bench", "api_token": os.environ["HUBDASH_BENCH_TOKEN"]},
]
c.JupyterHub.load_roles = roles + [
    {
        "name": "hubdash-bench",
        "scopes": [
            "admin:users",
            "admin:servers",
            "admin:server_state",
            "list:users",
            "access:servers",
            "read:metrics",
        ],
        "services": ["hubdash-bench"],
    }
]
c.Authenticator.allowed_users = {"alice", "bob", "carol", "dave", "erin"}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0  # no limit: the hub-load bench wants 20 each
# POST /users/.../servers answers at once (202): the bench starts many spawns side by side.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
# Every stall of the hub's event loop above 0.1 s gets its own log line, with its length.
c.PeriodicMetricsCollector.event_loop_interval_log_threshold = 0.1
c.JupyterHub.log_level = "DEBUG" if os.environ.get("HUBDASH_BENCH_DEBUG") else "INFO"

c.JobSpawner.job_name_prefix = os.environ["HUBDASH_BENCH_JOB_PREFIX"]
c.JobSpawner.queues["hold"] = {"description": "takes jobs, never starts them"}
if os.environ.get("HUBDASH_BENCH_TINY"):
    # A trivially small server (bench/tinyserver.py) where only the spawner's cost matters.
    c.JobSpawner.cmd = [
        c.JobSpawner.remote_python,
        os.path.join(os.environ["HUBDASH_ROOT"], "bench", "tinyserver.py"),
    ]

if os.environ.get("HUBDASH_BENCH_EXTRA_CONFIG"):
    load_subconfig(os.environ["HUBDASH_BENCH_EXTRA_CONFIG"])  # noqa: F821

setup_hub(c)
