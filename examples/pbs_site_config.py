"""jupyterhub_config.py for an OpenPBS / PBS Pro site: queues, typed project codes, memory,
parallel engines across nodes.

Adapt the names (login node, queues, the project-code pattern, paths) to the site. What the
PBS server needs (docs/config.md, "PBS"):

    qmgr -c 'set server job_history_enable = True'   # exit status and end of finished jobs
    qmgr -c 'set server backfill_depth = 10'         # with strict_ordering: true ALL in
                                                     # sched_config: estimated start times

PBS has no what-if query: the form's start estimate comes from the chosen queue (the
scheduler's estimates for the jobs waiting there, free nodes, running jobs' walltime), and
a queued server shows its own estimated start on its progress page. Every setting is
explained in docs/config.md.
"""

c = get_config()  # noqa: F821  (JupyterHub provides it)

c.JupyterHub.bind_url = "https://notebooks.hpc.example.org"
c.JupyterHub.ssl_cert = "/etc/jupyterhub/tls/fullchain.pem"
c.JupyterHub.ssl_key = "/etc/jupyterhub/tls/privkey.pem"
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "hubdash"
c.JobSpawner.scheduler = "pbs"
c.JobSpawner.pbs_flavor = "openpbs"  # the same as "pbspro"; "torque" for Torque 6
# Jobs ask for select=N:ncpus=K:mpiprocs=K with place=scatter; a site whose hooks expect
# Torque's spelling sets "nodes" (-l nodes=N:ppn=K, no GPUs then).
c.JobSpawner.pbs_resource_spelling = "select"
# Engines on the other nodes start as tasks of the job through pbs_tmrsh (the default
# with this flavor; it must be on the job's PATH or in PBS_EXEC/bin).
c.JobSpawner.engine_launcher = "pbs_tmrsh"
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
