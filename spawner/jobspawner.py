"""JobSpawner: a JupyterHub server as a batch job, submitted over SSH as the user.

Orchestrates the lifecycle only (start, poll, stop, progress, state); the transport,
scheduler adapter, tunnel and form each live in their own module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Bool, Dict, Float, Integer, List, TraitError, Unicode, default, validate

from . import formpage
from .cluster import Cluster, shared_cluster
from .jobrecord import JobOutcome, JobRecord
from .jobscript import JobScript, render_job_script
from .launcher import CONNECTION_FILE, ENV_FILE
from .options import (
    ConfigError,
    JobOptions,
    OptionsError,
    QueueSpec,
    parse_queue_table,
    validate_options,
)
from .progress import ProgressLog
from .schedulers import SCHEDULERS
from .schedulers.base import JobInfo, JobRequest, JobState, SchedulerError
from .transport import LocalTransport, SSHTransport, Transport, TransportError
from .tunnel import Tunnel

USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
JOB_LOG = "job.log"
JOB_SCRIPT = "job.sh"


class JobSpawner(Spawner):
    """Starts each single-user server as a batch job on an HPC cluster, through its login node."""

    # --- where the cluster is and how to reach it -------------------------------------------

    scheduler = Unicode(
        "slurm",
        help="""The cluster's batch system: 'slurm' (sbatch/squeue/scancel) or 'pbs'
        (qsub/qstat/qdel; Torque, PBS Pro/OpenPBS, or Slurm's Torque wrappers).""",
    ).tag(config=True)

    pbs_flavor = Unicode(
        "torque",
        help="""With scheduler = 'pbs': which PBS answers. 'torque' (Torque 4-6), 'pbspro'
        (PBS Pro / OpenPBS: select=/ncpus= resources, qstat -x for finished jobs) or
        'slurm-torque' (Slurm's qsub/qstat wrappers from the slurm-wlm-torque package).""",
    ).tag(config=True)

    @validate("pbs_flavor")
    def _validate_pbs_flavor(self, proposal: dict) -> str:
        flavors = ("torque", "pbspro", "slurm-torque")
        if proposal["value"] not in flavors:
            raise TraitError(
                f"JobSpawner.pbs_flavor is {proposal['value']!r}; choose one of {flavors}"
            )
        return proposal["value"]

    transport = Unicode(
        "ssh",
        help="""How the hub reaches the cluster: 'ssh' to the login node as each user
        (asyncssh), or 'local' when the hub runs on the login node itself and runs
        commands through `local_command_prefix`.""",
    ).tag(config=True)

    login_host = Unicode(
        "",
        help="""The login node that jobs are submitted from, e.g. 'login.hpc.example.org'
        or an address. Required with transport = 'ssh'.""",
    ).tag(config=True)

    login_port = Integer(22, help="SSH port of the login node.").tag(config=True)

    known_hosts = Unicode(
        "/etc/hubdash/known_hosts",
        help="""An OpenSSH known_hosts file holding the login node's host key(s). Keys are
        always checked: an unknown or changed key stops the spawn with a message naming
        the host and the key's fingerprint.""",
    ).tag(config=True)

    ssh_key_path = Unicode(
        "/etc/hubdash/keys/{username}",
        help="""Path of each user's private SSH key on the hub; '{username}' is replaced by
        the hub user's name. Keep these files readable by the hub's account only.""",
    ).tag(config=True)

    ssh_cert_path = Unicode(
        "",
        help="""Optional path of each user's SSH certificate ('{username}' is replaced), for
        sites that sign short-lived user certificates. Empty: plain keys.""",
    ).tag(config=True)

    remote_username = Unicode(
        "{username}",
        help="""The cluster account a hub user logs in as; '{username}' is replaced by the
        hub user's name, e.g. '{username}' or 'hpc_{username}'.""",
    ).tag(config=True)

    local_command_prefix = List(
        Unicode(),
        ["sudo", "-n", "-u", "{username}", "--"],
        help="""With transport = 'local': the command prefix that runs a command as the
        user; items may hold '{username}'.""",
    ).tag(config=True)

    max_sessions = Integer(
        8,
        help="""At most this many SSH channels at once on one user's connection. Keep it
        below the login sshd's MaxSessions (OpenSSH default 10).""",
    ).tag(config=True)

    command_timeout = Float(
        30.0,
        help="""Seconds a scheduler command (sbatch, squeue, qstat ...) may take before it
        counts as failed.""",
    ).tag(config=True)

    # --- how the server reaches the hub --------------------------------------------------------

    forward_hub_api = Bool(
        True,
        help="""Open a remote forward on the login node to the hub's API, for clusters whose
        compute nodes cannot reach the hub. The login sshd needs 'GatewayPorts
        clientspecified'. Set False where compute nodes reach `hub_connect_url` directly.""",
    ).tag(config=True)

    hub_address_for_jobs = Unicode(
        "",
        help="""The login node's address as the compute nodes see it, used with
        forward_hub_api. Empty: login_host.""",
    ).tag(config=True)

    # --- the job ----------------------------------------------------------------------------

    queues = Dict(
        {"debug": {"max_walltime": "1:00:00", "max_nodes": 1}},
        help="""The queues (partitions) the form offers, in order, each with its limits:
        {'debug': {'description': 'Quick tests', 'max_walltime': '1:00:00',
        'default_walltime': '0:30:00', 'max_nodes': 2, 'default_nodes': 1,
        'max_engines': 16, 'default_engines': 0, 'engines_per_node': 8,
        'users': [], 'groups': []}}. 'users'/'groups' restrict a queue to those users or
        group members; both empty means everyone.""",
    ).tag(config=True)

    remote_python = Unicode(
        "python3",
        help="""The Python interpreter on the compute nodes that has hubdash, jupyterhub and
        jupyter-server installed, e.g. '/opt/hubdash/venv/bin/python'.""",
    ).tag(config=True)

    job_prologue = List(
        Unicode(),
        help="""Shell lines placed in the job script before the server starts, written by
        the admin (e.g. 'module load python/3.11'). Never built from user input.""",
    ).tag(config=True)

    job_name_prefix = Unicode(
        "jupyterhub",
        help="""Start of every job name; the name is '<prefix>-<cluster user>-<server>',
        the same for every start of one server, so admins and users can find it in squeue
        or qstat.""",
    ).tag(config=True)

    @validate("job_name_prefix")
    def _validate_job_name_prefix(self, proposal: dict) -> str:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$", proposal["value"]):
            raise TraitError(
                "JobSpawner.job_name_prefix may hold only letters, digits and _ . - "
                f"(starting with a letter, at most 32): {proposal['value']!r}"
            )
        return proposal["value"]

    state_root = Unicode(
        ".hubdash/servers",
        help="""Folder, relative to the user's home on the cluster, holding one sub-folder
        per server (job script, 0600 settings file, connection file, job log).""",
    ).tag(config=True)

    queue_timeout = Integer(
        4 * 3600,
        help="""Seconds a job may wait in the queue before the spawn gives up and cancels
        it. Independent of the server's own start-up time (startup_timeout).""",
    ).tag(config=True)

    startup_timeout = Integer(
        300,
        help="""Seconds from the job starting to its server telling the hub where it listens.""",
    ).tag(config=True)

    status_interval = Float(
        2.0,
        help="Seconds between status queries while a spawn waits for its job to start.",
    ).tag(config=True)

    # JupyterHub's own start timeout would cut long queue waits short: the spawner keeps
    # its own limits (queue_timeout + startup_timeout) and cancels the job itself.
    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        return self.queue_timeout + self.startup_timeout + 120

    # The hub's own PATH or virtualenv mean nothing on a compute node.
    @default("env_keep")
    def _default_env_keep(self) -> list[str]:
        return ["LANG", "LC_ALL"]

    @validate("scheduler")
    def _validate_scheduler(self, proposal: dict) -> str:
        if proposal["value"] not in SCHEDULERS:
            raise TraitError(
                f"JobSpawner.scheduler is {proposal['value']!r}; choose one of {SCHEDULERS}"
            )
        return proposal["value"]

    @validate("transport")
    def _validate_transport(self, proposal: dict) -> str:
        if proposal["value"] not in ("ssh", "local"):
            raise TraitError(
                f"JobSpawner.transport is {proposal['value']!r}; choose 'ssh' or 'local'"
            )
        return proposal["value"]

    @validate("queues")
    def _validate_queues(self, proposal: dict) -> dict:
        try:
            parse_queue_table(proposal["value"])
        except ConfigError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]

    # --- per-server state ---------------------------------------------------------------------

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.job = JobRecord()
        self.last_outcome: JobOutcome | None = None
        self._progress = ProgressLog()
        self._tunnel: Tunnel | None = None
        self._queue_table: dict[str, QueueSpec] | None = None

    @property
    def job_id(self) -> str:
        return self.job.job_id

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.job = JobRecord.from_state(state.get("job") or {})
        self.last_outcome = JobOutcome.from_state(state.get("last_outcome"))

    def get_state(self) -> dict:
        """Saved in the hub's database, and read live by the dashboard (admin:server_state)."""
        state = super().get_state()
        if self.job.job_id:
            state["job"] = self.job.to_state()
            state.update(self.job.to_state())  # flat too: what the dashboard reads
            if self._tunnel is not None:
                state["tunnel"] = self._tunnel.state
            state["history"] = self._progress.history
        if self.last_outcome is not None:
            state["last_outcome"] = self.last_outcome.to_state()
        return state

    def clear_state(self) -> None:
        # The last outcome stays: the dashboard shows why a server ended after it stopped.
        super().clear_state()
        self.job = JobRecord()

    def _save_state(self) -> None:
        """Write state to the hub's database now: JupyterHub itself waits until start() returns."""
        if self.orm_spawner is not None and self.db is not None:
            self.orm_spawner.state = self.get_state()
            self.db.commit()

    # --- names and places ----------------------------------------------------------------------

    @property
    def queue_table(self) -> dict[str, QueueSpec]:
        if self._queue_table is None:
            self._queue_table = parse_queue_table(self.queues)
        return self._queue_table

    @property
    def cluster_username(self) -> str:
        name = self.remote_username.format(username=self.user.name)
        if not USERNAME.match(name):
            raise web.HTTPError(400, f"the cluster account name {name!r} is not a valid user name")
        return name

    @property
    def server_key(self) -> str:
        """A file- and job-name-safe key for this server: the name itself when it is safe."""
        name = self.name or "default"
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40]
        if safe != name:
            safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
        return safe

    @property
    def job_name(self) -> str:
        return f"{self.job_name_prefix}-{self.cluster_username}-{self.server_key}"

    @property
    def state_dir(self) -> str:
        return f"{self.state_root.rstrip('/')}/{self.server_key}"

    def _cluster(self) -> Cluster:
        key = (
            self.login_host or "local",
            self.login_port,
            self.scheduler,
            self.pbs_flavor,
            self.transport,
            self.known_hosts,
            self.ssh_key_path,
        )
        options = {"flavor": self.pbs_flavor} if self.scheduler == "pbs" else {}
        return shared_cluster(
            key,
            self.scheduler,
            self._make_transport,
            self.command_timeout,
            log=self.log,
            **options,
        )

    def _make_transport(self, username: str) -> Transport:
        if self.transport == "local":
            prefix = [item.format(username=username) for item in self.local_command_prefix]
            return LocalTransport(prefix=prefix)
        if not self.login_host:
            raise ConfigError("JobSpawner.login_host is not set: name the cluster's login node")
        certs = [self.ssh_cert_path.format(username=self.user.name)] if self.ssh_cert_path else []
        return SSHTransport(
            host=self.login_host,
            port=self.login_port,
            username=username,
            client_keys=[self.ssh_key_path.format(username=self.user.name)],
            client_certs=certs,
            known_hosts=self.known_hosts,
            max_sessions=self.max_sessions,
            log=self.log,
        )

    # --- the form -------------------------------------------------------------------------

    @default("options_form")
    def _default_options_form(self):
        return formpage.render_options_form

    def options_from_form(self, formdata: dict) -> dict:
        return self._validated_user_options(formdata, remember_form=True)

    def options_from_query(self, query_data: dict) -> dict:
        return self._validated_user_options(query_data)

    def _validated_user_options(self, data: dict, remember_form: bool = False) -> dict:
        try:
            options = self._job_options(data)
        except OptionsError as exc:
            if remember_form:
                formpage.remember_failed_form(self.user.name, data, exc.errors)
            raise web.HTTPError(400, f"Please correct the form: {exc}") from None
        return options.to_user_options()

    def _job_options(self, data: dict) -> JobOptions:
        groups = [group.name for group in getattr(self.user, "groups", [])]
        return validate_options(data, self.queue_table, self.user.name, groups)

    # --- progress ---------------------------------------------------------------------------

    async def _emit(self, phase: str, message: str, **details: Any) -> None:
        await self._progress.emit(phase, message, job_id=self.job.job_id, **details)

    async def progress(self):
        """Every event of the current start so far, then new ones until it ends (replayable)."""
        async for event in self._progress.replay():
            yield event

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        try:
            options = self._job_options(self.user_options or {})
        except OptionsError as exc:
            raise web.HTTPError(400, f"Invalid options: {exc}") from None
        self._progress.reset()
        self.job = JobRecord()
        cluster = self._cluster()
        transport = cluster.transport_for(self.cluster_username)
        try:
            return await self._start_job(cluster, transport, options)
        except BaseException as exc:
            # Whatever stopped the start (error, timeout, cancel): the job must not linger.
            reason = "cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc)
            self.log.warning("Start of %s failed: %s", self._log_name, reason)
            await asyncio.shield(self._abandon_start(cluster, transport, reason))
            raise
        finally:
            await self._progress.finish()

    async def _start_job(
        self, cluster: Cluster, transport: Transport, options: JobOptions
    ) -> tuple[str, int]:
        tunnel = self._tunnel = Tunnel(transport)
        env = self.get_env()
        if self.forward_hub_api:
            api = urlsplit(self.hub.api_url)
            self.job.hub_forward_port = await tunnel.open_hub_forward(
                api.hostname or "127.0.0.1", api.port or 80
            )
            env.update(self._hub_urls_for_jobs(env, self.job.hub_forward_port))

        await transport.remove(f"{self.state_dir}/{CONNECTION_FILE}")
        await transport.write_file(
            f"{self.state_dir}/{ENV_FILE}", json.dumps(env).encode(), mode=0o600
        )
        request = self._job_request(options)
        script = self._render_script(cluster, request)
        script_path = f"{self.state_dir}/{JOB_SCRIPT}"
        await transport.write_file(script_path, script.encode(), mode=0o700)
        job_id = await cluster.submit(transport, script_path, request)
        walltime = options.to_user_options()["walltime"]
        self.job = JobRecord(
            job_id=job_id,
            job_name=request.job_name,
            job_state=JobState.PENDING.value,
            queue=options.queue,
            nodes=options.nodes,
            engines=options.engines,
            walltime=walltime,
            submitted_at=time.time(),
            hub_forward_port=self.job.hub_forward_port,
        )
        self._save_state()  # at once: a hub that dies now must still know this job
        self.log.info("Submitted job %s for %s", job_id, self._log_name)
        await self._emit(
            "submitted",
            f"Job {job_id} submitted to queue {options.queue}",
            state="pending",
            queue=options.queue,
            nodes=options.nodes,
            engines=options.engines,
            walltime=walltime,
            queue_timeout=self.queue_timeout,
        )

        info = await self._wait_until_running(cluster, transport)
        self.job.started_at = time.time()
        self.job.node_list = list(info.nodes)
        self.job.node = info.nodes[0] if info.nodes else ""
        self._save_state()
        await self._emit(
            "running",
            f"Job {job_id} is running on {', '.join(info.nodes) or 'its node'}",
            state="running",
            node=self.job.node,
            nodes_list=info.nodes,
        )
        host, port = await self._wait_for_connection_file(cluster, transport)
        self.job.node, self.job.remote_port = host, port
        await self._emit(
            "connecting",
            f"Server starting on {host}:{port}",
            state="running",
            node=host,
            port=port,
        )
        self.job.local_port = await tunnel.open_notebook_forward(host, port)
        self._save_state()
        await self._emit(
            "tunnel",
            f"Tunnel open: 127.0.0.1:{self.job.local_port} → {host}:{port}; "
            "waiting for the server to answer",
            state="running",
            tunnel=tunnel.state,
        )
        return ("127.0.0.1", self.job.local_port)

    def _hub_urls_for_jobs(self, env: dict[str, str], port: int) -> dict[str, str]:
        """The hub's API URLs rewritten to the remote forward on the login node."""
        host = self.hub_address_for_jobs or self.login_host or "127.0.0.1"
        rewritten = {}
        for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL"):
            if env.get(key):
                parts = urlsplit(env[key])
                rewritten[key] = urlunsplit(parts._replace(netloc=f"{host}:{port}"))
        return rewritten

    def _job_request(self, options: JobOptions) -> JobRequest:
        return JobRequest(
            job_name=self.job_name,
            queue=options.queue,
            walltime_seconds=options.walltime_seconds,
            nodes=options.nodes,
            tasks_per_node=1,
            output_path=f"{self.state_dir}/{JOB_LOG}",
        )

    def _render_script(self, cluster: Cluster, request: JobRequest) -> str:
        job = JobScript(
            username=self.user.name,
            server_name=self.name,
            state_dir=self.state_dir,
            python=self.remote_python,
            command=[*self.cmd, *self.get_args()],
            prologue=tuple(self.job_prologue),
        )
        return render_job_script(cluster.adapter, request, job)

    async def _wait_until_running(self, cluster: Cluster, transport: Transport) -> JobInfo:
        deadline = time.monotonic() + self.queue_timeout
        last: tuple[str, str, int | None] | None = None
        while True:
            info = await self._job_info(cluster, transport)
            if info is not None:
                if info.state is JobState.RUNNING:
                    self.job.job_state = info.state.value
                    return info
                if info.state.is_finished:
                    raise await self._job_ended_error(transport, info)
                self.job.reason = info.reason
                self.job.position = info.position
                self.job.estimated_start = (
                    info.estimated_start.isoformat() if info.estimated_start else None
                )
                if (info.raw_state, info.reason, info.position) != last:
                    last = (info.raw_state, info.reason, info.position)
                    reason = f" ({info.reason})" if info.reason else ""
                    await self._emit(
                        "pending",
                        f"Job {self.job_id} is queued in {info.queue or self.job.queue}{reason}",
                        state="pending",
                        reason=info.reason,
                        position=info.position,
                        estimated_start=self.job.estimated_start,
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {self.job_id} waited in the queue longer than the limit of "
                    f"{self.queue_timeout // 60} minutes and was cancelled"
                )
            await asyncio.sleep(self.status_interval)

    async def _wait_for_connection_file(
        self, cluster: Cluster, transport: Transport
    ) -> tuple[str, int]:
        deadline = time.monotonic() + self.startup_timeout
        path = f"{self.state_dir}/{CONNECTION_FILE}"
        checked = time.monotonic()
        while True:
            try:
                data = json.loads(await transport.read_file(path))
                if _same_job(str(data.get("job_id", "")), self.job_id):
                    return str(data["host"]), int(data["port"])
            except FileNotFoundError:
                pass
            except (ValueError, KeyError, TypeError) as exc:
                self.log.debug("Connection file of %s not complete yet: %s", self._log_name, exc)
            if time.monotonic() - checked > self.status_interval:
                checked = time.monotonic()
                info = await self._job_info(cluster, transport)
                if info is not None and info.state.is_finished:
                    raise await self._job_ended_error(transport, info)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {self.job_id} runs but its server did not start within "
                    f"{self.startup_timeout} s; see {self.state_dir}/{JOB_LOG} on the cluster"
                )
            await asyncio.sleep(0.25)

    async def _job_info(self, cluster: Cluster, transport: Transport) -> JobInfo | None:
        """The job's state, or None when the scheduler gave no definitive answer."""
        try:
            return (await cluster.status(transport, [self.job_id]))[self.job_id]
        except (SchedulerError, TransportError) as exc:
            self.log.warning("Status of job %s unknown for now: %s", self.job_id, exc)
            return None

    async def _job_ended_error(self, transport: Transport, info: JobInfo) -> RuntimeError:
        """The error a spawn ends with when its job ended first, with the job's last words."""
        outcome = await self._record_outcome(transport, info, "ended before its server started")
        message = outcome.message
        if outcome.log_tail:
            message += " Last lines of its output:\n" + outcome.log_tail
        return RuntimeError(message)

    async def _record_outcome(self, transport: Transport, info: JobInfo, what: str) -> JobOutcome:
        why = info.raw_state or info.state.value
        if info.reason:
            why += f", {info.reason}"
        if info.exit_code is not None:
            why += f", exit code {info.exit_code}"
        self.job.job_state = info.state.value
        self.last_outcome = JobOutcome(
            job_id=self.job_id,
            state=info.state.value,
            message=f"Job {self.job_id} {what} ({why}).",
            ended_at=time.time(),
            exit_code=info.exit_code,
            log_tail=await self._log_tail(transport),
        )
        return self.last_outcome

    async def _log_tail(self, transport: Transport, lines: int = 20) -> str:
        try:
            data = await transport.read_file(f"{self.state_dir}/{JOB_LOG}")
        except (FileNotFoundError, PermissionError, TransportError):
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    async def _abandon_start(self, cluster: Cluster, transport: Transport, reason: str) -> None:
        """Close what a failed start opened and cancel its job; keep it in state if we cannot."""
        if self._tunnel is not None:
            await self._tunnel.close()
            self._tunnel = None
        if not self.job_id:
            return
        if self.last_outcome is None or self.last_outcome.job_id != self.job_id:
            self.last_outcome = JobOutcome(
                job_id=self.job_id, state="cancelled", message=reason, ended_at=time.time()
            )
        try:
            await cluster.cancel(transport, [self.job_id])
            self.log.info("Cancelled job %s of %s", self.job_id, self._log_name)
        except (SchedulerError, TransportError) as exc:
            # Kept in state: stop() tries again, and poll() reports the job while it lives.
            self.log.error("Could not cancel job %s: %s", self.job_id, exc)
            self._save_state()
            return
        self.job = JobRecord()
        self._save_state()

    async def poll(self) -> int | None:
        if not self.job_id:
            return 0
        if not self._progress.finished:
            return None  # start() is in charge until it returns
        cluster = self._cluster()
        transport = cluster.transport_for(self.cluster_username)
        info = await self._job_info(cluster, transport)
        if info is None:
            return None  # a scheduler error is not a dead job
        self.job.job_state = info.state.value
        if info.state.is_active:
            if not self.job.local_port:
                # Submitted by a start that this hub process did not finish (the hub
                # restarted meanwhile): report it stopped, so that stop() cancels it.
                self.log.warning(
                    "Job %s of %s was still starting when the hub restarted; cancelling it",
                    self.job_id,
                    self._log_name,
                )
                return 1
            if info.state is JobState.RUNNING and self._tunnel is None:
                await self._reopen_tunnel(transport)
            return None
        await self._record_outcome(transport, info, "ended")
        self.log.info("%s: %s", self._log_name, self.last_outcome.message)
        return info.exit_code if info.exit_code not in (None, 0) else 0

    async def _reopen_tunnel(self, transport: Transport) -> None:
        """After a hub restart: the same forwards on the same ports, so proxy routes stay valid."""
        tunnel = Tunnel(transport)
        try:
            if self.forward_hub_api and self.job.hub_forward_port:
                api = urlsplit(self.hub.api_url)
                await tunnel.open_hub_forward(
                    api.hostname or "127.0.0.1",
                    api.port or 80,
                    listen_port=self.job.hub_forward_port,
                )
            self.job.local_port = await tunnel.open_notebook_forward(
                self.job.node, self.job.remote_port, local_port=self.job.local_port
            )
        except (TransportError, OSError) as exc:
            self.log.warning("Could not re-open the tunnel of %s yet: %s", self._log_name, exc)
            await tunnel.close()
            return
        self._tunnel = tunnel
        self.log.info("Re-opened the tunnel of %s on port %d", self._log_name, self.job.local_port)

    async def get_url(self) -> str:
        if self.job.local_port:
            return f"http://127.0.0.1:{self.job.local_port}{self.server.base_url}"
        return await super().get_url()

    async def stop(self, now: bool = False) -> None:
        cluster = self._cluster()
        transport = cluster.transport_for(self.cluster_username)
        if self._tunnel is not None:
            await self._tunnel.close()
            self._tunnel = None
        if self.job_id:
            # Raises if the scheduler cannot confirm: JupyterHub then keeps the server
            # and its state, so the job is never forgotten while it may still run.
            await cluster.cancel(transport, [self.job_id])
            self.log.info("Cancelled job %s of %s", self.job_id, self._log_name)
            if self.last_outcome is None or self.last_outcome.job_id != self.job_id:
                self.last_outcome = JobOutcome(
                    job_id=self.job_id,
                    state="cancelled",
                    message=f"Job {self.job_id} was stopped from the hub.",
                    ended_at=time.time(),
                )
        self.job = JobRecord()


def _same_job(written: str, ours: str) -> bool:
    """Whether the id a job wrote (its scheduler's variable) names our job.

    PBS ids may carry the server's name ('123.server') where the job sees only '123'.

    >>> _same_job("123", "123.pbs.example.org"), _same_job("1234", "123"), _same_job("9", "9")
    (True, False, True)
    """
    return written == ours or ours.split(".", 1)[0] == written
