"""The Grid Engine adapter, on real Son of Grid Engine 8.1.9 output.

Samples: tests/unit/data/recorded-sge-8.1.9-*, each with the command that produced it in
data/SAMPLES-sge.md (job ids of that run: 7 held, 8 waiting for the disabled hold.q,
9 running, 10 running on two hosts, 11 in error state, 12 too big, 13 suspended;
14 exited 3, 15 killed at its h_rt, 16 a two-host job whose qrsh tasks exited 7).
"""

from __future__ import annotations

import re

import pytest

from hubdash.schedulers import SCHEDULERS, adapter_for
from hubdash.schedulers.base import JobInfo, JobRequest, JobState, SchedulerError
from hubdash.schedulers.sge import GridEngineAdapter, sge_state, state_reason
from hubdash.schedulers.sgexml import parse_job_list
from hubdash.spawner.jobscript import JobScript, render_job_script

from .job_requests import request_with
from .scheduler_samples import DATA, sample

SGE = GridEngineAdapter()
PREFIX = "recorded-sge-8.1.9-"


def recorded(name: str) -> str:
    return sample(PREFIX + name)


def test_every_recorded_sample_names_its_command():
    listed = set(re.findall(r"^\| `([^`]+)` \|", sample("SAMPLES-sge.md"), re.MULTILINE))
    files = {p.name for p in DATA.glob(PREFIX + "*") if not p.name.endswith(".stderr.txt")}
    assert files and files == listed


def test_sge_is_a_scheduler_the_hub_knows():
    assert "sge" in SCHEDULERS
    adapter = adapter_for("sge", parallel_environment="smp", slots_per_node="8")
    assert isinstance(adapter, GridEngineAdapter)
    assert (adapter.parallel_environment, adapter.slots_per_node) == ("smp", 8)
    for bad in (
        {"slots_per_node": "eight"},
        {"slots_per_node": "-1"},
        {"parallel_environment": "a b"},
    ):
        with pytest.raises(ValueError):
            adapter_for("sge", **bad)


# --- the job script -------------------------------------------------------------------------


def request(**changes) -> JobRequest:
    base = dict(
        job_name="jupyterhub-alice",
        queue="all.q",
        walltime_seconds=600,
        output_path=".hubdash/servers/x/job.log",
    )
    return JobRequest(**{**base, **changes})


def test_one_slot_job_asks_for_no_parallel_environment():
    assert SGE.directives(request()) == [
        "#$ -N jupyterhub-alice",
        "#$ -q all.q",
        "#$ -l h_rt=0:10:00",
        "#$ -o .hubdash/servers/x/job.log",
        "#$ -j y",
        "#$ -S /bin/bash",
        "#$ -r n",
    ]


def test_several_nodes_or_tasks_ask_the_parallel_environment_for_slots():
    assert "#$ -pe mpi 2" in SGE.directives(request(nodes=2))
    assert "#$ -pe mpi 4" in SGE.directives(request(nodes=2, tasks_per_node=2))
    assert "#$ -pe mpi 3" in SGE.directives(request(tasks_per_node=3))


def test_a_fixed_allocation_rule_asks_for_whole_nodes():
    fixed = GridEngineAdapter("mpi8", slots_per_node=8)
    assert "#$ -pe mpi8 16" in fixed.directives(request(nodes=2, tasks_per_node=3))
    assert "#$ -pe mpi8 8" in fixed.directives(request(tasks_per_node=2))
    assert not any("-pe" in line for line in fixed.directives(request()))
    with pytest.raises(ValueError, match="sge_slots_per_node"):
        fixed.directives(request(nodes=2, tasks_per_node=9))


def test_no_parallel_environment_refuses_jobs_of_several_slots():
    adapter = GridEngineAdapter(parallel_environment="")
    assert adapter.directives(request())
    with pytest.raises(ValueError, match="sge_parallel_environment"):
        adapter.directives(request(nodes=2))


def test_project_memory_per_slot_and_no_gpus():
    lines = SGE.directives(request(nodes=2, tasks_per_node=3, account="phys01", memory_mb=4000))
    assert "#$ -P phys01" in lines
    assert "#$ -l h_vmem=1334M" in lines  # 4000 MB per node over its 3 slots, rounded up
    with pytest.raises(ValueError, match="GPUs"):
        SGE.directives(request(gpus=1))


@pytest.mark.parametrize(
    ("field", "bad"),
    [("job_name", "a b"), ("queue", "all.q;id"), ("account", "-x"), ("output_path", "$(id)")],
)
def test_directive_values_with_shell_characters_are_refused(field, bad):
    with pytest.raises(ValueError, match=field):
        SGE.directives(request_with(field, bad))


def test_the_environment_of_the_submitting_shell_is_never_exported():
    lines = SGE.directives(request(nodes=2, account="a", memory_mb=100))
    assert not any(re.search(r"\s-V\b|\s-v\s", line) for line in lines)
    assert SGE.submit_command("s.sh") == ["qsub", "-terse", "s.sh"]


def test_job_script_carries_directives_and_takes_the_job_id_from_JOB_ID():
    job = JobScript("alice", "", ".hubdash/servers/x", "python3", ["jupyterhub-singleuser"])
    script = render_job_script(SGE, request(nodes=2), job)
    assert script.startswith("#!/bin/bash\n#$ -N jupyterhub-alice\n")
    assert "#$ -pe mpi 2\n" in script
    assert '--job-id "${JOB_ID:-unknown}"' in script


def test_submit_reads_the_terse_job_id():
    assert SGE.parse_submit(recorded("qsub-terse-held.txt")) == "7"
    with pytest.raises(SchedulerError):
        SGE.parse_submit('Your job 1 ("hello") has been submitted\n')


# --- states -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("letters", "state"),
    [
        ("qw", JobState.PENDING),
        ("hqw", JobState.PENDING),
        ("hRwq", JobState.PENDING),
        ("Eqw", JobState.PENDING),
        ("Ehqw", JobState.PENDING),
        ("t", JobState.PENDING),
        ("Rt", JobState.PENDING),
        ("r", JobState.RUNNING),
        ("Rr", JobState.RUNNING),
        ("s", JobState.PENDING),
        ("S", JobState.PENDING),
        ("T", JobState.PENDING),
        ("Rs", JobState.PENDING),
        ("dr", JobState.COMPLETING),
        ("dt", JobState.COMPLETING),
        ("ds", JobState.COMPLETING),
        ("dRr", JobState.COMPLETING),
        ("z", JobState.GONE),
        ("", JobState.PENDING),
        ("new", JobState.PENDING),
    ],
)
def test_each_state_word(letters, state):
    assert sge_state(letters) is state


@pytest.mark.parametrize(
    ("letters", "words"),
    [("hqw", "held"), ("Eqw", "error"), ("s", "suspended"), ("S", "queue"), ("T", "load")],
)
def test_state_letters_that_say_why_a_job_waits(letters, words):
    assert words in state_reason(letters)


# --- the monitor's lookup -------------------------------------------------------------------


def test_lookup_is_one_qstat_of_the_users_jobs_whatever_ids_are_due():
    assert SGE.lookup_batch_min == 1  # every lookup answers for all of the user's jobs
    assert SGE.lookup_command(["7", "9"], "alice") == ["qstat", "-u", "alice", "-g", "t", "-xml"]
    for ids, user in ((["-7"], "alice"), (["7"], "-alice"), (["7"], "a b")):
        with pytest.raises(ValueError):
            SGE.lookup_command(ids, user)


def test_lookup_reads_every_state_of_the_recorded_mix():
    ids = ["7", "8", "9", "10", "11", "12", "13", "99"]
    infos = SGE.parse_lookup(0, recorded("qstat-u-g-t-xml-mixed.xml"), "", ids)
    states = {job_id: (info.state, info.raw_state) for job_id, info in infos.items()}
    assert states == {
        "7": (JobState.PENDING, "hqw"),
        "8": (JobState.PENDING, "qw"),
        "9": (JobState.RUNNING, "r"),
        "10": (JobState.RUNNING, "r"),
        "11": (JobState.PENDING, "Eqw"),
        "12": (JobState.PENDING, "qw"),
        "13": (JobState.PENDING, "s"),
        "99": (JobState.GONE, ""),
    }
    assert (infos["9"].queue, infos["9"].nodes) == ("all.q", ["sge-cn1"])
    # A two-host job: a line per task (-g t), the master's host first.
    assert infos["10"].nodes == ["sge-cn2", "sge-cn1"]
    assert infos["7"].reason.startswith("held")
    assert infos["8"].nodes == [] and infos["8"].queue == ""


def test_lookup_without_task_lines_names_the_master_host_only():
    infos = SGE.parse_lookup(0, recorded("qstat-u-xml-mixed.xml"), "", ["10"])
    assert infos["10"].state is JobState.RUNNING
    assert len(infos["10"].nodes) == 1


def test_a_job_being_deleted_is_ending_and_a_finished_one_is_gone():
    deleting = SGE.parse_lookup(0, recorded("qstat-u-g-t-xml-deleting.xml"), "", ["9"])["9"]
    assert (deleting.state, deleting.reason) == (JobState.COMPLETING, "being deleted")
    after = SGE.parse_lookup(0, recorded("qstat-u-g-t-xml-after-end.xml"), "", ["14"])["14"]
    assert after.state is JobState.GONE


def test_reference_samples_read_the_same():
    suspended = SGE.parse_lookup(0, recorded("ref-qstat-u-xml-suspended.xml"), "", ["15"])
    assert suspended["15"].state is JobState.PENDING
    assert parse_job_list(recorded("ref-qstat-g-t-xml-pe.xml"))["7"].hosts == ["sgen2", "sgen1"]


def test_a_failed_qstat_is_no_answer():
    with pytest.raises(SchedulerError, match="qstat failed"):
        SGE.parse_lookup(1, "", "error: commlib error: got select error", ["7"])


def test_xml_with_a_document_type_or_broken_xml_is_refused():
    doctype = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><job_info>&a;</job_info>'
    with pytest.raises(SchedulerError, match="document type"):
        SGE.parse_lookup(0, doctype, "", ["1"])
    with pytest.raises(SchedulerError, match="cannot read"):
        SGE.parse_lookup(0, "<job_info><job_list>", "", ["1"])


# --- follow-ups: why a job waits, how it ended ----------------------------------------------


def info(job_id: str, state: JobState, raw: str = "") -> JobInfo:
    return JobInfo(job_id=job_id, state=state, raw_state=raw)


def test_follow_ups_ask_only_what_the_listing_cannot_tell():
    assert SGE.follow_up_command(info("8", JobState.PENDING, "qw")) == ["qstat", "-j", "8", "-xml"]
    assert SGE.follow_up_command(info("11", JobState.PENDING, "Eqw")) == [
        "qstat",
        "-j",
        "11",
        "-xml",
    ]
    assert SGE.follow_up_command(info("14", JobState.GONE)) == ["qacct", "-j", "14"]
    for quiet in (
        info("7", JobState.PENDING, "hqw"),
        info("9", JobState.RUNNING, "r"),
        info("9", JobState.COMPLETING, "dr"),
    ):
        assert SGE.follow_up_command(quiet) is None


@pytest.mark.parametrize(
    ("name", "job_id", "raw", "reason"),
    [
        (
            "qstat-j-xml-queue-disabled.xml",
            "8",
            "qw",
            'queue instance "hold.q@sge-cn1" dropped because it is disabled; '
            'queue instance "hold.q@sge-cn2" dropped because it is disabled',
        ),
        (
            "qstat-j-xml-pe-too-big.xml",
            "12",
            "qw",
            'cannot run in PE "mpi" because it only offers 12 slots',
        ),
        (
            "qstat-j-xml-error.xml",
            "11",
            "Eqw",
            'can\'t stat() "/root/nope/x.out" as stdout_path: Permission denied',
        ),
        (
            "ref-qstat-j-xml-all-queues-disabled.xml",
            "1",
            "qw",
            'queue instance "all.q@sgen1" dropped because it is disabled; '
            'queue instance "all.q@sgen2" dropped because it is disabled',
        ),
    ],
)
def test_a_waiting_jobs_reason_is_the_schedulers_message_about_it(name, job_id, raw, reason):
    done = SGE.complete_lookup(info(job_id, JobState.PENDING, raw), 0, recorded(name), "")
    assert done is not None and done.state is JobState.PENDING
    assert done.reason == reason


def test_a_job_that_ended_meanwhile_keeps_its_listed_state():
    done = SGE.complete_lookup(
        info("8", JobState.PENDING, "qw"), 0, recorded("qstat-j-xml-unknown.xml"), ""
    )
    assert done is not None and done.state is JobState.PENDING


@pytest.mark.parametrize(
    ("name", "state", "exit_code", "reason", "nodes"),
    [
        ("qacct-j-exit3.txt", JobState.DONE, 3, "", ["sge-cn1"]),
        ("qacct-j-walltime.txt", JobState.FAILED, 137, "qmaster enforced h_rt", ["sge-cn2"]),
        ("qacct-j-qdel-running.txt", JobState.CANCELLED, 137, "killed by signal 9", ["sge-cn1"]),
        ("qacct-j-pe-two-hosts.txt", JobState.DONE, 0, "", ["sge-cn1", "sge-cn2"]),
        ("ref-qacct-j-pe-with-qrsh-tasks.txt", JobState.DONE, 0, "", ["sgen2", "sgen1"]),
    ],
)
def test_how_a_job_ended_comes_from_its_accounting_record(name, state, exit_code, reason, nodes):
    done = SGE.complete_lookup(info("14", JobState.GONE), 0, recorded(name), "")
    assert done is not None and done.job_id == "14"
    assert (done.state, done.exit_code) == (state, exit_code)
    assert reason in done.reason
    assert done.nodes == nodes
    assert SGE.parse_job_detail(recorded(name)).exit_code == exit_code


def test_no_accounting_record_yet_means_ask_again():
    stderr = sample(PREFIX + "qacct-j-qdel-pending.stderr.txt")
    assert SGE.complete_lookup(info("7", JobState.GONE), 1, "", stderr) is None
    # No accounting file to read (a new cell, a rotated file): ask again too.
    assert SGE.complete_lookup(info("7", JobState.GONE), 1, "", "error: can't open file") is None
    assert SGE.follow_up_delays and sum(SGE.follow_up_delays) >= 15  # the default flush time


# --- status, cancel, jobs by name -----------------------------------------------------------


def test_status_knows_alive_jobs_and_calls_the_others_gone():
    assert SGE.status_command(["9", "10"]) == ["qstat", "-j", "9,10", "-xml"]
    infos = SGE.parse_status(recorded("qstat-j-xml-running-and-unknown.xml"), ["9", "10", "999999"])
    assert [infos[i].state for i in ("9", "10", "999999")] == [
        JobState.RUNNING,
        JobState.RUNNING,
        JobState.GONE,
    ]
    held = SGE.parse_status(recorded("qstat-j-xml-held.xml"), ["7"])["7"]
    assert held.state is JobState.PENDING
    unknown = SGE.parse_status(recorded("qstat-j-xml-unknown.xml"), ["999999"])
    assert unknown["999999"].state is JobState.GONE


def test_cancel_and_jobs_by_name():
    assert SGE.cancel_command(["9", "10"]) == ["qdel", "9", "10"]
    # The user's own listing, filtered by name: another user's job of that name is not theirs.
    argv = SGE.jobs_named_command("hd-run", "alice")
    assert argv == ["qstat", "-u", "alice", "-g", "t", "-xml"]
    listing = recorded("qstat-u-g-t-xml-mixed.xml")
    assert SGE.parse_job_ids(listing, "hd-run", "alice") == ["9"]
    assert SGE.parse_job_ids(listing, "hd-pe", "alice") == ["10"]  # one id for its 3 tasks
    assert SGE.parse_job_ids(listing, "hd-run", "bob") == []
    assert SGE.parse_job_ids(listing, "hd-none", "alice") == []
    with pytest.raises(ValueError):
        SGE.jobs_named_command("hd-*", "alice")


# --- queues -----------------------------------------------------------------------------------


def test_queue_figures_from_the_cluster_queues_and_their_hosts():
    assert SGE.queues_command() == ["qstat", "-g", "c", "-xml"]
    assert SGE.queue_detail_command() == ["qhost", "-q", "-xml"]
    queues = SGE.parse_queues(recorded("qstat-g-c-xml.xml"))
    assert set(queues) == {"all.q", "debug.q", "hold.q"}
    assert (queues["all.q"].state, queues["hold.q"].state) == ("up", "disabled")
    SGE.add_queue_detail(queues, recorded("qhost-q-xml.xml"))
    # Recorded with jobs on both hosts of all.q; hold.q is disabled on both.
    assert (queues["all.q"].nodes_total, queues["all.q"].nodes_free) == (2, 0)
    assert (queues["debug.q"].nodes_total, queues["debug.q"].nodes_free) == (2, 2)
    assert (queues["hold.q"].nodes_total, queues["hold.q"].nodes_free) == (2, 0)


def test_no_start_estimates_and_no_positions():
    assert SGE.test_only_command(request()) is None
    assert SGE.position_command("all.q") is None


def test_a_parallel_jobs_own_record_is_the_one_that_ended_last_whatever_the_order():
    text = recorded("qacct-j-pe-two-hosts.txt")
    first, *rest = text.split("=" * 62 + "\n")[1:]
    # Its tasks' records may be written after the job's own: the job's is still taken.
    reordered = "".join("=" * 62 + "\n" + part for part in [rest[-1], first, *rest[:-1]])
    for answer in (text, reordered):
        ended = SGE.parse_job_detail(answer)
        assert (ended.exit_code, ended.nodes) == (0, ["sge-cn1", "sge-cn2"])


def test_a_task_that_ended_in_the_same_second_as_the_job_is_not_taken_for_it():
    # Job 31: its qrsh task on sge-cn1 killed (137) as the job on sge-cn2 ended (0).
    ended = SGE.parse_job_detail(recorded("qacct-j-engines-two-hosts.txt"))
    assert (ended.state, ended.exit_code, ended.nodes) == (JobState.DONE, 0, ["sge-cn2", "sge-cn1"])
