"""JobSpawner: a JupyterHub server as a batch job, submitted over SSH as the user.

Orchestrates the lifecycle only (start, poll, stop, progress, state); the transport,
scheduler adapter, tunnel and form each live in their own module.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import (
    default,
)

from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig
from hubdash.job.contract import (
    CONNECTION_FILE,
    ENV_FILE,
    JOB_LOG,
    JOB_SCRIPT,
    RELAY_ENV,
    encode_env,
    hub_urls_at,
)
from hubdash.schedulers.base import (
    JobInfo,
    JobState,
    SchedulerError,
)
from hubdash.serverstate import JobOutcome, JobRecord, Resume, ServerState, read_server_state
from hubdash.spawner import formpage
from hubdash.spawner.clusterchoice import ClusterChoices
from hubdash.spawner.extras import ExtraFields
from hubdash.spawner.formoptions import FormOptions, check_user_options, checked_job_options
from hubdash.spawner.hubchannel import HubChannel
from hubdash.spawner.hubrestart import hub_is_stopping
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.idlecull import count_idle_stop, epoch_of, stopped_outcome
from hubdash.spawner.jobadoption import JobAdoption, token_sha256
from hubdash.spawner.jobcancels import JobCancels
from hubdash.spawner.jobrequest import JobRequestBuilder
from hubdash.spawner.logtail import read_log_tail
from hubdash.spawner.options import (
    ConfigError,
    JobOptions,
    QueueSpec,
    parse_queue_table,
)
from hubdash.spawner.progress import ProgressLog
from hubdash.spawner.schedulercheck import SchedulerCheck
from hubdash.spawner.serverkey import server_key
from hubdash.spawner.serverwait import ServerWait
from hubdash.spawner.settings import JobSpawnerSettings
from hubdash.spawner.spawnerror import SpawnError, failure_text
from hubdash.spawner.tunnel import Tunnel
from hubdash.spawner.wiring import cluster_config_of, user_keys_of
from hubdash.transport.base import Transport, TransportError

USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


class JobSpawner(
    JobSpawnerSettings,
    ClusterChoices,
    FormOptions,
    SchedulerCheck,
    JobRequestBuilder,
    ServerWait,
    HubChannel,
    JobCancels,
    JobAdoption,
    Spawner,
):
    """Starts each single-user server as a batch job on an HPC cluster, through its login node.

    It orchestrates; its parts live beside it: the settings (settings.py), the options
    (formoptions.py), the job it submits (jobrequest.py), waiting for the server
    (serverwait.py), the forwards through the login node (hubchannel.py) and cancelling
    jobs (jobcancels.py). Its cluster comes from wiring.py.
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
        self._cluster_config: ClusterConfig | None = None
        # A job queued or starting when the hub went down, for the next start to adopt.
        self.resume: Resume | None = None
        self.recent_choices = []  # the form's presets (formoptions.py)
        # (hub user, server name) while start() runs: each read of the hub's database rows
        # after a commit is a query (8 % of the hub's loop in bench/class_burst.py).
        self._start_names: tuple[str, str] | None = None

    @property
    def job_id(self) -> str:
        return self.job.job_id

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        saved = read_server_state(state)
        for problem in saved.problems:
            self.log.warning("Saved state of %s: %s", self._log_name, problem)
        if saved.cluster is not None and saved.cluster.name in self.cluster_choices:
            self.use_cluster(saved.cluster.name)
        elif saved.cluster is not None:
            self.log.warning(
                "%s ran on cluster %r, which is no longer configured: it is reached as saved",
                self._log_name,
                saved.cluster.name,
            )
            self.use_removed_cluster(saved.cluster)
        self.job, self.last_outcome = saved.job, saved.last_outcome
        self.resume, self.recent_choices = saved.resume, saved.recent_choices
        for job in self._recorded_jobs():
            if not job.state_dir:
                job.state_dir = self._folder_before_hub_ids()
        self.cancel_pending = saved.cancel_pending
        if self.cancel_pending:
            self._schedule_cancel_retry()

    def get_state(self) -> dict:
        """Saved in the hub's database, and read live by the dashboard (admin:server_state)."""
        state = super().get_state()
        with_job = bool(self.job.job_id)
        saved = ServerState(
            job=self.job,
            tunnel=self._tunnel.state if with_job and self._tunnel is not None else None,
            history=self._progress.history if with_job else [],
            last_outcome=self.last_outcome,
            cancel_pending=list(self.cancel_pending),
            cluster=self.cluster_ref() if self.chosen_cluster else None,
            resume=self.resume,
            recent_choices=self.recent_choices,
        )
        state.update(saved.to_state())  # the layout of hubdash.serverstate
        return state

    def clear_state(self) -> None:
        # The last outcome stays: the dashboard shows why a server ended after it stopped.
        # So does a job to adopt: JupyterHub clears the state just before starting again.
        super().clear_state()
        self.job = JobRecord()

    def _save_state(self, now: bool = False) -> None:
        """Write state to the hub's database, in one commit with other servers' saves within
        a quarter of a second (statewrites.py), or at once with `now`."""
        if self.orm_spawner is None:
            return
        hub_state(self.user).state_writes.save(self.orm_spawner, self.get_state, now=now)

    # --- names and places ----------------------------------------------------------------------

    @property
    def queue_table(self) -> dict[str, QueueSpec]:
        if self._queue_table is None:
            self._queue_table = parse_queue_table(self.queues)
        return self._queue_table

    @property
    def cluster_username(self) -> str:
        hub_user = self._start_names[0] if self._start_names else self.user.name
        name = self.remote_username.format(username=hub_user)
        if not USERNAME.match(name):
            raise web.HTTPError(400, f"the cluster account name {name!r} is not a valid user name")
        return name

    @property
    def server_key(self) -> str:
        """This server's folder name and job name part, its own (serverkey.py)."""
        return server_key(self._start_names[1] if self._start_names else self.name)

    @property
    def job_name(self) -> str:
        """'<prefix>-<hub id>-<cluster user>-<key>': the same at every start of this server,
        and never another server's of the same cluster user or another hub's (the scheduler
        is only ever asked for one user's jobs of a name).
        """
        return f"{self.job_name_stem}-{self.server_key}"

    @property
    def job_name_stem(self) -> str:
        """'<prefix>-<hub id>-<cluster user>': how every job name of this hub and cluster
        user starts (the orphan sweep looks for it)."""
        stem = f"{self.job_name_prefix}-{self.hub_identity}-{self.cluster_username}"
        if self.scheduler == "pbs" and self.pbs_flavor == "pbspro":
            # PBS Pro's qsub -N takes only letters, digits and _ - +: a '.' of the prefix
            # or the user name (never of the key) becomes '_'.
            stem = stem.replace(".", "_")
        return stem

    @property
    def server_dir(self) -> str:
        """Where this hub puts this server's next job: '<state_root>/<hub id>/<key>'."""
        return f"{self.state_root.rstrip('/')}/{self.hub_identity}/{self.server_key}"

    @property
    def state_dir(self) -> str:
        """The folder of this server's job: as saved with the job (or the job to adopt),
        else where the next job goes."""
        for job in self._recorded_jobs():
            if job.state_dir:
                return job.state_dir
        return self.server_dir

    def _recorded_jobs(self) -> list[JobRecord]:
        """The jobs this server's state records: its current one, and one to adopt."""
        jobs = [self.job, self.resume.job if self.resume else JobRecord()]
        return [job for job in jobs if job.job_id]

    def _folder_before_hub_ids(self) -> str:
        """A job saved without its folder was started by a hub that had no hub ids."""
        return f"{self.state_root.rstrip('/')}/{self.server_key}"

    @property
    def cluster_config(self) -> ClusterConfig:
        """This server's cluster as configured (hubdash.spawner.wiring)."""
        if self._cluster_config is None:
            self.ensure_cluster()
            self._cluster_config = cluster_config_of(self)
        return self._cluster_config

    @property
    def cluster(self) -> Cluster:
        """The hub's live Cluster for this server: shared with every user's servers on it."""
        return hub_state(self.user).clusters.cluster(self.cluster_config, log=self.log)

    def user_transport(self) -> Transport:
        """The transport that acts as this server's cluster user, with the user's keys."""
        return self.cluster.transport_for(self.cluster_username, user_keys_of(self, self.user))

    # --- the form -------------------------------------------------------------------------

    @default("options_form")
    def _default_options_form(self):
        return formpage.options_form_page

    # JupyterHub runs this before start() for every way in (form, API, opt- URL): bad
    # options end there as a 400 naming the option.
    @default("apply_user_options")
    def _default_apply_user_options(self):
        return check_user_options

    # --- progress ---------------------------------------------------------------------------

    async def _emit(self, phase: str, message: str, **details: Any) -> None:
        await self._progress.emit(phase, message, job_id=self.job.job_id, **details)

    async def progress(self):
        """Every event of the current start so far, then new ones until it ends (replayable)."""
        async for event in self._progress.replay():
            yield event

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        self._start_names = (self.user.name, self.name)  # read once (see __init__)
        options = checked_job_options(self, self.user_options)
        self.remember_choices(options)  # saved with the job's state: the form's presets
        self._progress.reset()
        self.job = JobRecord()
        await self.require_available()
        cluster = self.cluster
        transport = self.user_transport()
        try:
            resume, self.resume = self.resume, None
            if resume is not None:
                address = await self._adopt_or_replace(cluster, transport, options, resume)
            else:
                address = await self._start_job(cluster, transport, options)
            # Up: the monitor may now look at the job at its slower pace.
            cluster.monitor.track(self.job_id, self.cluster_username, starting=False)
            return address
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and hub_is_stopping():
                # A planned restart: the job keeps its place, the next hub adopts it.
                self.log.info("Hub stopping: job %s of %s is left", self.job_id, self._log_name)
                self._save_state(now=True)
                raise
            # Whatever stopped the start (error, timeout, cancel): the job must not linger.
            reason = failure_text(exc)
            self.log.warning("Start of %s failed: %s", self._log_name, reason)
            await asyncio.shield(self._abandon_start(cluster, transport, reason))
            if isinstance(exc, TransportError | SchedulerError | ConfigError):
                # Written for the user; JupyterHub shows only an HTTPError's message. With
                # several clusters, which one failed is half the message.
                where = f"Cluster {self.cluster_title}: " if self.clusters else ""
                raise SpawnError(f"{where}{exc}") from exc
            raise
        finally:
            self._start_names = None
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
        await transport.write_file(f"{self.state_dir}/{ENV_FILE}", encode_env(env), mode=0o600)
        request = self.job_request(options)
        script = self._render_script(cluster.adapter, request, options)
        script_path = f"{self.state_dir}/{JOB_SCRIPT}"
        await transport.write_file(script_path, script.encode(), mode=0o700)
        job_id = await cluster.client.submit(transport, script_path, request)
        self.job = JobRecord(
            job_id=job_id,
            job_name=request.job_name,
            state=JobState.PENDING.value,
            queue=options.queue,
            node_count=options.nodes,
            engines=options.engines,
            walltime_seconds=options.walltime_seconds,
            submitted_at=time.time(),
            hub_forward_port=self.job.hub_forward_port,
            state_dir=self.state_dir,
            token_sha256=token_sha256(self.api_token),
        )
        self._save_state()  # soon: a hub killed before then finds the job by its name
        cluster.monitor.track(job_id, self.cluster_username, starting=True)
        self.log.info("Submitted job %s for %s", job_id, self._log_name)
        await self._emit_submitted(f"Job {job_id} submitted to queue {options.queue}")
        return await self._follow_job(cluster, transport, tunnel)

    async def _emit_submitted(self, message: str) -> None:
        """The 'submitted' event: the job's request, for the progress bar and dashboard."""
        await self._emit(
            "submitted",
            message,
            state=self.job.state or "pending",
            queue=self.job.queue,
            node_count=self.job.node_count,
            engines=self.job.engines,
            walltime_seconds=self.job.walltime_seconds,
            queue_timeout=self.queue_timeout,
        )

    async def _follow_job(
        self, cluster: Cluster, transport: Transport, tunnel: Tunnel
    ) -> tuple[str, int]:
        """From a queued job to its server answering through the tunnel."""
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

    # --- the job as the scheduler sees it -------------------------------------------------

    async def _job_info(self, cluster: Cluster) -> JobInfo | None:
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
            info.exit_code = await self.cluster.client.exit_code(transport, self.job_id)
        why = info.raw_state or info.state.value
        if info.reason:
            why += f", {info.reason}"
        if info.exit_code is not None:
            why += f", exit code {info.exit_code}"
        log_tail = await self._log_tail(transport)
        # Both at once: the dashboard reading state in between would see a failed job
        # without its reason.
        self.job.state = info.state.value
        self.last_outcome = JobOutcome(
            job_id=self.job_id,
            state=info.state.value,
            message=f"Job {self.job_id} {what} ({why}).",
            ended_at=time.time(),
            exit_code=info.exit_code,
            log_tail=log_tail,
        )
        return self.last_outcome

    async def _log_tail(self, transport: Transport) -> str:
        """The job's last lines: read from the end of its log, bounded (hubdash.spawner.logtail)."""
        return await read_log_tail(transport, f"{self.state_dir}/{JOB_LOG}")

    async def poll(self) -> int | None:
        if not self.job_id:
            return 0
        if not self._progress.finished:
            return None  # start() is in charge until it returns
        cluster = self.cluster
        transport = self.user_transport()
        info = await self._job_info(cluster)
        if info is None:
            return None  # a scheduler error is not a dead job
        self.job.state = info.state.value
        if info.state.is_active:
            if not self.job.local_port:
                # Submitted by a start that this hub process did not finish (the hub
                # restarted meanwhile): adopted by a start once the hub serves.
                return self._resume_later(info)
            if self._tunnel is not None and not await self._tunnel.renew():
                self.log.warning("The forward keeper lost the tunnel of %s", self._log_name)
                await self._tunnel.close()
                self._tunnel = None
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
        else:
            await self._close_kept_forward()
        return info.exit_code if info.exit_code not in (None, 0) else 0

    async def get_url(self) -> str:
        if self.job.local_port:
            scheme = "https" if self.internal_ssl else "http"
            return f"{scheme}://127.0.0.1:{self.job.local_port}{self.server.base_url}"
        return await super().get_url()

    async def stop(self, now: bool = False) -> None:
        cluster = self.cluster
        transport = self.user_transport()
        if self._tunnel is not None:
            await self._tunnel.close()
            self._tunnel = None
        if self.job_id:
            # JupyterHub forgets the server even when stop() fails, so a cancel the
            # scheduler does not confirm is remembered and retried, never dropped.
            await self._cancel_or_remember(cluster, transport, self.job_id)
            if self.last_outcome is None or self.last_outcome.job_id != self.job_id:
                last_activity = epoch_of(getattr(self.orm_spawner, "last_activity", None))
                self.last_outcome = stopped_outcome(
                    self.job, last_activity, self.idle_culler_timeout, time.time()
                )
                count_idle_stop(self.last_outcome, cluster.name)
        self.job = JobRecord()
