"""jupyterhub_config.py for a PBS Pro / OpenPBS site: queues, typed project codes, memory.

Adapt the names (login node, queues, the project-code pattern, paths) to the site. PBS
gives no start estimate before submission: the form shows queue figures only. Every
setting is explained in docs/config.md.
"""

c = get_config()  # noqa: F821  (JupyterHub provides it)

c.JupyterHub.bind_url = "https://notebooks.hpc.example.org"
c.JupyterHub.ssl_cert = "/etc/jupyterhub/tls/fullchain.pem"
c.JupyterHub.ssl_key = "/etc/jupyterhub/tls/privkey.pem"
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "hubdash"
c.JobSpawner.scheduler = "pbs"
c.JobSpawner.pbs_flavor = "pbspro"  # or "torque" for Torque 6
c.JobSpawner.login_host = "login.hpc.example.org"
c.JobSpawner.known_hosts = "/etc/hubdash/known_hosts"
c.JobSpawner.ssh_key_path = "/etc/hubdash/keys/{username}"
c.JobSpawner.remote_python = "/apps/jupyter/bin/python"
c.JobSpawner.cmd = ["/apps/jupyter/bin/jupyterhub-singleuser"]

c.JobSpawner.queues = {
    "workq": {
        "description": "general work",
        "max_walltime": "12:00:00",
        "default_walltime": "1:00:00",
        "max_nodes": 4,
        "max_engines": 96,
        "engines_per_node": 24,
        "max_memory": "180G",
    },
    "long": {
        "description": "up to three days, one node",
        "max_walltime": "3-00:00:00",
        "default_walltime": "1-00:00:00",
        "max_nodes": 1,
        "max_engines": 24,
        "engines_per_node": 24,
        "max_memory": "180G",
        "users": ["alice", "bob"],  # by arrangement only
    },
}

# Users type their project code (qsub -A); it must look like one: three letters, 4 digits.
c.JobSpawner.form_extras = ["account", "memory"]
c.JobSpawner.account_pattern = r"[a-z]{3}[0-9]{4}"
c.JobSpawner.account_required = True

# Serves the form's live queue information and stops the hub at start on a bad setting.
from hubdash.spawner.hubsetup import setup_hub  # noqa: E402

setup_hub(c)
