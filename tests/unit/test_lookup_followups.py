"""SchedulerClient.lookup's follow-ups (SchedulerAdapter.follow_up_command), with Grid
Engine's recorded answers: a waiting job's reason, and an ended job's accounting record
that may come late (asked again, bounded), through a scripted transport."""

from __future__ import annotations

import asyncio

from hubdash.cluster.client import SchedulerClient
from hubdash.schedulers.base import JobState
from hubdash.schedulers.sge import GridEngineAdapter
from hubdash.transport.base import CommandResult, TransportError

from .scheduler_samples import sample

NOT_FOUND = CommandResult(1, "", sample("recorded-sge-8.1.9-qacct-j-qdel-pending.stderr.txt"))


class ScriptedTransport:
    """Answers each command from a list per command name, in order; records what ran."""

    def __init__(self, answers: dict[str, list[CommandResult | Exception]]):
        self.answers = answers
        self.ran: list[list[str]] = []

    async def run(self, argv, *, input=None, timeout=30):  # noqa: A002 - the contract's name
        self.ran.append(list(argv))
        key = " ".join(argv[:2])
        answer = self.answers[key].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(delays: tuple[float, ...] = (0.0, 0.0, 0.0)) -> SchedulerClient:
    adapter = GridEngineAdapter()
    adapter.follow_up_delays = delays
    return SchedulerClient("sge-test", adapter)


def listing(name: str = "recorded-sge-8.1.9-qstat-u-g-t-xml-after-end.xml") -> CommandResult:
    return CommandResult(0, sample(name), "")


def test_an_ended_jobs_end_is_read_from_qacct_once_it_has_the_record():
    transport = ScriptedTransport(
        {
            "qstat -u": [listing()],
            "qacct -j": [
                NOT_FOUND,
                NOT_FOUND,
                CommandResult(0, sample("recorded-sge-8.1.9-qacct-j-exit3.txt"), ""),
            ],
        }
    )
    answers = asyncio.run(client().lookup(transport, ["14"], "alice"))
    assert (answers["14"].state, answers["14"].exit_code) == (JobState.DONE, 3)
    assert [argv[0] for argv in transport.ran] == ["qstat", "qacct", "qacct", "qacct"]


def test_without_a_record_in_time_the_job_is_gone_after_a_bounded_number_of_asks():
    transport = ScriptedTransport({"qstat -u": [listing()], "qacct -j": [NOT_FOUND] * 10})
    answers = asyncio.run(client(delays=(0.0, 0.0)).lookup(transport, ["7"], "alice"))
    assert answers["7"].state is JobState.GONE
    assert answers["7"].exit_code is None
    assert len(transport.ran) == 1 + 3  # the listing, then qacct at most 1 + len(delays) times


def test_a_waiting_job_gets_its_reason_and_a_held_or_running_one_costs_nothing_more():
    transport = ScriptedTransport(
        {
            "qstat -u": [listing("recorded-sge-8.1.9-qstat-u-g-t-xml-mixed.xml")],
            "qstat -j": [
                CommandResult(0, sample("recorded-sge-8.1.9-qstat-j-xml-pe-too-big.xml"), "")
            ],
        }
    )
    answers = asyncio.run(client().lookup(transport, ["7", "9", "12"], "alice"))
    assert answers["12"].reason == 'cannot run in PE "mpi" because it only offers 12 slots'
    assert answers["7"].reason.startswith("held")
    assert answers["9"].state is JobState.RUNNING
    assert [argv[:3] for argv in transport.ran] == [
        ["qstat", "-u", "alice"],
        ["qstat", "-j", "12"],
    ]


def test_a_failing_follow_up_leaves_the_listings_answer():
    transport = ScriptedTransport(
        {"qstat -u": [listing()], "qacct -j": [TransportError("connection lost")]}
    )
    answers = asyncio.run(client().lookup(transport, ["14"], "alice"))
    assert answers["14"].state is JobState.GONE


def test_follow_ups_are_bounded_per_lookup():
    many = [str(n) for n in range(100, 110)]  # none listed: all ended
    transport = ScriptedTransport({"qstat -u": [listing()], "qacct -j": [NOT_FOUND] * 100})
    sge = client(delays=())
    answers = asyncio.run(sge.lookup(transport, many, "alice"))
    assert all(answers[job].state is JobState.GONE for job in many)
    assert len(transport.ran) == 1 + sge.adapter.follow_ups_per_lookup
