"""The benchmark's own service token and its role, added to a hub's configuration (both bench
hubs load this file). The token comes from $HUBDASH_BENCH_TOKEN, set by bench/hubs.py.
"""

import os

c = get_config()  # noqa: F821

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
# Every test-cluster user, named servers without limit (the hub-load bench wants 20 each).
c.Authenticator.allowed_users = {"alice", "bob", "carol", "dave", "erin"}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0
# POST /users/.../servers answers at once (202): the bench starts many spawns side by side.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
# Every stall of the hub's event loop above 0.1 s gets its own log line, with its length.
c.PeriodicMetricsCollector.event_loop_interval_log_threshold = 0.1
