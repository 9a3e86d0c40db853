"""jupyterhub_config.py for a site with two machines: a Slurm CPU cluster for everyone and a
PBS Pro GPU cluster for one group. Users pick the machine first in the form.

Each entry of `c.JobSpawner.clusters` holds that cluster's own settings; whatever it does
not set is the spawner-wide setting below it (`c.JobSpawner.<name>`). Adapt the names
(login nodes, queues, groups, paths) to the site. Every setting is explained in
docs/config.md ("Several clusters").
"""

c = get_config()  # noqa: F821  (JupyterHub provides it)

c.JupyterHub.bind_url = "https://jupyter.hpc.example.org"
c.JupyterHub.ssl_cert = "/etc/jupyterhub/tls/fullchain.pem"
c.JupyterHub.ssl_key = "/etc/jupyterhub/tls/privkey.pem"
c.JupyterHub.internal_ssl = True  # the job's channel to the hub: docs/deployment.md
c.JupyterHub.allow_named_servers = True  # one server per cluster, side by side
c.JupyterHub.named_server_limit_per_user = 3
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "hubdash"
# Spawner-wide: what both clusters share (one known_hosts file holding both login nodes).
c.JobSpawner.known_hosts = "/etc/hubdash/known_hosts"
c.JobSpawner.ssh_key_path = "/etc/hubdash/keys/{username}"
c.JobSpawner.remote_python = "/opt/jupyter/bin/python"
c.JobSpawner.cmd = ["/opt/jupyter/bin/jupyterhub-singleuser"]
c.JobSpawner.default_url = "/lab"
c.JobSpawner.form_extras = ["account"]
c.JobSpawner.accounts = {"*": ["training"], "@ml": ["ml-lab"]}

c.JobSpawner.clusters = {
    "cpu": {
        "title": "Ampere (CPU cluster)",
        "scheduler": "slurm",
        "login_host": "login1.cpu.example.org",
        "job_prologue": ["module load python/3.11"],
        "queues": {
            "interactive": {
                "description": "quick work, starts at once",
                "max_walltime": "4:00:00",
                "default_walltime": "2:00:00",
                "max_nodes": 1,
                "max_engines": 8,
                "engines_per_node": 8,
            },
            "compute": {
                "description": "parallel work on whole nodes",
                "max_walltime": "2-00:00:00",
                "default_walltime": "8:00:00",
                "max_nodes": 16,
                "max_engines": 512,
                "engines_per_node": 32,
            },
        },
    },
    "gpu": {
        "title": "Volta (GPU cluster)",
        "groups": ["ml"],  # hub groups; nobody else sees this cluster or may spawn on it
        "scheduler": "pbs",
        "pbs_flavor": "pbspro",
        "login_host": "gpu-login.example.org",
        "scheduler_bin_dir": "/opt/pbs/bin",
        "job_prologue": ["module load python/3.11 cuda/12.2"],
        "form_extras": ["account", "gpus"],
        "queues": {
            "gpuq": {
                "description": "V100 nodes, 4 GPUs each",
                "max_walltime": "1-00:00:00",
                "default_walltime": "4:00:00",
                "max_nodes": 2,
                "max_engines": 8,
                "engines_per_node": 4,
                "max_gpus": 4,
                "default_gpus": 1,
            },
        },
        # A slower machine to log in to: more time before a start gives up.
        "startup_timeout": 600,
    },
}

# Seconds between checks that each login node answers (unavailable clusters are marked in
# the form and refused at once; they come back by themselves).
c.JobSpawner.cluster_check_interval = 30

# This hub's name in job names and folders on the cluster: a staging hub gets another.
c.JobSpawner.hub_id = "prod"

# Idle reclaim: jupyterhub-idle-culler (a managed service) stops servers idle for two hours,
# which cancels their jobs and gives the rest of their walltime back to the queue.
from hubdash.spawner.idlecull import add_idle_culler  # noqa: E402

add_idle_culler(c, timeout=2 * 3600)

# Serves the form's live queue information, stops the hub at start on a bad setting, and
# keeps every job across hub restarts (cleanup_servers off, queued jobs adopted, orphans
# swept).
from hubdash.spawner.hubsetup import setup_hub  # noqa: E402

setup_hub(c)
