"""The hub the benchmarks measure batchspawner with (1.3, from PyPI, in the bench-only venv
/opt/hubdash/bench-venv): its SlurmSpawner (PBSSpawner, GridengineSpawner with
HUBDASH_SCHEDULER=pbs or sge) submitting over SSH to the test cluster's login node, configured
as a fair admin would. Started by bench/hubs.py inside the login node's network namespace:
batchspawner has no tunnels, the hub must reach the compute nodes and they the hub.

What the admin has to fix for SSH (each is a line below):
- `exec_prefix` runs every command through OpenSSH as the user (one login per command);
- Slurm: the default `squeue -h -j {job_id} -o '%T %B'` loses its quotes in the remote shell
  (`%B` becomes an argument of its own and squeue fails): quoted twice here;
- batchspawner hands the server's environment (API token, URLs) to the submit command's own
  environment, which ssh does not carry: the Bench*Spawner classes export it in the job script.
And for OpenPBS, whose default script asks for `mem={memory}` and `ncpus={nprocs}`: both set,
and its `#PBS -v` list cut to PATH (BenchPBSSpawner).
"""

import os
import shlex
from runpy import run_path

from batchspawner import GridengineSpawner, PBSSpawner, SlurmSpawner
from traitlets import default

c = get_config()  # noqa: F821

port = int(os.environ["HUBDASH_PORT"])
data_dir = os.environ["HUBDASH_DATA_DIR"]
login = os.environ.get("HUBDASH_BENCH_LOGIN_HOST", "10.213.0.2")
bench_venv = os.environ.get("HUBDASH_BENCH_VENV", "/opt/hubdash/bench-venv")
keys = "/etc/hubdash-testcluster/keys"
# Another sshd on the login node (bench/class_burst.py runs one at OpenSSH's default limits).
login_port = int(os.environ.get("HUBDASH_BENCH_LOGIN_PORT", "22"))
known_hosts = os.environ.get("HUBDASH_BENCH_KNOWN_HOSTS", "/etc/hubdash-testcluster/known_hosts")


class ExportsServerEnvironment:
    """A job script that exports the server's JUPYTERHUB_* variables itself, before its
    `set -eu` line (each spawner's default script has one)."""

    async def _get_batch_script(self, **subvars):
        script = await super()._get_batch_script(**subvars)
        exports = "".join(
            f"export {name}={shlex.quote(value)}\n"
            for name, value in sorted(self.get_env().items())
            if name.startswith(("JUPYTERHUB_", "JPY_"))
        )
        return script.replace("\nset -eu", f"\n{exports}set -eu", 1)


class BenchSlurmSpawner(ExportsServerEnvironment, SlurmSpawner):
    pass


class BenchPBSSpawner(ExportsServerEnvironment, PBSSpawner):
    """Its `#PBS -v` line names the server's variables, which are not set in the SSH session
    that runs qsub: OpenPBS's qsub refuses two or more such names ("cannot send environment
    with the job"). The script exports them: PATH alone is kept."""

    @default("req_keepvars")
    def _req_keepvars_default(self):
        return "PATH"


class BenchGridengineSpawner(ExportsServerEnvironment, GridengineSpawner):
    pass


SPAWNERS = {"slurm": BenchSlurmSpawner, "pbs": BenchPBSSpawner, "sge": BenchGridengineSpawner}


c.JupyterHub.bind_url = f"http://{login}:{port}"
c.JupyterHub.hub_bind_url = f"http://{login}:{port + 81}"
c.JupyterHub.hub_connect_url = f"http://{login}:{port + 81}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 1}"
c.ConfigurableHTTPProxy.pid_file = f"{data_dir}/jupyterhub-proxy.pid"
c.JupyterHub.db_url = f"sqlite:///{data_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{data_dir}/jupyterhub_cookie_secret"
c.JupyterHub.authenticator_class = "pam"
run_path(os.path.join(os.environ["HUBDASH_ROOT"], "bench", "bench_access.py"))["add_bench_access"](
    c
)

scheduler = os.environ.get("HUBDASH_SCHEDULER", "slurm")
queue = os.environ.get("HUBDASH_BENCH_PARTITION", "debug")
job_name = f"{os.environ['HUBDASH_BENCH_JOB_PREFIX']}-bs"
c.JupyterHub.spawner_class = SPAWNERS[scheduler]
c.BatchSpawnerBase.exec_prefix = (
    f"ssh -F /dev/null -i {keys}/{{username}} -o UserKnownHostsFile={known_hosts} "
    f"-o StrictHostKeyChecking=yes -o BatchMode=yes -p {login_port} {{username}}@{login}"
)
c.BatchSpawnerBase.req_runtime = "0:30:00"
c.BatchSpawnerBase.batchspawner_singleuser_cmd = f"{bench_venv}/bin/batchspawner-singleuser"
if scheduler == "slurm":
    c.SlurmSpawner.batch_query_cmd = "squeue -h -j {job_id} -o \"'%T %B'\""
    c.SlurmSpawner.req_partition = queue
    # For bench/spawn_overhead.py: the job's log shows when the server command starts (the
    # prologue runs right before it), as hubdash's launcher logs its exec.
    c.SlurmSpawner.req_prologue = 'echo "bench: server exec at $(date +%s.%N)"'
    c.SlurmSpawner.req_options = f"--job-name={job_name}"
elif scheduler == "pbs":
    c.PBSSpawner.req_queue = queue
    c.PBSSpawner.req_nprocs = "1"
    c.PBSSpawner.req_memory = "200mb"  # 100 of them fit the test nodes' 24 GB
    c.PBSSpawner.batch_script = PBSSpawner.batch_script.default_value.replace(
        "-N jupyterhub-singleuser", f"-N {job_name}"
    )
else:
    # The job's name in its script, not a second -N among the options: qsub warns about that
    # on the line batchspawner reads the job id from.
    c.GridengineSpawner.batch_script = GridengineSpawner.batch_script.default_value.replace(
        "-N spawner-jupyterhub", f"-N {job_name}"
    )
    c.GridengineSpawner.req_options = f"-q {queue} -l h_rt=0:30:00"
if os.environ.get("HUBDASH_BENCH_TINY"):
    c.Spawner.cmd = [os.path.join(os.environ["HUBDASH_ROOT"], "bench", "tinyserver.py")]
else:
    c.Spawner.cmd = [f"{bench_venv}/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"  # as the hubdash demo
c.Spawner.start_timeout = 3600  # servers wait in the `hold` queue for the whole window
c.Spawner.http_timeout = 120
