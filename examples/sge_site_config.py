"""jupyterhub_config.py for a Grid Engine site (Son of Grid Engine 8.1, Sun Grid Engine 6.2):
cluster queues, a parallel environment for servers on several hosts, projects.

Adapt the names (login node, queues, parallel environment, projects, paths) to the site.
Grid Engine gives no start estimate before submission: the form shows queue figures only.
Every setting is explained in docs/config.md ("Grid Engine").
"""

c = get_config()  # noqa: F821  (JupyterHub provides it)

c.JupyterHub.bind_url = "https://notebooks.bio.example.org"
c.JupyterHub.ssl_cert = "/etc/jupyterhub/tls/fullchain.pem"
c.JupyterHub.ssl_key = "/etc/jupyterhub/tls/privkey.pem"
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "hubdash"
c.JobSpawner.scheduler = "sge"
c.JobSpawner.login_host = "submit.bio.example.org"
c.JobSpawner.known_hosts = "/etc/hubdash/known_hosts"
c.JobSpawner.ssh_key_path = "/etc/hubdash/keys/{username}"
# Where qsub, qstat, qacct live when the login shell does not put them on PATH.
c.JobSpawner.scheduler_bin_dir = "/opt/sge/bin/lx-amd64"
c.JobSpawner.remote_python = "/apps/jupyter/bin/python"
c.JobSpawner.cmd = ["/apps/jupyter/bin/jupyterhub-singleuser"]

# More than one slot (several hosts, or several engines on one) asks `-pe smp8 <slots>`.
# This site's PE places 8 slots on each host (allocation_rule 8), so N nodes are N hosts;
# it has `control_slaves TRUE`, so the engines reach the other hosts with qrsh -inherit.
c.JobSpawner.sge_parallel_environment = "smp8"
c.JobSpawner.sge_slots_per_node = 8

c.JobSpawner.queues = {
    "short.q": {
        "description": "up to 4 hours",
        "max_walltime": "4:00:00",
        "default_walltime": "1:00:00",
        "max_nodes": 2,
        "max_engines": 16,
        "engines_per_node": 8,  # at most the PE's slots per host
        "max_memory": "64G",  # per node; asked as h_vmem per slot (64G / 8 slots)
    },
    "long.q": {
        "description": "up to a week, one host",
        "max_walltime": "7-00:00:00",
        "default_walltime": "1-00:00:00",
        "max_nodes": 1,
        "max_engines": 8,
        "engines_per_node": 8,
        "max_memory": "64G",
        "groups": ["longjobs"],
    },
}

# Users pick the project (qsub -P) their jobs are charged to.
c.JobSpawner.form_extras = ["account", "memory"]
c.JobSpawner.accounts = {"*": ["bioinf", "teaching"], "@genomics": ["genomics"]}

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
