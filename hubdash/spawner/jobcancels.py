"""Cancelling a server's jobs so that none is ever orphaned: a cancel the scheduler does not
confirm is remembered (in the saved state) and retried in the background. Part of JobSpawner."""

from __future__ import annotations

import asyncio
import time

from hubdash.cluster.cluster import Cluster
from hubdash.schedulers.base import (
    SchedulerError,
)
from hubdash.serverstate import JobOutcome, JobRecord
from hubdash.transport.base import Transport, TransportError


class JobCancels:
    """JobSpawner's cancels (a mixin: it uses the spawner's cluster, state and log)."""

    async def _cancel_unrecorded_jobs(self, cluster: Cluster, transport: Transport) -> None:
        """Cancel live jobs of this server's name: submitted by a hub that died before it
        could record them. One server has one job, so any such job is an orphan."""
        try:
            stale = await cluster.client.jobs_named(transport, self.job_name, self.cluster_username)
        except (SchedulerError, TransportError) as exc:
            self.log.warning("Could not look for earlier jobs of %s: %s", self._log_name, exc)
            return
        for job_id in stale:
            self.log.warning("Cancelling job %s of %s: no server had it", job_id, self._log_name)
            await self._cancel_or_remember(cluster, transport, job_id)

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
            await cluster.client.cancel(transport, [job_id])
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
            cluster = self.cluster
            transport = self.user_transport()
            for job_id in list(self.cancel_pending):
                try:
                    await cluster.client.cancel(transport, [job_id])
                except (SchedulerError, TransportError) as exc:
                    self.log.warning("Job %s still not cancelled: %s", job_id, exc)
                    continue
                self.log.info("Cancelled job %s of %s on retry", job_id, self._log_name)
                cluster.monitor.untrack(job_id)
                self.cancel_pending.remove(job_id)
                self._save_state()
            delay = min(delay * 2, max_delay)
