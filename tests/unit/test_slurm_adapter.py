"""The Slurm adapter: the commands it builds and how it reads Slurm's answers.

Samples in tests/unit/data: `slurm-22.05-*`, `scontrol-*` and `sinfo-*` are recorded on the
local Slurm 22.05 test cluster by scripts/record-scheduler-samples, which lists each
command and its exit code in SAMPLES.md; job ids change with every recording, so these
tests take them from there. `recorded-slurm-*` are further real outputs of the same
cluster. Our squeue/sinfo formats are fixed by `-o`, so they read the same up to 24.x.
"""

from datetime import datetime

import pytest

from hubdash.schedulers import adapter_for, slurmtext
from hubdash.schedulers.base import JobInfo, JobRequest, JobState, SchedulerError
from hubdash.schedulers.slurm import SlurmAdapter
from hubdash.schedulers.slurmtext import (
    expand_hostlist,
    parse_exit_code,
    parse_id_and_name,
    slurm_state,
)

from .job_requests import request_with
from .scheduler_samples import recorded, sample

SLURM = SlurmAdapter()


def recorded_ids(name: str) -> list[str]:
    argv, _ = recorded(name)
    return argv[argv.index("-j") + 1].split(",") if "-j" in argv else [argv[-1]]


def listed_states(stdout: str) -> dict[str, str]:
    return {line.split("|")[0]: line.split("|")[1] for line in stdout.splitlines() if line}


FULL_REQUEST = JobRequest(
    job_name="jupyterhub-alice-gpu",
    queue="gpu",
    walltime_seconds=5400,
    nodes=2,
    tasks_per_node=4,
    output_path=".hubdash/gpu/job.log",
    account="physics",
    memory_mb=8000,
    gpus=2,
)


# --- the job script -------------------------------------------------------------------------


def test_directives_carry_every_requested_resource():
    assert SLURM.directives(FULL_REQUEST) == [
        "#SBATCH --job-name=jupyterhub-alice-gpu",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=1:30:00",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --output=.hubdash/gpu/job.log",
        "#SBATCH --account=physics",
        "#SBATCH --mem=8000M",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --no-requeue",
    ]


def test_directives_leave_out_what_was_not_asked_for():
    request = JobRequest(job_name="jupyterhub-bob", queue="debug", walltime_seconds=600)
    assert SLURM.directives(request) == [
        "#SBATCH --job-name=jupyterhub-bob",
        "#SBATCH --partition=debug",
        "#SBATCH --time=0:10:00",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --no-requeue",
    ]


@pytest.mark.parametrize("field", ["job_name", "queue", "output_path", "account"])
@pytest.mark.parametrize(
    "bad", ["two words", "line\n#SBATCH --uid=0", "it's", 'say "x"', "$HOME", "`id`", "a;b", "-x"]
)
def test_unsafe_directive_value_is_refused_by_name(field, bad):
    with pytest.raises(ValueError, match=field):
        SLURM.directives(request_with(field, bad))


@pytest.mark.parametrize(
    ("field", "value"), [("nodes", 0), ("tasks_per_node", -1), ("walltime_seconds", 0)]
)
def test_counts_below_one_are_refused_by_name(field, value):
    values = {"job_name": "j", "queue": "q", "walltime_seconds": 60, field: value}
    with pytest.raises(ValueError, match=field):
        SLURM.directives(JobRequest(**values))


def test_adapter_declares_its_prefix_and_job_id_variable():
    assert adapter_for("slurm").name == "slurm"
    assert SLURM.directive_prefix == "#SBATCH"
    assert SLURM.job_id_variable == "SLURM_JOB_ID"


# --- submitting -----------------------------------------------------------------------------


def test_submit_is_sbatch_parsable_on_the_script():
    assert SLURM.submit_command(".hubdash/job.sh") == ["sbatch", "--parsable", ".hubdash/job.sh"]


@pytest.mark.parametrize(("stdout", "job_id"), [("123\n", "123"), ("123;cluster1\n", "123")])
def test_submit_output_gives_the_job_id(stdout, job_id):
    assert SLURM.parse_submit(stdout) == job_id


def test_submit_output_without_a_job_id_is_an_error_that_quotes_it():
    with pytest.raises(SchedulerError, match="Submitted batch job 5"):
        SLURM.parse_submit("Submitted batch job 5\n")
    with pytest.raises(SchedulerError):
        SLURM.parse_submit("")


# --- job status -----------------------------------------------------------------------------


def test_status_asks_squeue_for_all_ids_in_one_call():
    assert SLURM.status_command(["1", "2", "3"]) == [
        "squeue", "-h", "--states=all", "-j", "1,2,3", "-o", "%i|%T|%r|%P|%N|%S|%Q",
    ]  # fmt: skip


@pytest.mark.parametrize("ids", [[], ["-1"], ["1;reboot"], ["1 2"]])
def test_status_refuses_missing_or_odd_job_ids(ids):
    with pytest.raises(ValueError):
        SLURM.status_command(ids)


SQUEUE_SAMPLES = [
    "slurm-22.05-squeue-format.txt",
    "slurm-22.05-squeue-format-after-backfill.txt",
    "slurm-22.05-squeue-format-after-cancel.txt",
    "slurm-22.05-squeue-format-single-pending.txt",
    "slurm-22.05-squeue-format-two-nodes.txt",
    "slurm-22.05-squeue-purged-in-list.txt",
]

EXPECTED = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETED": JobState.DONE,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
}


@pytest.mark.parametrize("name", SQUEUE_SAMPLES)
def test_status_command_is_the_one_recorded(name):
    argv, exit_status = recorded(name)
    assert SLURM.status_command(recorded_ids(name)) == argv
    assert exit_status == 0


@pytest.mark.parametrize("name", SQUEUE_SAMPLES)
def test_recorded_squeue_states_map_to_job_states(name):
    stdout = sample(name)
    info = SLURM.parse_status(stdout, recorded_ids(name))
    for job_id, word in listed_states(stdout).items():
        assert (job_id, info[job_id].state) == (job_id, EXPECTED[word])
        assert info[job_id].raw_state == word
        if word == "RUNNING":
            assert info[job_id].nodes and info[job_id].reason == ""
        if word == "PENDING":
            assert info[job_id].nodes == []


def test_timed_out_and_held_jobs_keep_slurms_reason():
    stdout = sample("slurm-22.05-squeue-format.txt")
    info = SLURM.parse_status(stdout, recorded_ids("slurm-22.05-squeue-format.txt"))
    reasons = {job.raw_state: job.reason for job in info.values() if job.raw_state}
    assert reasons["TIMEOUT"] == "TimeLimit"
    assert "JobHeldUser" in {job.reason for job in info.values()}


def test_running_job_has_its_node_and_no_start_estimate():
    stdout = sample("slurm-22.05-squeue-format.txt")
    running = [
        job
        for job in SLURM.parse_status(stdout, list(listed_states(stdout))).values()
        if job.state is JobState.RUNNING
    ]
    assert running and all(len(job.nodes) == 1 and job.queue == "debug" for job in running)
    assert all(job.estimated_start is None for job in running)  # %S is its start, not a guess


def test_two_node_job_lists_both_nodes():
    name = "slurm-22.05-squeue-format-two-nodes.txt"
    (info,) = SLURM.parse_status(sample(name), recorded_ids(name)).values()
    assert info.nodes == ["cn1", "cn2"]


def test_pending_job_carries_the_backfill_estimate_or_none():
    stdout = sample("slurm-22.05-squeue-format-after-backfill.txt")
    pending = {
        line.split("|")[0]: line.split("|")[5]
        for line in stdout.splitlines()
        if "|PENDING|" in line
    }
    info = SLURM.parse_status(stdout, list(pending))
    for job_id, start in pending.items():
        expected = None if start == "N/A" else datetime.fromisoformat(start)
        assert info[job_id].estimated_start == expected
    assert any(start != "N/A" for start in pending.values())


def test_cancelled_pending_job_has_no_start_estimate():
    stdout = sample("slurm-22.05-squeue-format-after-cancel.txt")
    info = SLURM.parse_status(stdout, list(listed_states(stdout)))
    cancelled = [job for job in info.values() if job.state is JobState.CANCELLED]
    assert cancelled and all(job.estimated_start is None for job in cancelled)


def test_reason_with_spaces_and_job_in_two_partitions_are_read_whole():
    info = SLURM.parse_status(
        sample("recorded-slurm-22.05-squeue-status-multi-partition.txt"), ["42"]
    )
    job = info["42"]
    assert job.reason == (
        "Nodes required for job are DOWN, DRAINED or reserved for jobs"
        " in higher priority partitions"
    )
    assert job.queue == "debug,batch"
    assert job.nodes == []


def test_ids_missing_from_squeue_are_gone():
    # Recorded: asked for a purged job and a live one; squeue listed only the live one.
    name = "slurm-22.05-squeue-purged-in-list.txt"
    info = SLURM.parse_status(sample(name), recorded_ids(name))
    listed = set(listed_states(sample(name)))
    assert listed and len(info) > len(listed)
    for job_id, job in info.items():
        assert (job.state is JobState.GONE) == (job_id not in listed)


def test_stray_lines_are_ignored():
    stdout = "Welcome to the cluster!\n9|RUNNING|None|debug|cn1|2026-11-25T21:16:53|100\n"
    assert SLURM.parse_status(stdout, ["9"])["9"].state is JobState.RUNNING


def test_unreadable_line_for_our_job_is_not_a_verdict():
    with pytest.raises(SchedulerError):
        SLURM.parse_status("9|RUNNING\n", ["9"])


@pytest.mark.parametrize(
    "name", ["slurm-22.05-squeue-unknown-job", "slurm-22.05-squeue-purged-job"]
)
def test_unknown_job_id_means_gone(name):
    _, exit_status = recorded(f"{name}.txt")
    assert sample(f"{name}.txt") == ""
    assert SLURM.status_failure_means_gone(exit_status, sample(f"{name}.stderr.txt"))
    assert SLURM.parse_status("", recorded_ids(f"{name}.txt")).popitem()[1].state is JobState.GONE


def test_purged_job_gives_the_same_answer_to_start_and_detail_queries():
    # squeue --start and scontrol say "unknown" the same way: the same test applies.
    for name in ("slurm-22.05-squeue-start-purged-job", "scontrol-show-job-purged"):
        _, exit_status = recorded(f"{name}.txt")
        assert SLURM.status_failure_means_gone(exit_status, sample(f"{name}.stderr.txt"))


@pytest.mark.parametrize(
    ("exit_status", "stderr"),
    [
        (1, "slurm_load_jobs error: Socket timed out on send/recv operation\n"),
        (1, "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"),
        (255, ""),  # ssh itself failed
        (2, "slurm_load_jobs error: Invalid job id specified\n"),  # not squeue's exit code
    ],
)
def test_scheduler_timeout_is_not_gone(exit_status, stderr):
    assert not SLURM.status_failure_means_gone(exit_status, stderr)


# Every job state squeue's %T prints (squeue(1), JOB STATE CODES, Slurm 22.05 to 24.x), and
# what it means for a server: written out here, not read from the adapter's table.
SLURM_STATE_WORDS = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,  # nodes allocated and booting: no server yet
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "SPECIAL_EXIT": JobState.PENDING,  # requeued and held by the site's epilog
    "SUSPENDED": JobState.PENDING,  # holds its nodes, but its server cannot answer
    "STOPPED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "COMPLETING": JobState.COMPLETING,
    "STAGE_OUT": JobState.COMPLETING,
    "COMPLETED": JobState.DONE,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,  # federation: a sibling cluster runs it instead
}


@pytest.mark.parametrize(("word", "state"), SLURM_STATE_WORDS.items())
def test_slurm_state_words(word, state):
    assert slurm_state(word) is state
    assert slurm_state(f" {word}+\n") is state  # sacct's '+', squeue's spacing
    assert slurm_state(f"{word} by 1001") is state  # scontrol's "CANCELLED by 1001"


def test_every_state_word_is_in_the_adapters_table():
    # A word missing from the table would still read as PENDING (an unknown word's
    # meaning): only the table itself tells that PENDING was chosen for it.
    assert set(slurmtext._STATES) == set(SLURM_STATE_WORDS)


@pytest.mark.parametrize("word", ["A_STATE_FROM_SLURM_25", "", "running", "CD"])
def test_a_state_word_slurm_may_add_later_keeps_the_job_waiting(word):
    assert slurm_state(word) is JobState.PENDING


# --- place in the queue and start estimates ---------------------------------------------------


def test_position_lists_the_partitions_pending_jobs_by_priority():
    assert SLURM.position_command("debug") == [
        "squeue", "-h", "--states=PENDING", "-p", "debug", "--sort=-p,i", "-o", "%i",
    ]  # fmt: skip


def test_positions_count_from_one_in_printed_order():
    positions = SLURM.parse_positions(sample("recorded-slurm-22.05-squeue-positions-debug.txt"))
    assert positions == {"41": 1, "42": 2, "43": 3}


def test_position_command_refuses_an_odd_queue_name():
    with pytest.raises(ValueError, match="queue"):
        SLURM.position_command("-a")


def test_test_only_asks_sbatch_with_the_requests_resources():
    argv = SLURM.test_only_command(FULL_REQUEST, ".hubdash/job.sh")
    assert argv[:2] == ["sbatch", "--test-only"]
    assert argv[-1] == ".hubdash/job.sh"
    assert "--partition=gpu" in argv and "--nodes=2" in argv and "--time=1:30:00" in argv


def test_test_only_answer_gives_the_start_time():
    stderr = sample("recorded-slurm-22.05-sbatch-test-only.stderr.txt")
    assert SLURM.parse_test_only(stderr) == datetime(2026, 11, 25, 21, 22, 8)


def test_test_only_refusal_is_an_error():
    refusal = (
        "sbatch: error: Batch job submission failed: "
        "Requested node configuration is not available\n"
    )
    with pytest.raises(SchedulerError, match="not available"):
        SLURM.parse_test_only(refusal)


# --- cancelling and details ------------------------------------------------------------------


def test_cancel_is_scancel_on_the_ids():
    assert SLURM.cancel_command(["7", "8"]) == ["scancel", "7", "8"]


def test_job_detail_asks_scontrol_for_one_line():
    assert SLURM.job_detail_command("5") == ["scontrol", "show", "job", "-o", "5"]
    argv, _ = recorded("scontrol-show-job-running-oneline.txt")
    assert SLURM.job_detail_command(argv[-1]) == argv


@pytest.mark.parametrize(
    ("scenario", "state", "raw_state"),
    [
        ("completed", JobState.DONE, "COMPLETED"),
        ("failed", JobState.FAILED, "FAILED"),
        ("timeout", JobState.FAILED, "TIMEOUT"),
        ("cancelled-running", JobState.CANCELLED, "CANCELLED"),
        ("qdel-running", JobState.CANCELLED, "CANCELLED"),
        ("cancelled-pending", JobState.CANCELLED, "CANCELLED"),
        ("running", JobState.RUNNING, "RUNNING"),
        ("running-oneline", JobState.RUNNING, "RUNNING"),
        ("running-two-nodes", JobState.RUNNING, "RUNNING"),
        ("pending", JobState.PENDING, "PENDING"),
        ("pending-resources", JobState.PENDING, "PENDING"),
        ("pending-held", JobState.PENDING, "PENDING"),
    ],
)
def test_recorded_job_details_give_the_jobs_state(scenario, state, raw_state):
    name = f"scontrol-show-job-{scenario}.txt"
    info = SLURM.parse_job_detail(sample(name))
    assert (info.job_id, info.state, info.raw_state) == (recorded(name)[0][-1], state, raw_state)
    assert info.queue == "debug"
    if state.is_active:
        assert info.exit_code is None  # scontrol's 0:0 means nothing before the end
    if state is JobState.RUNNING:
        assert info.nodes
    if state is JobState.PENDING:
        assert info.nodes == []


@pytest.mark.parametrize(
    ("scenario", "exit_code", "reason"),
    [
        ("completed", 0, ""),
        ("failed", 3, "NonZeroExitCode"),
        ("timeout", 128 + 15, "TimeLimit"),  # ExitCode=0:15, killed by SIGTERM
        ("cancelled-running", 128 + 15, ""),
        ("cancelled-pending", 0, "Priority"),
    ],
)
def test_finished_job_detail_gives_exit_code_and_reason(scenario, exit_code, reason):
    info = SLURM.parse_job_detail(sample(f"scontrol-show-job-{scenario}.txt"))
    assert (info.exit_code, info.reason) == (exit_code, reason)


def test_one_line_and_multi_line_details_read_the_same():
    assert SLURM.parse_job_detail(sample("scontrol-show-job-running-oneline.txt")) == (
        SLURM.parse_job_detail(sample("scontrol-show-job-running.txt"))
    )


def test_two_node_detail_lists_both_nodes_and_held_job_says_why():
    assert SLURM.parse_job_detail(sample("scontrol-show-job-running-two-nodes.txt")).nodes == [
        "cn1",
        "cn2",
    ]
    assert SLURM.parse_job_detail(sample("scontrol-show-job-pending-held.txt")).reason == (
        "JobHeldUser"
    )


def test_job_detail_gives_the_output_file():
    line = (
        "JobId=5 JobName=x JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 "
        "Partition=debug NodeList=cn1 StdOut=/home/alice/.hubdash/job.log Power="
    )
    info = SLURM.parse_job_detail(line)
    assert (info.job_id, info.output_path, info.queue) == (
        "5",
        "/home/alice/.hubdash/job.log",
        "debug",
    )


def test_job_detail_of_an_unknown_job_is_an_error():
    with pytest.raises(SchedulerError):
        SLURM.parse_job_detail("")


# --- queues -----------------------------------------------------------------------------------


def test_queues_ask_sinfo_for_nodes_and_limits():
    assert SLURM.queues_command() == ["sinfo", "-h", "-o", "%P|%a|%l|%D|%F"]


def test_recorded_sinfo_gives_free_nodes_limits_and_default():
    queues = SLURM.parse_queues(sample("recorded-slurm-22.05-sinfo-queues.txt"))
    assert list(queues) == ["debug", "batch"]
    debug, batch = queues["debug"], queues["batch"]
    assert (debug.nodes_total, debug.nodes_free, debug.state, debug.is_default) == (
        2,
        1,
        "up",
        True,
    )
    assert debug.max_walltime == "1:00:00"
    assert batch.max_walltime == "24:00:00"
    assert not batch.is_default


def test_busy_cluster_has_no_free_nodes():
    assert SLURM.queues_command() == recorded("sinfo-summary-full.txt")[0]
    queues = SLURM.parse_queues(sample("sinfo-summary-full.txt"))
    assert {(q.nodes_total, q.nodes_free) for q in queues.values()} == {(2, 0)}


def test_recorded_submit_output_gives_the_job_id():
    assert SLURM.parse_submit(sample("slurm-22.05-sbatch-parsable.txt")).isdigit()


def test_unlimited_partition_has_no_walltime_limit_and_split_lines_add_up():
    stdout = "long|up|infinite|3|1/2/0/3\nlong|up|infinite|1|0/0/1/1\nold|down|2:00:00|1|0/0/1/1\n"
    queues = SLURM.parse_queues(stdout)
    assert (queues["long"].max_walltime, queues["long"].nodes_total) == ("", 4)
    assert queues["long"].nodes_free == 2
    assert queues["old"].state == "down"


def test_pending_counts_count_a_job_in_each_of_its_partitions():
    assert SLURM.pending_counts_command() == ["squeue", "-h", "--states=PENDING", "-o", "%P"]
    stdout = sample("recorded-slurm-22.05-squeue-pending-partitions.txt")
    assert SLURM.parse_pending_counts(stdout) == {"debug": 3, "batch": 1}


def test_queue_detail_fills_pending_jobs_with_zero_for_quiet_queues():
    queues = SLURM.parse_queues(sample("recorded-slurm-22.05-sinfo-queues.txt"))
    queues["idle"] = queues.pop("batch")
    assert SLURM.queue_detail_command() == SLURM.pending_counts_command()
    SLURM.add_queue_detail(queues, "debug\ndebug\n")
    assert (queues["debug"].jobs_pending, queues["idle"].jobs_pending) == (2, 0)


# --- host lists -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostlist", "nodes"),
    [
        ("cn[1-3,5]", ["cn1", "cn2", "cn3", "cn5"]),
        ("cn1,cn2", ["cn1", "cn2"]),
        ("(null)", []),
        ("", []),
        ("n[01-03]", ["n01", "n02", "n03"]),
        ("n[098-101]", ["n098", "n099", "n100", "n101"]),
        ("gpu[1-2],cn[7,9]", ["gpu1", "gpu2", "cn7", "cn9"]),
    ],
)
def test_host_lists_expand_like_slurm(hostlist, nodes):
    assert expand_hostlist(hostlist) == nodes


def test_a_host_list_may_start_with_its_brackets():
    assert expand_hostlist("[1-2]") == ["1", "2"]
    assert expand_hostlist("[7],cn1") == ["7", "cn1"]


@pytest.mark.parametrize(
    ("hostlist", "error"),
    [
        ("cn1]", "unbalanced ']' in host list 'cn1]'"),
        ("cn[1-", "unbalanced '[' in host list 'cn[1-'"),
        ("cn[x-1]", "bad range 'x-1' in host list 'cn[x-1]'"),
        ("cn[1-x]", "bad range '1-x' in host list 'cn[1-x]'"),
        ("cn[1,]", "bad range '' in host list 'cn[1,]'"),
        # The whole list is named from a later bracket too.
        ("r[1-2]n[x]", "bad range 'x' in host list 'r[1-2]n[x]'"),
        ("r[1-2]n[1", "unbalanced '[' in host list 'r[1-2]n[1'"),
    ],
)
def test_a_host_list_slurm_would_not_print_is_an_error_naming_it(hostlist, error):
    with pytest.raises(ValueError) as caught:
        expand_hostlist(hostlist)
    assert str(caught.value) == error


@pytest.mark.parametrize(
    ("text", "code"),
    [("0:0", 0), ("1:0", 1), ("0:1", 129), ("0:9", 137), ("2:15", 2), ("", None), ("x:0", None)],
)
def test_exit_codes_of_a_signal_read_as_a_shell_reads_them(text, code):
    assert parse_exit_code(text) == code


def test_an_id_and_name_listing_takes_only_lines_with_both():
    assert parse_id_and_name("12|a\n13\n|b\n14|\n 15|x|y \n") == {"12": "a", "14": "", "15": "x|y"}


def test_unreadable_host_list_is_kept_as_printed():
    stdout = "9|RUNNING|None|debug|cn[1-|2026-11-25T21:16:53|100\n"
    assert SLURM.parse_status(stdout, ["9"])["9"].nodes == ["cn[1-"]


def test_jobs_of_one_name_are_listed_for_orphan_checks():
    argv = SlurmAdapter().jobs_named_command("jupyterhub-alice-default", "alice")
    assert argv == [
        "squeue", "-h", "-u", "alice", "-n", "jupyterhub-alice-default",
        "-t", "PENDING,RUNNING,SUSPENDED,CONFIGURING", "-o", "%i",
    ]  # fmt: skip
    assert SlurmAdapter().parse_job_ids("12\n13\n") == ["12", "13"]


def test_hostile_job_name_never_reaches_the_orphan_check():
    with pytest.raises(ValueError):
        SlurmAdapter().jobs_named_command("x;rm -rf ~", "alice")


# --- what the readers make of odd answers ----------------------------------------------------


def test_a_line_of_our_job_in_another_format_is_no_verdict_and_is_quoted():
    with pytest.raises(SchedulerError) as caught:
        SLURM.parse_status("9|RUNNING|x\n", ["9"])
    assert str(caught.value) == "squeue printed a line we cannot read: '9|RUNNING|x'"


def test_a_reason_holding_the_separator_is_kept_whole():
    stdout = "9|PENDING|waits|for a|friend|debug||N/A|100\n"
    info = SLURM.parse_status(stdout, ["9", "10"])
    assert (info["9"].job_id, info["9"].reason, info["9"].queue) == (
        "9",
        "waits|for a|friend",
        "debug",
    )
    assert (info["10"].job_id, info["10"].state) == ("10", JobState.GONE)


def test_scontrol_without_a_job_state_printed_no_job():
    with pytest.raises(SchedulerError) as caught:
        SLURM.parse_job_detail("JobId=42 JobName=x\n")
    assert str(caught.value) == "scontrol printed no job: 'JobId=42 JobName=x'"


def test_scontrol_gives_a_pending_jobs_estimated_start():
    line = "JobId=42 JobName=x JobState=PENDING Reason=Resources StartTime=2026-11-25T22:00:00"
    assert SLURM.parse_job_detail(line).estimated_start == datetime(2026, 11, 25, 22, 0)


def test_sinfo_lines_we_cannot_read_are_skipped_not_the_rest():
    stdout = (
        "Welcome\n"
        "debug*|up|1:00:00|2|1/1/0/2\n"
        "broken|up|1:00:00|2|1/1/0\n"
        "batch|up|1-00:00:00|2|2/0/0/2\n"
        "gpuX|up|4:00:00|1|0/1/0/1\n"
    )
    queues = SLURM.parse_queues(stdout)
    assert list(queues) == ["debug", "batch", "gpuX"]
    assert (queues["debug"].name, queues["debug"].is_default) == ("debug", True)
    assert (queues["batch"].nodes_total, queues["batch"].nodes_free) == (2, 0)


def test_a_partition_over_several_lines_adds_up_unless_a_count_is_unknown():
    stdout = "debug*|up|1:00:00|2|1/1/0/2\ndebug*|up|1:00:00|3|0/3/0/3\n"
    queue = SLURM.parse_queues(stdout)["debug"]
    assert (queue.nodes_total, queue.nodes_free) == (5, 4)
    unknown = "debug*|up|1:00:00|2|1/1/0/2\ndebug*|up|1:00:00|3|0/?/0/?\n"
    queue = SLURM.parse_queues(unknown)["debug"]
    assert (queue.nodes_total, queue.nodes_free) == (None, None)
    first_unknown = "debug*|up|1:00:00|3|0/?/0/?\ndebug*|up|1:00:00|2|1/1/0/2\n"
    queue = SLURM.parse_queues(first_unknown)["debug"]
    assert (queue.nodes_total, queue.nodes_free) == (None, None)


def test_the_users_jobs_are_listed_with_their_names():
    assert SLURM.user_jobs_command("alice") == [
        "squeue", "-h", "-u", "alice", "-t", "PENDING,RUNNING,SUSPENDED,CONFIGURING",
        "-o", "%i|%j",
    ]  # fmt: skip


def test_scontrol_fields_left_out_are_empty_not_guessed():
    info = SLURM.parse_job_detail("JobId=42 JobState=PENDING\n")
    assert info == JobInfo(job_id="42", state=JobState.PENDING, raw_state="PENDING")
    assert SLURM.parse_job_detail("JobId=42 JobState=COMPLETED\n").exit_code is None
    running = "JobId=42 JobState=RUNNING StartTime=2026-11-25T21:00:00 ExitCode=0:0 NodeList=cn1"
    info = SLURM.parse_job_detail(running)
    assert (info.estimated_start, info.exit_code, info.nodes) == (None, None, ["cn1"])
    words = "JobId=42 JobState=COMPLETED Reason=None Partition=(null) StdOut=(null) ExitCode=3:0"
    info = SLURM.parse_job_detail(words)
    assert (info.reason, info.queue, info.output_path, info.exit_code) == ("", "", "", 3)


def test_scontrol_over_several_lines_is_read_up_to_the_first_records_end():
    stdout = (
        "slurm_load_jobs: stray line\n"
        "JobId=42 JobName=a\n"
        "   JobState=RUNNING Reason=None\n"
        "   Partition=debug NodeList=cn2\n"
        "\n"
        "JobId=43 JobName=b\n"
        "   JobState=PENDING Partition=batch\n"
    )
    info = SLURM.parse_job_detail(stdout)
    assert (info.job_id, info.state, info.queue, info.nodes) == (
        "42",
        JobState.RUNNING,
        "debug",
        ["cn2"],
    )
    two = "JobId=42 JobState=RUNNING Partition=debug\nJobId=43 JobState=PENDING Partition=batch\n"
    assert SLURM.parse_job_detail(two).queue == "debug"


def test_lookup_of_one_job_takes_the_asked_id_and_tells_gone_from_no_answer():
    infos = SLURM.parse_lookup(0, "JobId=42_1 JobState=RUNNING NodeList=cn1\n", "", ["42"])
    assert (infos["42"].job_id, infos["42"].state) == ("42", JobState.RUNNING)
    gone = SLURM.parse_lookup(1, "", "slurm_load_jobs error: Invalid job id specified\n", ["42"])
    assert gone == {"42": JobInfo(job_id="42", state=JobState.GONE)}
    with pytest.raises(SchedulerError) as caught:
        SLURM.parse_lookup(1, "", "x" * 50 + "e" * 400, ["42"])
    assert str(caught.value) == f"scontrol show job 42 failed (exit 1): {'e' * 400}"
    with pytest.raises(SchedulerError) as caught:
        SLURM.parse_lookup(2, "", "", ["42"])
    assert str(caught.value) == "scontrol show job 42 failed (exit 2): (no output)"
    with pytest.raises(SchedulerError) as caught:
        SLURM.parse_lookup(2, "out of memory\n", "", ["42"])
    assert str(caught.value) == "scontrol show job 42 failed (exit 2): out of memory"


def test_lookup_of_several_jobs_reads_squeues_listing():
    assert SLURM.lookup_command(["70", "71"], "alice") == [
        "squeue", "--local", "-h", "--states=all", "-u", "alice", "-o", "%i|%T|%r|%P|%N|%S|%Q",
    ]  # fmt: skip
    infos = SLURM.parse_lookup(0, "70|RUNNING|None|debug|cn1|N/A|1\n", "", ["70", "71"])
    assert (infos["70"].state, infos["71"].state) == (JobState.RUNNING, JobState.GONE)
    with pytest.raises(SchedulerError, match=r"^status command failed \(exit 1\): boom$"):
        SLURM.parse_lookup(1, "", "boom", ["70", "71"])


def test_job_ids_are_checked_and_given_as_text():
    assert SLURM.cancel_command([12, "13"]) == ["scancel", "12", "13"]
    with pytest.raises(ValueError) as caught:
        SLURM.cancel_command([])
    assert str(caught.value) == "no job ids given"
    with pytest.raises(ValueError) as caught:
        SLURM.cancel_command(["12", "-1"])
    assert str(caught.value) == "'-1' is not a job id a scheduler prints"
