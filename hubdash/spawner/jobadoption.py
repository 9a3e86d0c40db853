"""Taking up a job again after a hub restart: a job that was still queued or starting when
the hub went down keeps its place in the queue. Part of JobSpawner.

At the restart, JupyterHub polls every server it had. A server whose job is still queued
(or started, but its server was never reached) is reported stopped, with the job kept in
its state as one to adopt; JupyterHub keeps the server's API token (`will_resume`), which
the job holds. Once the hub serves, hubrestart.py starts that server again with its saved
options, and the start adopts the recorded job: same job id, its own token again, a new
hub forward, and the wait for its server goes on as for a job just submitted.
"""

from __future__ import annotations

import hashlib
import time

from hubdash.cluster.cluster import Cluster
from hubdash.job.contract import ENV_FILE, decode_env
from hubdash.schedulers.base import JobInfo, JobState
from hubdash.serverstate import JobOutcome, JobRecord, Resume
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.options import JobOptions
from hubdash.spawner.spawnerror import SpawnError
from hubdash.transport.base import FileTooLarge, Transport, TransportError

ENV_FILE_LIMIT = 256 * 1024  # the server's environment; it holds no more than a few KiB
TOKEN_VARIABLE = "JUPYTERHUB_API_TOKEN"


def token_sha256(token: str) -> str:
    """What the saved state keeps of a server's API token: enough to recognise it."""
    return hashlib.sha256(token.encode()).hexdigest() if token else ""


class JobAdoption:
    """JobSpawner's adoption of a job across a hub restart (a mixin)."""

    def _resume_later(self, info: JobInfo) -> int:
        """Report a server whose start the hub did not finish as stopped, keeping its job to
        adopt at the next start (hubrestart.py makes that start once the hub serves)."""
        self.job.state = info.state.value
        where = "still queued" if info.state is JobState.PENDING else "starting"
        self.resume = Resume(
            job=self.job, reason=f"Job {self.job_id} was {where} when the hub restarted"
        )
        self.log.warning(
            "Job %s of %s was %s when the hub restarted: it keeps its place and is taken up "
            "again once the hub serves",
            self.job_id,
            self._log_name,
            where,
        )
        self.job = JobRecord()
        self.will_resume = True  # JupyterHub then keeps the API token the job holds
        hub_state(self.user).resumes.add((self.user.name, self.name))
        return 0

    def claimed_job_ids(self) -> set[str]:
        """Every job this server's saved state speaks for (the orphan sweep spares them)."""
        return {*self.cancel_pending, *(job.job_id for job in self._recorded_jobs())}

    async def _adopt_or_replace(
        self, cluster: Cluster, transport: Transport, options: JobOptions, resume: Resume
    ) -> tuple[str, int]:
        """Adopt the job if it is the one these options ask for; else cancel it and submit."""
        job = resume.job
        same = (job.queue, job.node_count, job.engines, job.walltime_seconds) == (
            options.queue,
            options.nodes,
            options.engines,
            options.walltime_seconds,
        )
        if not same:
            self.log.info(
                "%s starts with other choices than job %s had: cancelling that job",
                self._log_name,
                job.job_id,
            )
            await self._cancel_or_remember(cluster, transport, job.job_id)
            return await self._start_job(cluster, transport, options)
        return await self._adopt_job(cluster, transport, resume)

    async def _adopt_job(
        self, cluster: Cluster, transport: Transport, resume: Resume
    ) -> tuple[str, int]:
        self.job = resume.job
        self.job.hub_forward_port = 0
        self.job.local_port = 0
        # From here a failed start cancels the job (start() -> _abandon_start).
        self.api_token = await self._job_token(transport, self.job)
        tunnel = self._tunnel = self._new_tunnel(transport)
        if self.forward_hub_api:
            # The job's relay follows the route file to the new forward.
            self.job.hub_forward_port = await tunnel.open_hub_forward(*self._hub_api_address())
            await self._write_hub_route(transport, self.job.hub_forward_port)
        self._save_state()
        cluster.monitor.track(self.job_id, self.cluster_username, starting=True)
        self.log.info("Adopted job %s for %s after a hub restart", self.job_id, self._log_name)
        await self._emit_submitted(
            f"{resume.reason}; taken up again (same job, same place in queue {self.job.queue})"
        )
        return await self._follow_job(cluster, transport, tunnel)

    async def _job_token(self, transport: Transport, job: JobRecord) -> str:
        """The server's API token from the job's settings file, if it is the one this hub
        gave the job (the file is the user's to write: only the recorded token is taken)."""
        path = f"{job.state_dir or self.state_dir}/{ENV_FILE}"
        try:
            env = decode_env(
                await transport.read_file(path, max_bytes=ENV_FILE_LIMIT, what="a settings file")
            )
        except (FileNotFoundError, FileTooLarge, ValueError, TransportError) as exc:
            raise SpawnError(
                f"Job {job.job_id} could not be taken up again after the hub restarted: "
                f"its settings file {path} could not be read ({exc}); the job was cancelled. "
                "Please start the server again."
            ) from None
        token = env.get(TOKEN_VARIABLE, "")
        expected = job.token_sha256
        if not token or not expected or token_sha256(token) != expected:
            raise SpawnError(
                f"Job {job.job_id} could not be taken up again after the hub restarted: its "
                f"settings file {path} no longer holds the token the hub gave it; the job was "
                "cancelled. Please start the server again."
            )
        return token

    async def give_up_resume(self, why: str) -> None:
        """The hub could not start this server again: cancel the job it was to adopt."""
        resume, self.resume = self.resume, None
        if resume is None:
            return
        job_id = resume.job.job_id
        self.log.warning("Not taking up job %s of %s again: %s", job_id, self._log_name, why)
        cluster = self.cluster
        transport = self.user_transport()
        await self._cancel_or_remember(cluster, transport, job_id)
        await self._revoke_token_of(transport, resume.job)
        self.last_outcome = JobOutcome(
            job_id=job_id,
            state="cancelled",
            message=f"{resume.reason}, and was cancelled: {why}. Please start the server again.",
            ended_at=time.time(),
        )
        self._save_state()

    async def _revoke_token_of(self, transport: Transport, job: JobRecord) -> None:
        """Delete the token JupyterHub kept for a job that is no longer to be adopted (it
        kept it because the server was to resume)."""
        db = getattr(self.user, "db", None)
        if db is None:
            return
        try:
            token = await self._job_token(transport, job)
        except SpawnError as exc:
            self.log.info("Token of job %s not revoked: %s", job.job_id, exc)
            return
        from jupyterhub import orm

        found = orm.APIToken.find(db, token)
        if found is not None and found.user is getattr(self.user, "orm_user", None):
            db.delete(found)
            db.commit()
            self.log.info("Revoked the API token of job %s of %s", job.job_id, self._log_name)
