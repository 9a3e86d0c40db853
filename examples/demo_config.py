"""JupyterHub config for the local test cluster (scripts/testcluster): the demo and the e2e tests.

Environment variables (all optional) let the tests run several hubs side by side:
HUBDASH_SCHEDULER picks the test cluster: all (the demo's: Slurm, OpenPBS and Grid Engine
from one hub, the user picks the cluster in the form), slurm (the default here, one
cluster), slurm-torque (the Slurm cluster through its PBS/Torque commands), pbs (the
OpenPBS cluster) or sge (the Grid Engine cluster); HUBDASH_PORT, HUBDASH_HUB_PORT,
HUBDASH_DATA_DIR, HUBDASH_SERVICE_PORT (the dashboard service's port, default 10101).
"""

import os
import sys
from importlib.resources import files

c = get_config()  # noqa: F821  (JupyterHub provides it)

data_dir = os.environ.get("HUBDASH_DATA_DIR", "/var/lib/hubdash-demo")
os.makedirs(data_dir, mode=0o700, exist_ok=True)

c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ.get('HUBDASH_PORT', '8000')}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ.get('HUBDASH_HUB_PORT', '8081')}"
# https: with internal TLS (below) the proxy's API, too, takes only the hub's certificate.
c.ConfigurableHTTPProxy.api_url = (
    f"https://127.0.0.1:{os.environ.get('HUBDASH_PROXY_API_PORT', '8001')}"
)
c.JupyterHub.db_url = f"sqlite:///{data_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{data_dir}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{data_dir}/jupyterhub-proxy.pid"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 3  # each one a batch job: docs/deployment.md
# Internal TLS: the hub makes certificates for itself, the proxy and each server. A job's
# server verifies the hub through the forward on the login node, and only holders of those
# certificates get an answer there (SECURITY.md, "Other users of the cluster").
c.JupyterHub.internal_ssl = True
c.JupyterHub.internal_certs_location = f"{data_dir}/internal-ssl"

# The test cluster's users log in with their passwords (PAM).
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = {"alice", "bob"}

c.JupyterHub.spawner_class = "hubdash"


def queue(description: str, max_walltime: str, default_walltime: str, per_node: int) -> dict:
    """A queue of two nodes, engines up to `per_node` on each."""
    return {
        "description": description,
        "max_walltime": max_walltime,
        "default_walltime": default_walltime,
        "max_nodes": 2,
        "max_engines": 2 * per_node,
        "engines_per_node": per_node,
    }


SLURM_QUEUES = {
    "debug": queue("quick tests, up to 1 hour", "1:00:00", "0:30:00", 8),
    "batch": queue("production runs, up to 24 hours", "24:00:00", "4:00:00", 8),
}
# The test clusters (scripts/testcluster; addresses in README.md), one per hub here.
CLUSTERS = {
    "slurm": {"scheduler": "slurm", "login_host": "10.213.0.2", "queues": SLURM_QUEUES},
    "slurm-torque": {
        "scheduler": "pbs",
        "pbs_flavor": "slurm-torque",  # Slurm's qsub/qstat/qdel wrappers
        "login_host": "10.213.0.2",
        "queues": SLURM_QUEUES,
    },
    "pbs": {
        "scheduler": "pbs",
        "pbs_flavor": "pbspro",  # OpenPBS
        "login_host": "10.214.0.2",
        "queues": {
            "workq": queue("the default queue, up to 24 hours", "24:00:00", "1:00:00", 2),
            "debug": queue("quick tests, up to 1 hour", "1:00:00", "0:30:00", 2),
        },
    },
    "sge": {
        "scheduler": "sge",
        "login_host": "10.215.0.2",
        "sge_parallel_environment": "mpi",
        "queues": {
            "all.q": queue("the default queue, up to 24 hours", "24:00:00", "1:00:00", 2),
            "debug.q": queue("quick tests, up to 1 hour", "1:00:00", "0:30:00", 2),
        },
    },
}
TITLES = {
    "slurm": "Slurm test cluster",
    "pbs": "OpenPBS test cluster",
    "sge": "Grid Engine test cluster",
}
cluster = os.environ.get("HUBDASH_SCHEDULER", "slurm")
if cluster == "all":
    # Several clusters from one hub: each entry its own settings over the ones below.
    c.JobSpawner.clusters = {
        name: {"title": title, **CLUSTERS[name]} for name, title in TITLES.items()
    }
elif cluster in CLUSTERS:
    for name, value in CLUSTERS[cluster].items():
        setattr(c.JobSpawner, name, value)
else:
    raise ValueError(f"HUBDASH_SCHEDULER={cluster!r}: choose all or one of {', '.join(CLUSTERS)}")
c.JobSpawner.known_hosts = "/etc/hubdash-testcluster/known_hosts"
c.JobSpawner.ssh_key_path = "/etc/hubdash-testcluster/keys/{username}"
c.JobSpawner.remote_python = "/opt/hubdash/venv/bin/python"
c.JobSpawner.cmd = ["/opt/hubdash/venv/bin/jupyterhub-singleuser"]
c.JobSpawner.default_url = "/lab"
# Software environments from the test bed's Lmod module trees (scripts/testbed/modules.sh),
# the same on every test cluster: the notebook's kernel runs the chosen one's Python.
c.JobSpawner.environments = {
    "base": {
        "description": "Python 3.11 (module pyenv/base)",
        "modules": ["pyenv/base"],
        "default": True,
    },
    "science": {
        "description": "Python 3.11 with tabulate (module pyenv/science)",
        "modules": ["pyenv/science"],
    },
}

# The form's live queue figures and start estimates (/hub/api/hubdash/*), a check of the
# JobSpawner settings above when the hub starts (a bad one stops it, naming the setting),
# and jobs kept across hub restarts: cleanup_servers off, queued jobs adopted, orphans swept.
from hubdash.spawner.hubsetup import setup_hub  # noqa: E402

setup_hub(c)

# --- the dashboard (hubdash/, docs/dashboard.md) -----------------------------------------
# A managed service at /services/hubdash/. It acts for the logged-in user with their OAuth
# token (scopes below: read and stop their own servers), and with its own token for the
# spawner's live state, the admin overview and the hub's metrics.
c.JupyterHub.services = [
    {
        "name": "hubdash",
        "command": [
            sys.executable,
            "-m",
            "hubdash",
            "--walltime-warning-minutes=15",
            # Logins to the dashboard outlive a hub restart: open pages carry on by themselves.
            f"--cookie-secret-file={data_dir}/hubdash_cookie_secret",
        ],
        "url": f"http://127.0.0.1:{os.environ.get('HUBDASH_SERVICE_PORT', '10101')}",
        "oauth_client_allowed_scopes": ["read:servers!user", "delete:servers!user"],
        "oauth_no_confirm": True,  # part of the hub: no "authorize this service?" page
        "display": True,
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "hubdash-dashboard",
        "scopes": [
            "list:users",
            "read:users:name",
            "read:servers",
            "admin:server_state",
            "read:metrics",
        ],
        "services": ["hubdash"],
    }
]
# Idle reclaim: jupyterhub-idle-culler stops servers idle for an hour (HUBDASH_IDLE_TIMEOUT
# seconds, looked for every HUBDASH_IDLE_EVERY), which cancels their jobs; their cards say
# so, with the node-hours given back.
from hubdash.spawner.idlecull import add_idle_culler  # noqa: E402

add_idle_culler(
    c,
    timeout=int(os.environ.get("HUBDASH_IDLE_TIMEOUT", "3600")),
    every=int(os.environ.get("HUBDASH_IDLE_EVERY", "0")) or None,
)

# Every user may open the dashboard (JupyterHub 5+ does not grant services by default).
c.JupyterHub.extra_user_scopes = {"access:services!service=hubdash"}
# The hub's "server starting" page sends the user on to the dashboard's live status page.
c.JupyterHub.template_paths = [str(files("hubdash.dashboard").joinpath("templates"))]
