"""jupyterhub_config.py for a Slurm site: queues with their limits, accounts, memory and GPUs.

Adapt the names (login node, partitions, accounts, paths) to the site; everything else
can stay. Every setting is explained in docs/config.md.
"""

c = get_config()  # noqa: F821  (JupyterHub provides it)

c.JupyterHub.bind_url = "https://jupyter.hpc.example.org"
c.JupyterHub.ssl_cert = "/etc/jupyterhub/tls/fullchain.pem"
c.JupyterHub.ssl_key = "/etc/jupyterhub/tls/privkey.pem"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 3  # each one a batch job: docs/deployment.md
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_all = True  # everyone with a cluster account

c.JupyterHub.spawner_class = "hubdash"
c.JobSpawner.scheduler = "slurm"
c.JobSpawner.login_host = "login1.hpc.example.org"
c.JobSpawner.known_hosts = "/etc/hubdash/known_hosts"
c.JobSpawner.ssh_key_path = "/etc/hubdash/keys/{username}"
c.JobSpawner.remote_python = "/opt/jupyter/bin/python"
c.JobSpawner.cmd = ["/opt/jupyter/bin/jupyterhub-singleuser"]
c.JobSpawner.job_prologue = ["module load python/3.11"]
c.JobSpawner.default_url = "/lab"

# The partitions the form offers, in this order, with what each allows.
c.JobSpawner.queues = {
    "interactive": {
        "description": "quick work, starts at once",
        "max_walltime": "4:00:00",
        "default_walltime": "2:00:00",
        "max_nodes": 1,
        "max_engines": 8,
        "engines_per_node": 8,
        "max_memory": "32G",
        "default_memory": "8G",
    },
    "compute": {
        "description": "parallel work on whole nodes",
        "max_walltime": "2-00:00:00",
        "default_walltime": "8:00:00",
        "max_nodes": 16,
        "max_engines": 512,
        "engines_per_node": 32,
        "max_memory": "250G",
    },
    "gpu": {
        "description": "A100 nodes, 4 GPUs each",
        "max_walltime": "1-00:00:00",
        "default_walltime": "4:00:00",
        "max_nodes": 2,
        "max_engines": 8,
        "engines_per_node": 4,
        "max_memory": "500G",
        "max_gpus": 4,
        "default_gpus": 1,
        "groups": ["gpu-users"],  # hub groups; everyone else does not see this queue
        "accounts": ["ml-lab", "astro-gpu"],  # only these accounts may be charged here
    },
}

# Extra fields: the project charged, memory per node, GPUs per node (on "gpu" only).
c.JobSpawner.form_extras = ["account", "memory", "gpus"]
c.JobSpawner.account_required = True
# Each user chooses among their projects; '@group' entries are hub groups.
c.JobSpawner.accounts = {
    "@astro": ["astro", "astro-gpu"],
    "@ml": ["ml-lab"],
    "*": ["training"],
}

# Software environments: entered by the job script before the server starts (Lmod modules,
# a venv or conda prefix); each must hold jupyterhub-singleuser. "gpu" offers only "ml".
c.JobSpawner.environments = {
    "python": {
        "description": "Python 3.11 with NumPy, SciPy, pandas",
        "modules": ["python/3.11"],
        "default": True,
    },
    "ml": {
        "description": "PyTorch 2 with CUDA 12",
        "modules": ["cuda/12.2"],
        "prefix": "/sw/envs/pytorch-2",
    },
}
c.JobSpawner.queues["gpu"]["environments"] = ["ml"]

# Queue figures and estimates in the form are reused this long before Slurm is asked again.
c.JobSpawner.queue_info_ttl = 30

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
