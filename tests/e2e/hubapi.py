"""Driving a test JupyterHub through its REST API: what the e2e tests and the benchmarks share.

- `add_api_service` (for a hub config): the service token the driver speaks with, and its role;
- `wait_until` (for the driver): poll the hub, or the cluster, until something holds.

The dependency goes one way: bench/ uses this module, this module knows nothing of bench/. It
imports the standard library only, because it is loaded in three kinds of process:
tests/e2e/hubprocess.py imports it as a package module; a hub config (tests/e2e/hub_config.py,
bench/bench_access.py) runs it with `runpy.run_path`, in the product venv or in the bench-only
venv, where `tests` is no package on sys.path; bench/hubs.py imports it as `tests.e2e.hubapi`
with the checkout root put on sys.path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# What the driver does through the API: start, stop and inspect any user's servers (their
# spawner state included), list users, reach the servers, read the hub's metrics.
API_SCOPES = (
    "admin:users",
    "admin:servers",
    "admin:server_state",
    "list:users",
    "access:servers",
    "read:metrics",
)


def add_api_service(c: Any, name: str, token: str) -> None:
    """Give the hub config `c` a service `name` with API token `token`, and a role of the same
    name with API_SCOPES. Added to the services and roles configured so far (e.g. the demo's
    dashboard service), not in their place."""
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    c.JupyterHub.services = services + [{"name": name, "api_token": token}]
    c.JupyterHub.load_roles = roles + [
        {"name": name, "scopes": list(API_SCOPES), "services": [name]},
    ]


def wait_until(
    what: Callable[[], Any],
    timeout: float,
    step: float,
    error: type[Exception] = TimeoutError,
) -> Any:
    """Call `what()` every `step` seconds until it returns something true, and return that;
    after `timeout` seconds raise `error` (the tests raise AssertionError: a failed check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(step)
    raise error(f"not reached within {timeout:g} s: {what.__doc__ or what}")
