"""A cluster as one object: its scheduler adapter and one transport per user, shared by spawners.

Runs scheduler commands through a user's transport and reads their answers; holds no job state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable

from .metrics import SCHEDULER_COMMAND_SECONDS, SCHEDULER_COMMANDS
from .schedulers import adapter_for
from .schedulers.base import JobInfo, JobRequest, SchedulerAdapter, SchedulerError
from .transport import CommandResult, Transport

TransportFactory = Callable[[str], Transport]


class Cluster:
    """Login host(s), the scheduler adapter, and the per-user transports of one cluster."""

    def __init__(
        self,
        name: str,
        adapter: SchedulerAdapter,
        transport_factory: TransportFactory,
        command_timeout: float = 30.0,
        log: logging.Logger | None = None,
    ):
        self.name = name
        self.adapter = adapter
        self._factory = transport_factory
        self._transports: dict[str, Transport] = {}
        self.command_timeout = command_timeout
        self.log = log or logging.getLogger("hubdash.cluster")

    def transport_for(self, username: str) -> Transport:
        """The one long-lived transport that acts as this user (created on first use)."""
        transport = self._transports.get(username)
        if transport is None:
            transport = self._transports[username] = self._factory(username)
        return transport

    async def _run(self, transport: Transport, argv: list[str]) -> CommandResult:
        """Run one scheduler command, counted in the hub's metrics."""
        command = argv[0]
        started = time.monotonic()
        outcome = "error"
        try:
            result = await transport.run(argv, timeout=self.command_timeout)
            outcome = "ok" if result.exit_status == 0 else "failed"
            return result
        finally:
            SCHEDULER_COMMANDS.labels(self.name, command, outcome).inc()
            SCHEDULER_COMMAND_SECONDS.labels(self.name, command).observe(
                time.monotonic() - started
            )

    async def submit(
        self, transport: Transport, script_path: str, request: JobRequest | None = None
    ) -> str:
        """Submit a job script that already lies on the cluster; returns the job id."""
        argv = self.adapter.submit_command(script_path, request)
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            raise SchedulerError(
                f"{argv[0]} refused the job (exit {result.exit_status}): "
                f"{_last_words(result.stderr or result.stdout)}"
            )
        return self.adapter.parse_submit(result.stdout)

    async def status(self, transport: Transport, job_ids: list[str]) -> dict[str, JobInfo]:
        """The scheduler's view of these jobs; SchedulerError unless the answer is definitive."""
        argv = self.adapter.status_command(job_ids)
        result = await self._run(transport, argv)
        if result.exit_status != 0 and not self.adapter.status_failure_means_gone(
            result.exit_status, result.stderr
        ):
            raise SchedulerError(
                f"{argv[0]} failed (exit {result.exit_status}): "
                f"{_last_words(result.stderr or result.stdout)}"
            )
        return self.adapter.parse_status(result.stdout, job_ids)

    async def cancel(self, transport: Transport, job_ids: list[str]) -> None:
        """Ask the scheduler to cancel jobs; jobs it no longer knows count as cancelled."""
        argv = self.adapter.cancel_command(job_ids)
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            info = await self.status(transport, job_ids)
            alive = [job for job in info.values() if job.state.is_active]
            if alive:
                raise SchedulerError(
                    f"{argv[0]} could not cancel job(s) "
                    f"{', '.join(j.job_id for j in alive)}: {_last_words(result.stderr)}"
                )

    async def close(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)


_CLUSTERS: dict[Hashable, Cluster] = {}


def shared_cluster(
    key: Hashable,
    scheduler: str,
    transport_factory: TransportFactory,
    command_timeout: float,
    log: logging.Logger | None = None,
    **adapter_options: str,
) -> Cluster:
    """The hub-wide Cluster for one configuration, created by the first spawner that asks."""
    cluster = _CLUSTERS.get(key)
    if cluster is None:
        cluster = _CLUSTERS[key] = Cluster(
            name=str(key[0]) if isinstance(key, tuple) else str(key),
            adapter=adapter_for(scheduler, **adapter_options),
            transport_factory=transport_factory,
            command_timeout=command_timeout,
            log=log,
        )
    return cluster


def _last_words(text: str, limit: int = 400) -> str:
    text = (text or "").strip() or "(no output)"
    return text if len(text) <= limit else "…" + text[-limit:]
