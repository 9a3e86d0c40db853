"""JobSpawner: a JupyterHub server as a batch job, submitted over SSH as the user.

Orchestrates the lifecycle only (start, poll, stop, progress, state); the transport,
scheduler adapter, tunnel and form each live in their own module.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy
from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import (
    TraitError,
    default,
)

from hubdash.cluster.cluster import Cluster, shared_cluster
from hubdash.cluster.monitor import MonitorSettings
from hubdash.job.hubrelay import ROUTE_FILE
from hubdash.job.launcher import CONNECTION_FILE, ENV_FILE, RELAY_ENV, hub_urls_at
from hubdash.schedulers.base import JobInfo, JobRequest, JobState, SchedulerError
from hubdash.spawner import formpage
from hubdash.spawner.engineplan import (
    EngineLayout,
    launcher_command,
    launcher_template,
    plan_layout,
)
from hubdash.spawner.enginestatus import EngineStatus, read_engine_status, watch_engines
from hubdash.spawner.extras import ExtraConfigError, ExtraFields, parse_extra_settings
from hubdash.spawner.internaltls import CERT_FILES, probe_context
from hubdash.spawner.jobrecord import JobOutcome, JobRecord
from hubdash.spawner.jobscript import JobScript, render_job_script
from hubdash.spawner.logtail import read_log_tail
from hubdash.spawner.options import (
    ConfigError,
    JobOptions,
    OptionsError,
    QueueSpec,
    parse_queue_table,
    validate_options,
)
from hubdash.spawner.progress import ProgressLog
from hubdash.spawner.serverkey import server_key
from hubdash.spawner.settings import JobSpawnerSettings
from hubdash.spawner.tunnel import Tunnel
from hubdash.transport.base import (
    FileTooLarge,
    LocalTransport,
    SSHTransport,
    Transport,
    TransportError,
)
from hubdash.transport.credentials import auth_state_key_source
from hubdash.transport.throttle import shared_throttle
from hubdash.walltime import format_walltime

USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
JOB_LOG = "job.log"
# The job (the user) writes its connection file: a host and a port, read only up to this.
CONNECTION_FILE_LIMIT = 16 * 1024
SERVER_PORTS = range(1024, 65536)  # unprivileged: a job cannot listen below 1024
JOB_SCRIPT = "job.sh"
# Between probes of a starting server through its tunnel. A probe of a server not yet
# listening costs one refused connection on the node; every 0.5 s added 0.25 s p50 to
# ready (bench/README.md, spawn overhead).
ANSWER_PROBE_INTERVAL = 0.1


class JobSpawner(JobSpawnerSettings, Spawner):
    """Starts each single-user server as a batch job on an HPC cluster, through its login node.

    Its settings are declared in settings.py (JobSpawnerSettings).
    """

    # --- per-server state ---------------------------------------------------------------------

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.job = JobRecord()
        self.last_outcome: JobOutcome | None = None
        self._progress = ProgressLog()
        self._tunnel: Tunnel | None = None
        self._queue_table: dict[str, QueueSpec] | None = None
        # Jobs whose cancel the scheduler has not confirmed yet: kept through stop and
        # clear_state (JupyterHub clears state even when stop() fails) and retried.
        self.cancel_pending: list[str] = []
        self._cancel_retry: asyncio.Task | None = None
        self._background: set[asyncio.Future] = set()  # e.g. route rewrites after a move
        self._extra_fields: ExtraFields | None = None

    @property
    def job_id(self) -> str:
        return self.job.job_id

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.job = JobRecord.from_state(state.get("job") or {})
        self.last_outcome = JobOutcome.from_state(state.get("last_outcome"))
        self.cancel_pending = [str(j) for j in state.get("cancel_pending", [])]
        if self.cancel_pending:
            self._schedule_cancel_retry()

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
        if self.cancel_pending:
            state["cancel_pending"] = list(self.cancel_pending)
        return state

    def clear_state(self) -> None:
        # The last outcome stays: the dashboard shows why a server ended after it stopped.
        super().clear_state()
        self.job = JobRecord()

    def _save_state(self) -> None:
        """Write state to the hub's database now: JupyterHub itself waits until start() returns."""
        if self.orm_spawner is None:
            return
        session = sqlalchemy.inspect(self.orm_spawner).session  # the hub's own session
        if session is not None:
            self.orm_spawner.state = self.get_state()
            session.commit()

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
        """This server's folder name and job name part, its own (serverkey.py)."""
        return server_key(self.name)

    @property
    def job_name(self) -> str:
        """'<prefix>-<cluster user>-<key>': the same at every start of this server, and
        never another server's of the same cluster user (the scheduler is only ever asked
        for one user's jobs of a name).
        """
        name = f"{self.job_name_prefix}-{self.cluster_username}-{self.server_key}"
        if self.scheduler == "pbs" and self.pbs_flavor == "pbspro":
            # PBS Pro's qsub -N takes only letters, digits and _ - +: a '.' of the prefix
            # or the user name (never of the key) becomes '_'.
            name = name.replace(".", "_")
        return name

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
            self.scheduler_bin_dir,
        )
        options = {"flavor": self.pbs_flavor} if self.scheduler == "pbs" else {}
        return shared_cluster(
            key,
            self.scheduler,
            _no_credentials_yet,  # never this spawner's factory: its key is its user's
            self.command_timeout,
            log=self.log,
            command_dir=self.scheduler_bin_dir,
            monitor_settings=MonitorSettings(
                interval=self.monitor_interval,
                starting_interval=self.monitor_starting_interval,
                detail_interval=self.monitor_detail_interval,
                unknown_grace=self.monitor_unknown_grace,
                max_lookups_per_minute=self.monitor_max_lookups_per_minute,
            ),
            **options,
        )

    def _make_transport(self, username: str) -> Transport:
        if self.transport == "local":
            prefix = [item.format(username=username) for item in self.local_command_prefix]
            return LocalTransport(prefix=prefix)
        if not self.login_host:
            raise ConfigError("JobSpawner.login_host is not set: name the cluster's login node")
        if self.ssh_key_from_auth_state:
            keys: dict[str, Any] = {
                "key_source": auth_state_key_source(
                    self.user, self.ssh_key_from_auth_state, self.ssh_cert_from_auth_state
                )
            }
        else:
            certs = (
                [self.ssh_cert_path.format(username=self.user.name)] if self.ssh_cert_path else []
            )
            keys = {
                "client_keys": [self.ssh_key_path.format(username=self.user.name)],
                "client_certs": certs,
            }
        return SSHTransport(
            host=self.login_host,
            port=self.login_port,
            username=username,
            known_hosts=self.known_hosts,
            max_sessions=self.max_sessions,
            idle_timeout=self.ssh_idle_timeout,
            connect_throttle=shared_throttle(
                self.login_host,
                self.login_port,
                self.ssh_max_concurrent_connects,
                self.ssh_connects_per_second,
            ),
            log=self.log,
            **keys,
        )

    # --- the form -------------------------------------------------------------------------

    @default("options_form")
    def _default_options_form(self):
        return formpage.render_options_form

    # JupyterHub runs this before start() for every way in (form, API, opt- URL): bad
    # options end there as a 400 naming the option.
    @default("apply_user_options")
    def _default_apply_user_options(self):
        return _check_user_options

    def options_from_form(self, formdata: dict) -> dict:
        return self._validated_user_options(formdata, remember_form=True)

    def options_from_query(self, query_data: dict) -> dict:
        # A refused opt- URL shows the form with its entries and errors, as a refused POST does.
        return self._validated_user_options(query_data, remember_form=True)

    def _validated_user_options(self, data: dict, remember_form: bool = False) -> dict:
        try:
            options = self._job_options(data)
        except OptionsError as exc:
            if remember_form:
                formpage.remember_failed_form(self.user.name, self.name, data, exc.errors)
            error = web.HTTPError(400, f"Please correct the form: {exc}".replace("%", "%%"))
            # Shown above the form as it is (not as "HTTP 400: Bad Request (...)").
            error.jupyterhub_message = f"The server was not started. Please correct the form: {exc}"
            raise error from None
        return options.to_user_options()

    def _job_options(self, data: dict) -> JobOptions:
        groups = [group.name for group in getattr(self.user, "groups", [])]
        return validate_options(data, self.queue_table, self.user.name, groups, self.extra_fields)

    @property
    def extra_fields(self) -> ExtraFields:
        if self._extra_fields is None:
            self._extra_fields = parse_extra_settings(
                self.form_extras, self.account_pattern, self.account_required, self.accounts
            )
        return self._extra_fields

    def check_config(self) -> None:
        """Read every form setting once; TraitError naming the setting if one cannot work."""
        try:
            self._queue_table, self._extra_fields = None, None
            _ = self.queue_table, self.extra_fields
        except (ConfigError, ExtraConfigError) as exc:
            raise TraitError(str(exc)) from None

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
            raise web.HTTPError(400, f"Invalid options: {exc}".replace("%", "%%")) from None
        self._progress.reset()
        self.job = JobRecord()
        cluster = self._cluster()
        transport = cluster.transport_for(self.cluster_username, self._make_transport)
        try:
            address = await self._start_job(cluster, transport, options)
            # Up: the monitor may now look at the job at its slower pace.
            cluster.monitor.track(self.job_id, self.cluster_username, starting=False)
            return address
        except BaseException as exc:
            # Whatever stopped the start (error, timeout, cancel): the job must not linger.
            reason = "cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc)
            self.log.warning("Start of %s failed: %s", self._log_name, reason)
            await asyncio.shield(self._abandon_start(cluster, transport, reason))
            if isinstance(exc, TransportError | SchedulerError | ConfigError):
                # Written for the user; JupyterHub shows only an HTTPError's message.
                raise SpawnError(str(exc)) from exc
            raise
        finally:
            await self._progress.finish()

    async def _start_job(
        self, cluster: Cluster, transport: Transport, options: JobOptions
    ) -> tuple[str, int]:
        tunnel = self._tunnel = self._new_tunnel(transport)
        env = self.get_env()
        if self.forward_hub_api:
            self.job.hub_forward_port = await tunnel.open_hub_forward(*self._hub_api_address())
            env.update(hub_urls_at(env, f"{self._hub_address_for_jobs}:{tunnel.hub_forward_port}"))
            env[RELAY_ENV] = "1"  # the launcher starts the relay that follows the forward
            await self._write_hub_route(transport, self.job.hub_forward_port)

        await self._cancel_unrecorded_jobs(cluster, transport)
        await transport.remove(f"{self.state_dir}/{CONNECTION_FILE}")
        await transport.remove(f"{self.state_dir}/{JOB_LOG}")  # its appearance means "started"
        await transport.write_file(
            f"{self.state_dir}/{ENV_FILE}", json.dumps(env).encode(), mode=0o600
        )
        request = self._job_request(options)
        script = self._render_script(cluster, request, options)
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
        cluster.monitor.track(job_id, self.cluster_username, starting=True)
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

        host, port = await self._wait_for_server_address(cluster, transport)
        self.job.node, self.job.remote_port = host, port
        await self._emit(
            "connecting",
            f"Server starting on {host}:{port}",
            state="running",
            node=host,
            port=port,
        )
        if self.job.engines:
            await self._wait_for_engines(transport)
        self.job.local_port = await tunnel.open_notebook_forward(host, port)
        self._save_state()
        await self._emit(
            "tunnel",
            f"Tunnel open: 127.0.0.1:{self.job.local_port} → {host}:{port}; "
            "waiting for the server to answer",
            state="running",
            tunnel=tunnel.state,
        )
        await self._wait_for_answer(cluster, transport, tunnel)
        return ("127.0.0.1", self.job.local_port)

    async def _wait_for_answer(
        self, cluster: Cluster, transport: Transport, tunnel: Tunnel
    ) -> None:
        """Until the server answers HTTP through the tunnel, watching that its job lives.

        JupyterHub would wait too, but only we can tell a server that died (and say why,
        with its output) from one that is slow to start.
        """
        deadline = time.monotonic() + self.startup_timeout
        checked = time.monotonic()
        while await tunnel.probe(timeout=2) is None:
            if time.monotonic() - checked > self.status_interval:
                # The server is not up yet: ask whether its job still lives (one cheap
                # lookup every status_interval, for the few seconds a server takes).
                checked = time.monotonic()
                view = await cluster.monitor.refresh(self.job_id, timeout=self.command_timeout)
                if view is not None and view.finished and view.info is not None:
                    raise await self._job_ended_error(transport, view.info)
            if time.monotonic() > deadline:
                raise SpawnError(
                    f"Job {self.job_id} runs, but its server did not answer within "
                    f"{self.startup_timeout} s and the job was cancelled.",
                    await self._log_tail(transport),
                )
            await asyncio.sleep(ANSWER_PROBE_INTERVAL)

    async def _cancel_unrecorded_jobs(self, cluster: Cluster, transport: Transport) -> None:
        """Cancel live jobs of this server's name: submitted by a hub that died before it
        could record them. One server has one job, so any such job is an orphan."""
        try:
            stale = await cluster.jobs_named(transport, self.job_name, self.cluster_username)
        except (SchedulerError, TransportError) as exc:
            self.log.warning("Could not look for earlier jobs of %s: %s", self._log_name, exc)
            return
        for job_id in stale:
            self.log.warning("Cancelling job %s of %s: no server had it", job_id, self._log_name)
            await self._cancel_or_remember(cluster, transport, job_id)

    # --- the job's way to the hub ---------------------------------------------------------

    @property
    def _hub_address_for_jobs(self) -> str:
        return self.hub_address_for_jobs or self.login_host or "127.0.0.1"

    def _hub_api_address(self) -> tuple[str, int]:
        api = urlsplit(self.hub.api_url)
        return api.hostname or "127.0.0.1", api.port or (443 if api.scheme == "https" else 80)

    def _new_tunnel(self, transport: Transport) -> Tunnel:
        return Tunnel(
            transport,
            remote_listen_host=self.hub_forward_listen_address or self._hub_address_for_jobs,
            spare_connections=self.tunnel_spare_connections,
            probe_ssl=probe_context(self) if self.internal_ssl else None,
            on_hub_port_moved=lambda port: self._hub_port_moved(transport, port),
        )

    async def _write_hub_route(self, transport: Transport, port: int) -> None:
        """Tell the job's relay (hubdash/job/hubrelay.py) where the hub forward listens now."""
        route = {"host": self._hub_address_for_jobs, "port": port}
        await transport.write_file(
            f"{self.state_dir}/{ROUTE_FILE}", json.dumps(route).encode(), mode=0o600
        )

    def _hub_port_moved(self, transport: Transport, port: int) -> None:
        """The transport moved the hub forward to `port` after a reconnect."""
        task = asyncio.ensure_future(self._follow_hub_port(transport, port))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _follow_hub_port(self, transport: Transport, port: int) -> None:
        """The hub forward now listens on `port`: saved, and the job's relay told."""
        self.log.warning(
            "Hub forward of %s moved from port %s to %d on the login node",
            self._log_name,
            self.job.hub_forward_port,
            port,
        )
        self.job.hub_forward_port = port
        self._save_state()
        try:
            await self._write_hub_route(transport, port)
        except (TransportError, OSError) as exc:
            self.log.error(
                "Could not tell the job of %s where the hub forward moved: %s", self._log_name, exc
            )

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Put the server's internal-TLS key and certificates into its private folder.

        Over SFTP as the user, each file 0600 in the 0700 folder; the job is told their
        paths (relative to $HOME), never their contents.
        """
        cluster = self._cluster()
        transport = cluster.transport_for(self.cluster_username, self._make_transport)
        moved = {}
        try:
            for kind, name in CERT_FILES.items():
                data = await asyncio.to_thread(Path(paths[kind]).read_bytes)
                target = f"{self.state_dir}/certs/{name}"
                await transport.write_file(target, data, mode=0o600)
                moved[kind] = target
        except (TransportError, OSError) as exc:
            raise SpawnError(f"Could not give the server its TLS certificates: {exc}") from exc
        return moved

    def _job_request(self, options: JobOptions) -> JobRequest:
        return JobRequest(
            job_name=self.job_name,
            queue=options.queue,
            walltime_seconds=options.walltime_seconds,
            nodes=options.nodes,
            # One task per engine on a node, so that srun/pbsdsh find slots for them all.
            tasks_per_node=self._engine_layout(options).per_node or 1,
            output_path=f"{self.state_dir}/{JOB_LOG}",
            account=options.account,
            memory_mb=options.memory_mb,
            gpus=options.gpus,
        )

    def _render_script(self, cluster: Cluster, request: JobRequest, options: JobOptions) -> str:
        layout = self._engine_layout(options)
        launcher = launcher_template(self.engine_launcher) if layout.engines else ()
        job = JobScript(
            username=self.user.name,
            server_name=self.name,
            state_dir=self.state_dir,
            python=self.remote_python,
            command=[*self.cmd, *self.get_args()],
            prologue=tuple(self.job_prologue),
            engines=layout.engines,
            engine_launcher=tuple(launcher_command(launcher, layout, self.remote_python)),
        )
        return render_job_script(cluster.adapter, request, job)

    def job_script(self, user_options: dict | None = None) -> str:
        """The exact job script start() submits for these options (default: this spawner's
        user_options), after the same validation. Touches no cluster: `python -m
        hubdash.spawner.render` shows it to admins."""
        data = (self.user_options or {}) if user_options is None else user_options
        options = self._job_options(data)
        return self._render_script(self._cluster(), self._job_request(options), options)

    def _engine_layout(self, options: JobOptions) -> EngineLayout:
        per_node = self.queue_table[options.queue].engines_per_node
        return plan_layout(options.engines, options.nodes, per_node)

    async def _wait_for_engines(self, transport: Transport) -> None:
        """Report the engines as they register, until all are up or engines_timeout passes."""
        status = None
        async for status in watch_engines(
            transport,
            self.state_dir,
            self.job_id,
            self.engines_timeout,
            self.status_interval / 2,
            requested=self.job.engines,
        ):
            self._note_engines(status)
            await self._emit("engines", status.text(), state="running", **status.details())
        if status is None or not status.settled:
            up = status.up if status else 0
            await self._emit(
                "engines",
                f"{up} of {self.job.engines} parallel engines up after "
                f"{self.engines_timeout:.0f} s; opening the notebook, the others may still join",
                state="running",
                engines_up=up,
                engines_requested=self.job.engines,
                engines_state=status.state if status else "starting",
            )

    def _note_engines(self, status: EngineStatus) -> None:
        self.job.engines_up, self.job.engines_state = status.up, status.state

    async def _refresh_engines(self, transport: Transport) -> None:
        """The engine count for the dashboard (get_state), read again while the job runs."""
        status = await read_engine_status(
            transport, self.state_dir, self.job_id, requested=self.job.engines
        )
        if status is not None:
            self._note_engines(status)

    async def _wait_for_server_address(
        self, cluster: Cluster, transport: Transport
    ) -> tuple[str, int]:
        """Wait for the job to start and its server to say where it listens.

        Queue details come from the cluster's monitor (its own slow, shared queries);
        the start itself is learned from the job's connection file appearing, watched
        over the SSH connection that is already open, which costs the scheduler nothing.
        """
        loop = asyncio.get_running_loop()
        queue_deadline = loop.time() + self.queue_timeout
        startup_deadline: float | None = None
        seen_version = -1
        log_seen = False
        path = f"{self.state_dir}/{CONNECTION_FILE}"
        while True:
            view = cluster.monitor.get(self.job_id)
            if view is not None and view.version != seen_version:
                seen_version = view.version
                info = view.info or JobInfo(self.job_id, JobState.PENDING)
                if info.state.is_finished:
                    raise await self._job_ended_error(transport, info)
                if info.state is JobState.RUNNING and startup_deadline is None:
                    startup_deadline = loop.time() + self.startup_timeout
                    await self._note_running(info.nodes)
                elif info.state is JobState.PENDING:
                    await self._note_pending(info)
            address = await self._read_connection_file(cluster, transport, path)
            if address is not None:
                if startup_deadline is None:
                    await self._note_running([address[0]])
                return address
            if not log_seen and await self._exists(transport, f"{self.state_dir}/{JOB_LOG}"):
                # The scheduler opened the job's output file: the job has started. Ask
                # now rather than at the queued pace, so a job that dies at once is seen.
                log_seen = True
                await cluster.monitor.refresh(self.job_id, timeout=self.command_timeout)
                continue
            now = loop.time()
            if startup_deadline is None and now > queue_deadline:
                raise SpawnError(
                    f"Job {self.job_id} waited in the queue longer than the limit of "
                    f"{format_walltime(self.queue_timeout)} (H:MM:SS) and was cancelled."
                )
            if startup_deadline is not None and now > startup_deadline:
                raise SpawnError(
                    f"Job {self.job_id} runs, but its server did not start within "
                    f"{self.startup_timeout} s and the job was cancelled.",
                    await self._log_tail(transport),
                )
            # Wakes at once when the monitor learns something, else looks again in a second.
            await cluster.monitor.wait_for_change(self.job_id, timeout=1.0, since=seen_version)

    async def _exists(self, transport: Transport, path: str) -> bool:
        try:
            return await transport.exists(path)
        except TransportError as exc:
            self.log.debug("Could not look for %s yet: %s", path, exc)
            return False

    async def _read_connection_file(
        self, cluster: Cluster, transport: Transport, path: str
    ) -> tuple[str, int] | None:
        """Where this job's server listens, once its connection file says so: the
        scheduler's name of one of the job's nodes, and a port. None while there is no file
        of this job; SpawnError when it names anything else (see _checked_address)."""
        if not await self._exists(transport, path):  # one stat; a read opens a session
            return None
        try:
            raw = await transport.read_file(
                path, max_bytes=CONNECTION_FILE_LIMIT, what="a connection file"
            )
            data = json.loads(raw)
        except FileNotFoundError:
            return None
        except FileTooLarge as exc:
            raise SpawnError(
                f"The connection file of job {self.job_id} is too large to read: {exc}",
                await self._log_tail(transport),
            ) from None
        except (ValueError, TransportError) as exc:
            self.log.debug("Connection file of %s not readable yet: %s", self._log_name, exc)
            return None
        try:
            if not _same_job(str(data.get("job_id", "")), self.job_id):
                return None  # an earlier job's: ours has not written it yet
            host, port = data["host"], data["port"]
        except (KeyError, TypeError, ValueError, AttributeError):
            self.log.debug("Connection file of %s incomplete: %r", self._log_name, data)
            return None
        return await self._checked_address(cluster, host, port)

    async def _checked_address(
        self, cluster: Cluster, host: object, port: object
    ) -> tuple[str, int] | None:
        """The tunnel's destination from what the job wrote, only if it is the job's own.

        The file is the user's to write: taken as it is, it would point the hub's tunnel
        (and the user's browser session) at the login node, another user's node or a
        privileged port. The node must be one the scheduler allocated to this job, and the
        tunnel goes to the scheduler's name of it, never to the file's.
        """
        where = f"{host}:{port}"[:200]
        refusing = "refusing to tunnel there."
        if isinstance(port, bool) or not isinstance(port, int) or port not in SERVER_PORTS:
            raise SpawnError(
                f"Job {self.job_id} says its server listens on {where}, but {port!r:.40} is "
                f"not an unprivileged port (1024-65535); {refusing}"
            )
        nodes = await self._job_nodes(cluster)
        if not nodes:
            # The scheduler cannot tell yet (a failing or slow status command, a job not yet
            # seen running): no answer is no route; look again, within the start's limits.
            self.log.info(
                "Job %s wrote where its server listens; waiting for the scheduler to name "
                "its nodes before tunnelling there",
                self.job_id,
            )
            return None
        node = _job_node(host, nodes) if isinstance(host, str) else None
        if node is None:
            known = ", ".join(nodes)
            raise SpawnError(
                f"Job {self.job_id} says its server listens on {where}, which is not one of "
                f"the job's nodes ({known}); {refusing}"
            )
        return node, port

    async def _job_nodes(self, cluster: Cluster) -> list[str]:
        """The job's nodes as the scheduler reports them; looked up once more if the
        monitor has none yet (a job that started between two of its rounds)."""
        view = cluster.monitor.get(self.job_id)
        if view is None or view.info is None or not view.info.nodes:
            view = await cluster.monitor.refresh(self.job_id, timeout=self.command_timeout)
        return list(view.info.nodes) if view is not None and view.info is not None else []

    async def _note_pending(self, info: JobInfo) -> None:
        self.job.reason = info.reason
        self.job.position = info.position
        self.job.estimated_start = (
            info.estimated_start.isoformat() if info.estimated_start else None
        )
        reason = f" ({info.reason})" if info.reason else ""
        where = f", position {info.position}" if info.position else ""
        await self._emit(
            "pending",
            f"Job {self.job_id} is queued in {info.queue or self.job.queue}{reason}{where}",
            state="pending",
            reason=info.reason,
            position=info.position,
            estimated_start=self.job.estimated_start,
        )

    async def _note_running(self, nodes: list[str]) -> None:
        self.job.job_state = JobState.RUNNING.value
        self.job.started_at = time.time()
        self.job.node_list = list(nodes)
        self.job.node = nodes[0] if nodes else ""
        self.job.reason, self.job.position = "", None
        self._save_state()
        await self._emit(
            "running",
            f"Job {self.job_id} is running on {', '.join(nodes) or 'its node'}",
            state="running",
            node=self.job.node,
            nodes_list=list(nodes),
        )

    async def _job_info(self, cluster: Cluster, transport: Transport) -> JobInfo | None:
        """The monitor's last definitive answer about the job; None while there is none.

        After a hub restart the job is not tracked yet: it is tracked and looked up now.
        """
        monitor = cluster.monitor
        view = monitor.get(self.job_id)
        if view is None:
            monitor.track(self.job_id, self.cluster_username, starting=False)
            view = await monitor.refresh(self.job_id, timeout=self.command_timeout)
        if view is None or view.info is None:
            return None
        if view.unknown:
            self.log.warning("Status of job %s unknown for now: %s", self.job_id, view.error)
        return view.info

    async def _job_ended_error(self, transport: Transport, info: JobInfo) -> SpawnError:
        """The error a spawn ends with when its job ended first, with the job's last words."""
        outcome = await self._record_outcome(transport, info, "ended before its server started")
        return SpawnError(outcome.message, outcome.log_tail)

    async def _record_outcome(self, transport: Transport, info: JobInfo, what: str) -> JobOutcome:
        if info.exit_code is None and info.state.is_finished:
            info.exit_code = await self._cluster().exit_code(transport, self.job_id)
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

    async def _log_tail(self, transport: Transport) -> str:
        """The job's last lines: read from the end of its log, bounded (hubdash.spawner.logtail)."""
        return await read_log_tail(transport, f"{self.state_dir}/{JOB_LOG}")

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
        await self._cancel_or_remember(cluster, transport, self.job_id)
        self.job = JobRecord()
        self._save_state()

    async def _cancel_or_remember(
        self, cluster: Cluster, transport: Transport, job_id: str
    ) -> None:
        """Cancel a job; if the scheduler cannot confirm it, keep retrying in the background."""
        try:
            await cluster.cancel(transport, [job_id])
            self.log.info("Cancelled job %s of %s", job_id, self._log_name)
            cluster.monitor.untrack(job_id)
        except (SchedulerError, TransportError) as exc:
            self.log.error("Could not cancel job %s yet, will retry: %s", job_id, exc)
            if job_id not in self.cancel_pending:
                self.cancel_pending.append(job_id)
            self._schedule_cancel_retry()

    def _schedule_cancel_retry(self) -> None:
        if self._cancel_retry is None or self._cancel_retry.done():
            self._cancel_retry = asyncio.ensure_future(self._retry_cancels())

    async def _retry_cancels(self, first_delay: float = 5, max_delay: float = 120) -> None:
        """Cancel every remembered job until the scheduler confirms each (no job is orphaned)."""
        delay = first_delay
        while self.cancel_pending:
            await asyncio.sleep(delay)
            cluster = self._cluster()
            transport = cluster.transport_for(self.cluster_username, self._make_transport)
            for job_id in list(self.cancel_pending):
                try:
                    await cluster.cancel(transport, [job_id])
                except (SchedulerError, TransportError) as exc:
                    self.log.warning("Job %s still not cancelled: %s", job_id, exc)
                    continue
                self.log.info("Cancelled job %s of %s on retry", job_id, self._log_name)
                cluster.monitor.untrack(job_id)
                self.cancel_pending.remove(job_id)
                self._save_state()
            delay = min(delay * 2, max_delay)

    async def poll(self) -> int | None:
        if not self.job_id:
            return 0
        if not self._progress.finished:
            return None  # start() is in charge until it returns
        cluster = self._cluster()
        transport = cluster.transport_for(self.cluster_username, self._make_transport)
        info = await self._job_info(cluster, transport)
        if info is None:
            return None  # a scheduler error is not a dead job
        self.job.job_state = info.state.value
        if info.state.is_active:
            if not self.job.local_port:
                # Submitted by a start that this hub process did not finish (the hub
                # restarted meanwhile). JupyterHub does not call stop() for a server
                # poll() reports ended, so the job is cancelled here.
                self.log.warning(
                    "Job %s of %s was still starting when the hub restarted; cancelling it",
                    self.job_id,
                    self._log_name,
                )
                await self._cancel_or_remember(cluster, transport, self.job_id)
                self.last_outcome = JobOutcome(
                    job_id=self.job_id,
                    state="cancelled",
                    message=f"Job {self.job_id} was cancelled: the hub restarted while it "
                    "was starting. Please start the server again.",
                    ended_at=time.time(),
                )
                self.job = JobRecord()
                return 1
            if info.state is JobState.RUNNING and self._tunnel is None:
                await self._reopen_tunnel(transport)
            elif self._tunnel is not None and self.forward_hub_api and not self._tunnel.hub_forward:
                await self._reopen_hub_forward(transport, self._tunnel)
            if self._tunnel is not None:
                await self._tunnel.probe()  # the round trip the dashboard shows
            if info.state is JobState.RUNNING and self.job.engines:
                await self._refresh_engines(transport)
            return None
        await self._record_outcome(transport, info, "ended")
        cluster.monitor.untrack(self.job_id)
        self.log.info("%s: %s", self._log_name, self.last_outcome.message)
        if self._tunnel is not None:  # JupyterHub calls no stop() for an ended server
            await self._tunnel.close()
            self._tunnel = None
        return info.exit_code if info.exit_code not in (None, 0) else 0

    async def _reopen_tunnel(self, transport: Transport) -> None:
        """After a hub restart: the notebook forward on its old local port (proxy routes stay
        valid), then the hub forward. The notebook forward never waits for the hub's."""
        tunnel = self._new_tunnel(transport)
        try:
            self.job.local_port = await tunnel.open_notebook_forward(
                self.job.node, self.job.remote_port, local_port=self.job.local_port
            )
        except (TransportError, OSError) as exc:
            self.log.warning("Could not re-open the tunnel of %s yet: %s", self._log_name, exc)
            await tunnel.close()
            return
        self._tunnel = tunnel
        self.log.info("Re-opened the tunnel of %s on port %d", self._log_name, self.job.local_port)
        if self.forward_hub_api:
            await self._reopen_hub_forward(transport, tunnel)

    async def _reopen_hub_forward(self, transport: Transport, tunnel: Tunnel) -> None:
        """The old login-node port if it can be had; else a new one, and the job follows.

        While the hub was down anyone on the login node could bind the old port; the job's
        relay reads the new one from the route file, and internal TLS keeps its hub
        traffic from whoever holds the old one.
        """
        old = self.job.hub_forward_port
        for port in ([old] if old else []) + [0]:
            try:
                new = await tunnel.open_hub_forward(*self._hub_api_address(), listen_port=port)
            except TransportError as exc:
                self.log.warning(
                    "Hub forward of %s not re-opened on port %s: %s", self._log_name, port, exc
                )
                continue
            if new != old:
                await self._follow_hub_port(transport, new)
            return

    async def get_url(self) -> str:
        if self.job.local_port:
            scheme = "https" if self.internal_ssl else "http"
            return f"{scheme}://127.0.0.1:{self.job.local_port}{self.server.base_url}"
        return await super().get_url()

    async def stop(self, now: bool = False) -> None:
        cluster = self._cluster()
        transport = cluster.transport_for(self.cluster_username, self._make_transport)
        if self._tunnel is not None:
            await self._tunnel.close()
            self._tunnel = None
        if self.job_id:
            # JupyterHub forgets the server even when stop() fails, so a cancel the
            # scheduler does not confirm is remembered and retried, never dropped.
            await self._cancel_or_remember(cluster, transport, self.job_id)
            if self.last_outcome is None or self.last_outcome.job_id != self.job_id:
                self.last_outcome = JobOutcome(
                    job_id=self.job_id,
                    state="cancelled",
                    message=f"Job {self.job_id} was stopped from the hub.",
                    ended_at=time.time(),
                )
        self.job = JobRecord()


def _no_credentials_yet(username: str) -> Transport:
    """The cluster's fallback for a user no spawner has connected: it has no key to use.

    Each spawner hands its own factory to `Cluster.transport_for`; a fallback built from
    the first spawner would log in with that spawner's user's key for everyone.
    """
    raise TransportError(
        f"No SSH connection as cluster user {username} is open yet; only that user's own "
        "server can open one (with that user's key)."
    )


def _check_user_options(spawner: JobSpawner, user_options: dict) -> None:
    try:
        spawner._job_options(user_options or {})
    except OptionsError as exc:
        error = web.HTTPError(400, f"Invalid options: {exc}".replace("%", "%%"))
        # What the REST API answers (tornado would show the log message's '%%' as it is).
        error.jupyterhub_message = f"Invalid options: {exc}"
        raise error from None


class SpawnError(web.HTTPError):
    """A start that failed for a reason the user should read, with the job's last output.

    JupyterHub shows `jupyterhub_message` / `jupyterhub_html_message` on the spawn page and
    in the progress stream; the REST API answers with the message.
    """

    def __init__(self, message: str, log_tail: str = ""):
        text = message + (f" Last lines of its output:\n{log_tail}" if log_tail else "")
        super().__init__(500, text.replace("%", "%%"))
        self.jupyterhub_message = text
        html_tail = f"<pre>{html.escape(log_tail)}</pre>" if log_tail else ""
        self.jupyterhub_html_message = f"<p>{html.escape(message)}</p>" + (
            f"<p>Last lines of its output:</p>{html_tail}" if log_tail else ""
        )


def _job_node(host: str, nodes: list[str]) -> str | None:
    """The scheduler's name of the node `host` names, if it is one of `nodes`: the same
    name, or the same first DNS label (a node's FQDN and its short name). None for any
    other name or for an address.

    >>> _job_node("cn1", ["cn1", "cn2"]), _job_node("CN2.cluster.example.org", ["cn1", "cn2"])
    ('cn1', 'cn2')
    >>> _job_node("cn1", ["cn1.cluster.example.org"])
    'cn1.cluster.example.org'
    >>> _job_node("10.213.0.2", ["cn1"]), _job_node("login", ["cn1"]), _job_node("", ["cn1"])
    (None, None, None)
    """
    wanted = _first_label(host)
    if not wanted:
        return None
    for node in nodes:
        if _first_label(node) == wanted:
            return node
    return None


def _first_label(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return name  # an address is whole, never "10" of 10.213.0.2
    except ValueError:
        return name.split(".", 1)[0]


def _same_job(written: str, ours: str) -> bool:
    """Whether the id a job wrote (its scheduler's variable) names our job.

    PBS ids may carry the server's name ('123.server') where the job sees only '123'.

    >>> _same_job("123", "123.pbs.example.org"), _same_job("1234", "123"), _same_job("9", "9")
    (True, False, True)
    """
    return written == ours or ours.split(".", 1)[0] == written
