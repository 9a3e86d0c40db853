"""SchedulerClient: a cluster's scheduler commands, run through a user's transport.

Builds each command with the adapter, runs it under the cluster's bin dir and timeout,
counts it in the hub's metrics and reads the answer. The spawner, the job monitor and
the form's queue information all ask through it; it keeps no job state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from hubdash.cluster.startguess import StartGuess, guess_start
from hubdash.metrics import SCHEDULER_COMMAND_SECONDS, SCHEDULER_COMMANDS
from hubdash.schedulers.base import (
    JobInfo,
    JobRequest,
    QueueSummary,
    SchedulerAdapter,
    SchedulerError,
    UserAccounting,
)
from hubdash.transport.base import CommandResult, Transport


class SchedulerClient:
    """The scheduler commands of one cluster (`cluster` names it in the metrics)."""

    def __init__(
        self,
        cluster: str,
        adapter: SchedulerAdapter,
        *,
        bin_dir: str = "",
        timeout: float = 30.0,
        log: logging.Logger | None = None,
    ) -> None:
        self.cluster = cluster
        self.adapter = adapter
        self.bin_dir = bin_dir.rstrip("/")
        self.timeout = timeout
        self.log = log or logging.getLogger("hubdash.cluster")

    async def _run(self, transport: Transport, argv: list[str]) -> CommandResult:
        """Run one scheduler command, counted in the hub's metrics."""
        command = argv[0]
        if self.bin_dir:
            argv = [f"{self.bin_dir}/{command}", *argv[1:]]
        started = time.monotonic()
        outcome = "error"
        try:
            result = await transport.run(argv, timeout=self.timeout)
            outcome = "ok" if result.exit_status == 0 else "failed"
            return result
        finally:
            SCHEDULER_COMMANDS.labels(self.cluster, command, outcome).inc()
            SCHEDULER_COMMAND_SECONDS.labels(self.cluster, command).observe(
                time.monotonic() - started
            )

    async def submit(self, transport: Transport, script_path: str, request: JobRequest) -> str:
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

    async def lookup(
        self, transport: Transport, job_ids: list[str], username: str
    ) -> dict[str, JobInfo]:
        """The monitor's query about jobs of the cluster user `username`: definitive answers
        only (ids left out got none this time)."""
        result = await self._run(transport, self.adapter.lookup_command(job_ids, username))
        answers = self.adapter.parse_lookup(
            result.exit_status, result.stdout, result.stderr, job_ids
        )
        await self._follow_up(transport, answers)
        return answers

    async def _follow_up(self, transport: Transport, answers: dict[str, JobInfo]) -> None:
        """Complete the answers the lookup could not tell all of (the adapter's follow-ups,
        bounded in number; see SchedulerAdapter.follow_up_command)."""
        wanted = [
            (job_id, argv)
            for job_id, info in answers.items()
            if (argv := self.adapter.follow_up_command(info)) is not None
        ][: self.adapter.follow_ups_per_lookup]
        completed = await asyncio.gather(
            *(self._complete(transport, answers[job_id], argv) for job_id, argv in wanted)
        )
        for (job_id, _), info in zip(wanted, completed, strict=True):
            answers[job_id] = info

    async def _complete(self, transport: Transport, info: JobInfo, argv: list[str]) -> JobInfo:
        for delay in (*self.adapter.follow_up_delays, None):
            try:
                result = await self._run(transport, argv)
                done = self.adapter.complete_lookup(
                    info, result.exit_status, result.stdout, result.stderr
                )
            except Exception as exc:  # noqa: BLE001 - a follow-up only adds detail
                self.log.info("Follow-up %s about job %s failed: %s", argv[0], info.job_id, exc)
                return info
            if done is not None:
                return done
            if delay is None:
                return info  # no answer in time: the lookup's own answer stands
            await asyncio.sleep(delay)
        return info

    def lists_positions(self, queue: str) -> bool:
        """Whether the scheduler can say where jobs stand in this queue."""
        return self.adapter.position_command(queue) is not None

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

    async def jobs_named(self, transport: Transport, job_name: str, user: str) -> list[str]:
        """Live job ids of this name and user ([] where the scheduler cannot be asked)."""
        argv = self.adapter.jobs_named_command(job_name, user)
        if argv is None:
            return []
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            raise _command_error(argv, result, "failed")
        return self.adapter.parse_job_ids(result.stdout, job_name, user)

    async def user_jobs(self, transport: Transport, user: str) -> dict[str, str]:
        """Job id -> name of the cluster user's live jobs ({} where the scheduler cannot
        be asked); names a listing leaves out are asked for in one more command."""
        argv = self.adapter.user_jobs_command(user)
        if argv is None:
            return {}
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            raise _command_error(argv, result, "failed")
        jobs = self.adapter.parse_user_jobs(result.stdout, user)
        unnamed = [job_id for job_id, name in jobs.items() if not name]
        names_argv = self.adapter.job_names_command(unnamed) if unnamed else None
        if names_argv is not None:
            result = await self._run(transport, names_argv)
            # A job that ended since the listing makes qstat fail for it alone.
            if result.exit_status != 0 and not result.stdout.strip():
                raise _command_error(names_argv, result, "failed")
            names = self.adapter.parse_job_names(result.stdout)
            same = self.adapter.same_job
            for job_id in unnamed:
                jobs[job_id] = next((n for listed, n in names.items() if same(listed, job_id)), "")
        return jobs

    async def exit_code(self, transport: Transport, job_id: str) -> int | None:
        """A finished job's exit code, where the scheduler keeps it apart from its state."""
        argv = self.adapter.job_detail_command(job_id)
        if argv is None:
            return None
        try:
            result = await self._run(transport, argv)
        except Exception as exc:  # noqa: BLE001 - a nicety for the message, never fatal
            self.log.debug("No exit code for job %s: %s", job_id, exc)
            return None
        if result.exit_status != 0:
            return None
        return self.adapter.parse_job_detail(result.stdout).exit_code

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

    async def estimate_start(
        self,
        transport: Transport,
        request: JobRequest,
        nodes_free: Callable[[], Awaitable[int | None]] | None = None,
    ) -> StartGuess:
        """When a job of this size would start if submitted now (start None: no estimate).

        Nothing is submitted. Where the scheduler has a what-if query (Slurm), its answer;
        otherwise a guess from the queue's jobs and the scheduler's estimates for them
        (cluster/startguess.py), with `nodes_free()` the free nodes of the request's queue.
        SchedulerError carries the scheduler's reason when it says such a job cannot run.
        """
        argv = self.adapter.test_only_command(request)
        if argv is None:
            return await self._guess_from_backlog(transport, request, nodes_free)
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            raise SchedulerError(_last_words(result.stderr or result.stdout, 200))
        return StartGuess(self.adapter.parse_test_only(result.stderr))

    async def _guess_from_backlog(
        self,
        transport: Transport,
        request: JobRequest,
        nodes_free: Callable[[], Awaitable[int | None]] | None,
    ) -> StartGuess:
        argv = self.adapter.backlog_command(request.queue)
        if argv is None:
            return StartGuess(None)
        result = await self._run(transport, argv)
        if result.exit_status != 0:
            raise _command_error(argv, result, "failed")
        backlog = self.adapter.parse_backlog(result.stdout)
        free = await nodes_free() if nodes_free is not None and not backlog.waiting_starts else None
        return guess_start(backlog, free, request.nodes, datetime.now())

    async def user_accounting(self, transport: Transport, user: str) -> UserAccounting | None:
        """What `user` may charge and used this month, from the scheduler's accounting; None
        where the scheduler keeps no such list. SchedulerError when it does not answer."""
        now = datetime.now()
        commands = self.adapter.accounting_commands(user, now)
        if commands is None:
            return None
        results = await asyncio.gather(*(self._run(transport, argv) for argv in commands))
        for argv, result in zip(commands, results, strict=True):
            if result.exit_status != 0:
                raise _command_error(argv, result, "failed")
        return self.adapter.parse_accounting([r.stdout for r in results], now)

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


def _command_error(argv: list[str], result: CommandResult, what: str) -> SchedulerError:
    """'<command> <what> (exit N): <the end of its output>'."""
    return SchedulerError(
        f"{argv[0]} {what} (exit {result.exit_status}): "
        f"{_last_words(result.stderr or result.stdout)}"
    )


def _last_words(text: str, limit: int = 400) -> str:
    text = (text or "").strip() or "(no output)"
    return text if len(text) <= limit else "…" + text[-limit:]
