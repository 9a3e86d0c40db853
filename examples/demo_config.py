"""JupyterHub config for the local test cluster (scripts/testcluster): the demo and the e2e tests.

Environment variables (all optional) let the tests run several hubs side by side:
HUBDASH_SCHEDULER (slurm|pbs), HUBDASH_PORT, HUBDASH_HUB_PORT, HUBDASH_DATA_DIR.
"""

import os

c = get_config()  # noqa: F821  (JupyterHub provides it)

data_dir = os.environ.get("HUBDASH_DATA_DIR", "/var/lib/hubdash-demo")
os.makedirs(data_dir, mode=0o700, exist_ok=True)

c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ.get('HUBDASH_PORT', '8000')}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ.get('HUBDASH_HUB_PORT', '8081')}"
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{os.environ.get('HUBDASH_PROXY_API_PORT', '8001')}"
)
c.JupyterHub.db_url = f"sqlite:///{data_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{data_dir}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{data_dir}/jupyterhub-proxy.pid"
c.JupyterHub.allow_named_servers = True

# The test cluster's users log in with their passwords (PAM).
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = {"alice", "bob"}

c.JupyterHub.spawner_class = "hubdash"
c.JobSpawner.scheduler = os.environ.get("HUBDASH_SCHEDULER", "slurm")
c.JobSpawner.pbs_flavor = "slurm-torque"  # the test cluster's PBS commands wrap Slurm
c.JobSpawner.login_host = "10.213.0.2"
c.JobSpawner.known_hosts = "/etc/hubdash-testcluster/known_hosts"
c.JobSpawner.ssh_key_path = "/etc/hubdash-testcluster/keys/{username}"
c.JobSpawner.remote_python = "/opt/hubdash/venv/bin/python"
c.JobSpawner.cmd = ["/opt/hubdash/venv/bin/jupyterhub-singleuser"]
c.JobSpawner.default_url = "/lab"
c.JobSpawner.queues = {
    "debug": {
        "description": "quick tests, up to 1 hour",
        "max_walltime": "1:00:00",
        "default_walltime": "0:30:00",
        "max_nodes": 2,
        "max_engines": 16,
        "engines_per_node": 8,
    },
    "batch": {
        "description": "production runs, up to 24 hours",
        "max_walltime": "24:00:00",
        "default_walltime": "4:00:00",
        "max_nodes": 2,
        "max_engines": 16,
        "engines_per_node": 8,
    },
}
