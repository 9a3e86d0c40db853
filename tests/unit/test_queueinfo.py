"""The form's queue figures and start estimates: asked through the cluster, cached, never fatal."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from hubdash.cluster.client import SchedulerClient
from hubdash.cluster.queueinfo import QueueInformation
from hubdash.schedulers.base import JobRequest, QueueSummary, SchedulerError
from hubdash.schedulers.pbs import PBSAdapter
from hubdash.schedulers.slurm import SlurmAdapter
from hubdash.transport.base import CommandResult, TransportError

from .scheduler_samples import sample

REQUEST = JobRequest(job_name="jupyterhub-alice-default", queue="debug", walltime_seconds=600)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CannedTransport:
    """Answers scheduler commands from recorded output; counts what it was asked."""

    def __init__(self, answers: dict[str, CommandResult]) -> None:
        self.answers = answers
        self.commands: list[list[str]] = []
        self.down = False

    async def run(self, argv, *, input=None, timeout=30):  # noqa: A002 - the contract's name
        self.commands.append(argv)
        if self.down:
            raise TransportError("connection refused by 10.213.0.2 port 2222")
        return self.answers[argv[0]]


def slurm_cluster() -> tuple[SchedulerClient, CannedTransport]:
    transport = CannedTransport(
        {
            "sinfo": CommandResult(0, sample("recorded-slurm-22.05-sinfo-queues.txt"), ""),
            "squeue": CommandResult(
                0, sample("recorded-slurm-22.05-squeue-pending-partitions.txt"), ""
            ),
            "sbatch": CommandResult(
                0, "", sample("recorded-slurm-22.05-sbatch-test-only.stderr.txt")
            ),
        }
    )
    return SchedulerClient("test", SlurmAdapter()), transport


async def test_slurm_queue_summaries_give_free_nodes_and_pending_jobs():
    cluster, transport = slurm_cluster()
    queues = await cluster.queue_summaries(transport)
    debug = queues["debug"]
    assert (debug.nodes_free, debug.nodes_total, debug.jobs_pending) == (1, 2, 3)
    assert queues["batch"].jobs_pending == 1
    assert sorted(argv[0] for argv in transport.commands) == ["sinfo", "squeue"]


async def test_pbs_queue_summaries_take_node_counts_from_pbsnodes():
    transport = CannedTransport(
        {
            "qstat": CommandResult(0, sample("doc-torque-6-qstat-Q-f.txt"), ""),
            "pbsnodes": CommandResult(0, sample("doc-torque-6-pbsnodes-a.txt"), ""),
        }
    )
    cluster = SchedulerClient("test", PBSAdapter("torque"))
    queues = await cluster.queue_summaries(transport)
    assert (queues["batch"].jobs_pending, queues["debug"].jobs_pending) == (3, 0)
    # PBS ties no nodes to a queue: each queue shows the cluster's, from pbsnodes -a (five
    # nodes; one free: cn03; cn05 runs a job on one of its cores, cn04 is down).
    for queue in queues.values():
        assert (queue.nodes_total, queue.nodes_free) == (5, 1), queue
    assert sorted(argv[0] for argv in transport.commands) == ["pbsnodes", "qstat"]


async def test_slurm_estimate_asks_test_only_and_submits_nothing():
    cluster, transport = slurm_cluster()
    guess = await cluster.estimate_start(transport, REQUEST)
    assert (guess.start, guess.basis) == (datetime(2026, 11, 25, 21, 22, 8), "")
    (argv,) = transport.commands
    assert argv[:2] == ["sbatch", "--test-only"] and "--wrap=true" in argv
    assert "--parsable" not in argv


async def test_a_job_the_scheduler_cannot_run_is_its_answer_not_an_outage():
    cluster, transport = slurm_cluster()
    transport.answers["sbatch"] = CommandResult(
        1, "", "allocation failure: Requested node configuration is not available\n"
    )
    with pytest.raises(SchedulerError, match="Requested node configuration"):
        await cluster.estimate_start(transport, REQUEST)


async def test_torque_gives_no_estimate_and_runs_nothing_for_it():
    transport = CannedTransport({})
    cluster = SchedulerClient("test", PBSAdapter("slurm-torque"))
    assert (await cluster.estimate_start(transport, REQUEST)).start is None
    assert transport.commands == []


async def test_figures_within_the_cache_time_cost_no_scheduler_command():
    cluster, transport = slurm_cluster()
    clock = Clock()
    info = QueueInformation("test", ttl=30, clock=clock)
    first = await info.figures(lambda: cluster.queue_summaries(transport))
    asked = len(transport.commands)
    clock.now += 29
    second = await info.figures(lambda: cluster.queue_summaries(transport))
    assert second is first and len(transport.commands) == asked
    clock.now += 2
    await info.figures(lambda: cluster.queue_summaries(transport))
    assert len(transport.commands) == 2 * asked


async def test_pages_that_ask_at_once_share_one_query():
    calls = 0
    release = asyncio.Event()

    async def fetch():
        nonlocal calls
        calls += 1
        await release.wait()
        return {"debug": QueueSummary("debug", 2, 1, 0)}

    info = QueueInformation("test", ttl=30, clock=Clock())
    waiting = [asyncio.ensure_future(info.figures(fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    answers = await asyncio.gather(*waiting)
    assert calls == 1 and all(a.available for a in answers)


async def test_a_page_that_goes_away_does_not_cancel_the_others_answer():
    release = asyncio.Event()

    async def fetch():
        await release.wait()
        return {}

    info = QueueInformation("test", ttl=30, clock=Clock())
    leaving = asyncio.ensure_future(info.figures(fetch))
    staying = asyncio.ensure_future(info.figures(fetch))
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()
    assert (await staying).available


async def test_an_unreachable_cluster_is_unavailable_and_not_asked_again_at_once():
    cluster, transport = slurm_cluster()
    transport.down = True
    clock = Clock()
    info = QueueInformation("test", ttl=30, clock=clock)
    figures = await info.figures(lambda: cluster.queue_summaries(transport))
    assert not figures.available
    assert "connection refused" in figures.message
    asked = len(transport.commands)
    clock.now += 10
    assert not (await info.figures(lambda: cluster.queue_summaries(transport))).available
    assert len(transport.commands) == asked


async def test_estimates_are_kept_per_key_and_refusals_are_answers():
    cluster, transport = slurm_cluster()
    info = QueueInformation("test", ttl=30, clock=Clock())
    one = await info.estimate(
        ("alice", REQUEST), lambda: cluster.estimate_start(transport, REQUEST)
    )
    assert one.available and one.start is not None
    bigger = JobRequest(job_name="x", queue="debug", walltime_seconds=600, memory_mb=8192)
    transport.answers["sbatch"] = CommandResult(1, "", "allocation failure: not available\n")
    refused = await info.estimate(
        ("alice", bigger), lambda: cluster.estimate_start(transport, bigger)
    )
    assert refused.available and refused.start is None
    assert "not available" in refused.refused
    again = await info.estimate(
        ("alice", REQUEST), lambda: cluster.estimate_start(transport, REQUEST)
    )
    assert again is one and len(transport.commands) == 2


async def test_an_unexpected_failure_is_unavailable_with_a_plain_message():
    async def broken():
        raise KeyError("surprise")

    info = QueueInformation("test", ttl=30, clock=Clock())
    figures = await info.figures(broken)
    assert not figures.available
    assert "hub's log" in figures.message
