"""A cluster as one object: its scheduler adapter and one transport per user, shared by spawners.

Runs scheduler commands through a user's transport and reads their answers; job state lives in
its JobMonitor (monitor.py), never here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from datetime import datetime

from hubdash.cluster.monitor import JobEnded, JobMonitor, MonitorSettings
from hubdash.metrics import SCHEDULER_COMMAND_SECONDS, SCHEDULER_COMMANDS
from hubdash.schedulers import adapter_for
from hubdash.schedulers.base import (
    JobInfo,
    JobRequest,
    QueueSummary,
    SchedulerAdapter,
    SchedulerError,
)
from hubdash.transport.base import CommandResult, FileTooLarge, Transport, TransportError

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
        command_dir: str = "",
        monitor_settings: MonitorSettings | None = None,
    ):
        self.name = name
        self.command_dir = command_dir.rstrip("/")
        self.adapter = adapter
        self._factory = transport_factory
        self._transports: dict[str, Transport] = {}
        self.command_timeout = command_timeout
        self.log = log or logging.getLogger("hubdash.cluster")
        self._monitor_settings = monitor_settings
        self._monitor: JobMonitor | None = None

    @property
    def monitor(self) -> JobMonitor:
        """The cluster's one JobMonitor: the shared view of every job the hub tracks here."""
        if self._monitor is None:
            self._monitor = JobMonitor(self, self._monitor_settings, log=self.log)
        return self._monitor

    def transport_for(self, username: str, factory: TransportFactory | None = None) -> Transport:
        """The one long-lived transport that acts as this user (created on first use).

        A spawner passes its own `factory`: the user's credentials are the spawner's to know
        (key path of its hub user, auth_state). Later callers get the same transport.
        """
        transport = self._transports.get(username)
        if transport is None:
            transport = self._transports[username] = (factory or self._factory)(username)
        return transport

    async def _run(self, transport: Transport, argv: list[str]) -> CommandResult:
        """Run one scheduler command, counted in the hub's metrics."""
        command = argv[0]
        if self.command_dir:
            argv = [f"{self.command_dir}/{command}", *argv[1:]]
        started = time.monotonic()
        outcome = "error"
        try:
            result = await transport.run(argv, timeout=self.command_timeout)
            outcome = "ok" if result.exit_status == 0 else "failed"
            return result
        finally:
            SCHEDULER_COMMANDS.labels(self.name, command, outcome).inc()
            SCHEDULER_COMMAND_SECONDS.labels(self.name, command).observe(time.monotonic() - started)

    async def submit(
        self, transport: Transport, script_path: str, request: JobRequest | None = None
    ) -> str:
        """Submit a job script that already lies on the cluster; returns the job id."""
        argv = self.adapter.submit_command(script_path, request)
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            raise _command_error(argv, result, "refused the job")
        return self.adapter.parse_submit(result.stdout)

    async def status(self, transport: Transport, job_ids: list[str]) -> dict[str, JobInfo]:
        """The scheduler's view of these jobs; SchedulerError unless the answer is definitive."""
        argv = self.adapter.status_command(job_ids)
        result = await self._run(transport, argv)
        if result.exit_status != 0 and not self.adapter.status_failure_means_gone(
            result.exit_status, result.stderr
        ):
            raise _command_error(argv, result, "failed")
        return self.adapter.parse_status(result.stdout, job_ids)

    async def jobs_named(self, transport: Transport, job_name: str, user: str) -> list[str]:
        """Live job ids of this name and user ([] where the scheduler cannot be asked)."""
        argv = self.adapter.jobs_named_command(job_name, user)
        if argv is None:
            return []
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            raise _command_error(argv, result, "failed")
        return self.adapter.parse_job_ids(result.stdout)

    async def exit_code(self, transport: Transport, job_id: str) -> int | None:
        """A finished job's exit code, where the scheduler keeps it apart from its state."""
        detail = getattr(self.adapter, "job_detail_command", None)
        if detail is None:
            return None
        try:
            result = await self._run(transport, detail(job_id))
        except Exception as exc:  # noqa: BLE001 - a nicety for the message, never fatal
            self.log.debug("No exit code for job %s: %s", job_id, exc)
            return None
        if result.exit_status != 0:
            return None
        return self.adapter.parse_job_detail(result.stdout).exit_code

    async def lookup(
        self, transport: Transport, job_ids: list[str], username: str
    ) -> dict[str, JobInfo]:
        """The monitor's query about jobs of the cluster user `username`: definitive answers
        only (ids left out got none this time)."""
        result = await self._run(transport, self.adapter.lookup_command(job_ids, username))
        return self.adapter.parse_lookup(result.exit_status, result.stdout, result.stderr, job_ids)

    async def positions(self, transport: Transport, queue: str) -> dict[str, int]:
        """Job id -> place among the queue's pending jobs (1 = next); {} where unknown."""
        argv = self.adapter.position_command(queue)
        if argv is None:
            return {}
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            raise SchedulerError(
                f"{argv[0]} could not list queue {queue}: {_last_words(result.stderr)}"
            )
        return self.adapter.parse_positions(result.stdout)

    async def wait_for_file(
        self,
        transport: Transport,
        path: str,
        timeout: float,
        *,
        job_id: str | None = None,
        interval: float = 1.0,
        accept: Callable[[bytes], bool] | None = None,
        max_bytes: int = 16 * 1024,
    ) -> bytes:
        """The file's content once it exists (and `accept(content)` holds), looked for every
        `interval` seconds over the user's open connection (one SFTP stat each time).
        A file over `max_bytes` is never read: FileTooLarge.

        With `job_id` (tracked by the monitor), raises JobEnded as soon as the monitor
        learns the job ended; TimeoutError after `timeout` seconds. A failed look is
        logged and tried again: a dropped connection is not the job's end.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                if await transport.exists(path):
                    content = await transport.read_file(path, max_bytes=max_bytes)
                    if accept is None or accept(content):
                        return content
            except FileNotFoundError:
                pass  # removed between the stat and the read
            except FileTooLarge:
                raise  # not a moment's trouble: waiting would not make it smaller
            except TransportError as exc:
                self.log.info("Cannot look for %s yet: %s", path, exc)
            view = self.monitor.get(job_id) if job_id else None
            if view is not None and view.finished:
                raise JobEnded(view)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{path} did not appear within {timeout:g} s")
            wait = min(interval, remaining)
            if view is not None:  # wake at once when the monitor hears of the job
                view = await self.monitor.wait_for_change(job_id or "", wait, view.version)
                if view is not None and view.finished:
                    raise JobEnded(view)
            else:
                await asyncio.sleep(wait)

    async def queue_summaries(self, transport: Transport) -> dict[str, QueueSummary]:
        """Nodes and jobs of every queue, as the scheduler tells it to this user."""
        argv = self.adapter.queues_command()
        detail = self.adapter.queue_detail_command()
        runs = [self._run(transport, argv)] + ([self._run(transport, detail)] if detail else [])
        results = await asyncio.gather(*runs)
        if results[0].exit_status != 0:
            raise SchedulerError(
                f"{argv[0]} could not list the queues: "
                f"{_last_words(results[0].stderr or results[0].stdout)}"
            )
        queues = self.adapter.parse_queues(results[0].stdout)
        if detail and results[1].exit_status == 0:
            self.adapter.add_queue_detail(queues, results[1].stdout)
        return queues

    async def estimate_start(self, transport: Transport, request: JobRequest) -> datetime | None:
        """When a job of this size would start if submitted now; None if the scheduler cannot say.

        Nothing is submitted. SchedulerError carries the scheduler's reason when it says
        such a job cannot run at all.
        """
        argv = self.adapter.test_only_command(request)
        if argv is None:
            return None
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            raise SchedulerError(_last_words(result.stderr or result.stdout, 200))
        return self.adapter.parse_test_only(result.stderr)

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
        if self._monitor is not None:
            await self._monitor.close()
        transports, self._transports = list(self._transports.values()), {}
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)


_CLUSTERS: dict[Hashable, Cluster] = {}


def shared_cluster(
    key: Hashable,
    scheduler: str,
    transport_factory: TransportFactory,
    command_timeout: float,
    log: logging.Logger | None = None,
    command_dir: str = "",
    monitor_settings: MonitorSettings | None = None,
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
            command_dir=command_dir,
            monitor_settings=monitor_settings,
        )
    return cluster


def _command_error(argv: list[str], result: CommandResult, what: str) -> SchedulerError:
    """'<command> <what> (exit N): <the end of its output>'."""
    return SchedulerError(
        f"{argv[0]} {what} (exit {result.exit_status}): "
        f"{_last_words(result.stderr or result.stdout)}"
    )


def _last_words(text: str, limit: int = 400) -> str:
    text = (text or "").strip() or "(no output)"
    return text if len(text) <= limit else "…" + text[-limit:]
