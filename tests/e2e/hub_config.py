"""The demo hub plus a service token the tests use to read server state through the REST API."""

import os

c = get_config()  # noqa: F821
load_subconfig(os.path.join(os.environ["HUBDASH_ROOT"], "examples", "demo_config.py"))  # noqa: F821

c.JupyterHub.services = [
    {"name": "hubdash-tests", "api_token": os.environ["HUBDASH_TEST_TOKEN"]},
]
c.JupyterHub.load_roles = [
    {
        "name": "hubdash-tests",
        "scopes": ["admin:users", "admin:servers", "admin:server_state", "list:users"],
        "services": ["hubdash-tests"],
    }
]
c.JupyterHub.log_level = "DEBUG"
# Jobs of this test session carry its tag, so the queue check after the session counts
# only them (other hubs may share the test cluster).
c.JobSpawner.job_name_prefix = os.environ["HUBDASH_JOB_PREFIX"]
