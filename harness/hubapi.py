"""A test hub's service token, and polling: what a hub config and its driver share.

- `add_api_service` (for a hub config): the service token the driver speaks with, and its role;
- `wait_until` (for the driver): poll the hub, or the cluster, until something holds.

Standard library only, because a hub config runs this file with `runpy.run_path` (a config is
no package module, and the checkout is not on the hub's sys.path), in the product venv or in
the benchmarks' batchspawner venv; the drivers (harness.hubclient) import it as a module.
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
