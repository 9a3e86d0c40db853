"""The monitor's lookup contract of both adapters, on recorded output (tests/unit/data)."""

from __future__ import annotations

import pytest

from hubdash.schedulers.base import (
    JobInfo,
    JobRequest,
    JobState,
    SchedulerAdapter,
    SchedulerError,
)
from hubdash.schedulers.pbs import PBSAdapter
from hubdash.schedulers.sge import GridEngineAdapter
from hubdash.schedulers.slurm import SlurmAdapter

from .scheduler_samples import sample

SLURM = SlurmAdapter()
TORQUE = PBSAdapter("torque")


def test_slurm_lookup_is_one_scontrol_rpc_for_one_job():
    argv = SLURM.lookup_command(["77"], "alice")
    assert argv == ["scontrol", "--local", "-o", "show", "job", "77"]
    with pytest.raises(ValueError):
        SLURM.lookup_command(["-77"], "alice")


def test_slurm_lookup_of_many_jobs_asks_for_the_users_jobs_never_a_list_of_ids():
    assert SLURM.lookup_batch_min == 6
    argv = SLURM.lookup_command([str(n) for n in range(70, 76)], "alice")
    assert argv[:6] == ["squeue", "--local", "-h", "--states=all", "-u", "alice"]
    assert "-j" not in argv  # a list of ids would make squeue load every job in the system
    with pytest.raises(ValueError):
        SLURM.lookup_command(["70", "71"], "-alice")


def test_slurm_lookup_of_a_users_jobs_answers_for_each_and_gone_for_the_missing():
    stdout = "70|RUNNING|None|debug|cn1|2026-11-25T21:28:38|1\n71|PENDING|Priority|debug||N/A|1\n"
    infos = SLURM.parse_lookup(0, stdout, "", ["70", "71", "72"])
    assert [infos[i].state for i in ("70", "71", "72")] == [
        JobState.RUNNING,
        JobState.PENDING,
        JobState.GONE,
    ]


@pytest.mark.parametrize(
    ("name", "state", "nodes", "exit_code"),
    [
        ("scontrol-show-job-running-oneline.txt", JobState.RUNNING, ["cn1"], None),
        ("scontrol-show-job-pending-held.txt", JobState.PENDING, [], None),
        ("scontrol-show-job-failed.txt", JobState.FAILED, None, 3),
        ("scontrol-show-job-completed.txt", JobState.DONE, None, 0),
    ],
)
def test_slurm_lookup_reads_state_nodes_and_exit_code(name, state, nodes, exit_code):
    info = SLURM.parse_lookup(0, sample(name), "", ["77"])["77"]
    assert info.job_id == "77"  # the id asked about, whatever scontrol printed
    assert info.state is state
    if nodes is not None:
        assert info.nodes == nodes
    assert info.exit_code == exit_code


def test_slurm_lookup_of_a_purged_job_says_gone():
    stderr = sample("scontrol-show-job-purged.stderr.txt")
    assert SLURM.parse_lookup(1, "", stderr, ["77"])["77"].state is JobState.GONE


@pytest.mark.parametrize(
    "stderr",
    [
        "slurm_load_jobs error: Socket timed out on send/recv operation\n",
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n",
        "",
    ],
)
def test_slurm_lookup_failure_is_no_verdict(stderr):
    with pytest.raises(SchedulerError):
        SLURM.parse_lookup(1, "", stderr, ["77"])


def test_pbs_lookup_asks_for_all_of_a_users_jobs_in_one_qstat():
    assert TORQUE.lookup_batch_min == 2
    assert TORQUE.lookup_command(["1234.torque01", "1299.torque01"], "alice") == [
        "qstat",
        "-f",
        "1234.torque01",
        "1299.torque01",
    ]


def test_pbs_lookup_of_one_known_and_one_unknown_job_answers_for_both():
    stdout = sample("doc-torque-6-qstat-f-one-of-two.txt")
    stderr = sample("doc-torque-6-qstat-f-one-of-two.stderr.txt")
    ids = ["1234.torque01.example.org", "1299.torque01.example.org"]
    infos = TORQUE.parse_lookup(153, stdout, stderr, ids)
    assert infos[ids[1]].state is JobState.GONE
    assert infos[ids[0]].state is not JobState.GONE


def test_pbs_lookup_failure_is_no_verdict():
    with pytest.raises(SchedulerError, match="Cannot connect"):
        TORQUE.parse_lookup(
            1, "", "qstat: cannot connect to server (errno=111)\nCannot connect", ["1"]
        )


class Plain(SchedulerAdapter):
    """An adapter with the contract's defaults only."""

    def parse_status(self, stdout, job_ids):
        return {job_id: JobInfo(job_id, JobState.RUNNING) for job_id in job_ids}


def test_by_default_a_failed_lookup_is_no_answer_naming_its_exit_and_last_words():
    with pytest.raises(SchedulerError) as caught:
        Plain().parse_lookup(1, "", "Invalid job id specified", ["7"])
    assert str(caught.value) == "status command failed (exit 1): Invalid job id specified"
    with pytest.raises(SchedulerError) as caught:
        Plain().parse_lookup(2, "", "x" * 100 + "y" * 400, ["7"])
    assert str(caught.value) == f"status command failed (exit 2): {'y' * 400}"
    with pytest.raises(SchedulerError) as caught:
        Plain().parse_lookup(3, " \n", "", ["7"])
    assert str(caught.value) == "status command failed (exit 3): (no output)"
    assert Plain().parse_lookup(0, "", "", ["7"])["7"].state is JobState.RUNNING


def test_the_slurm_wrappers_silent_exit_153_is_a_lookup_of_gone_jobs():
    wrapper = PBSAdapter("slurm-torque")
    infos = wrapper.parse_lookup(153, "", "", ["7", "8"])
    assert {job_id: info.state for job_id, info in infos.items()} == {
        "7": JobState.GONE,
        "8": JobState.GONE,
    }


def test_by_default_job_ids_are_the_lines_printed():
    assert Plain().parse_job_ids("  101\n\n102 \n") == ["101", "102"]


@pytest.mark.parametrize("adapter", [PBSAdapter("torque"), GridEngineAdapter()])
def test_a_scheduler_without_a_what_if_query_says_it_gives_no_estimate(adapter):
    assert adapter.test_only_command(JobRequest("j", "q", 60)) is None
    with pytest.raises(SchedulerError) as caught:
        adapter.parse_test_only("")
    assert str(caught.value) == "this scheduler gives no start estimates"


def test_a_scheduler_without_its_own_estimates_says_so_for_a_backlog():
    assert GridEngineAdapter().backlog_command("all.q") is None
    with pytest.raises(SchedulerError) as caught:
        GridEngineAdapter().parse_backlog("")
    assert str(caught.value) == "this scheduler gives no start estimates"
