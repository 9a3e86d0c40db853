"""The PBS adapter: Torque 6, PBS Pro/OpenPBS and Slurm's Torque wrappers.

Samples in tests/unit/data: `torque-wrapper-*` and `recorded-torque-wrapper-*` are real
output of the Torque wrappers on the local Slurm 22.05 test cluster (the former recorded by
scripts/record-scheduler-samples, which lists command and exit code in SAMPLES.md; job
ids change with every recording, so these tests take them from there).
`recorded-openpbs-23.06-*` are real output of the test bed's OpenPBS (SAMPLES-pbs.md; the
JSON forms are tested in test_openpbs_adapter.py). `doc-torque-6-*` are written after
Torque's documented output (no such cluster here).
"""

import json
import re
from datetime import datetime

import pytest

from hubdash.schedulers import adapter_for, pbstext
from hubdash.schedulers.base import (
    JobInfo,
    JobRequest,
    JobState,
    SchedulerAdapter,
    SchedulerError,
)
from hubdash.schedulers.pbs import PBSAdapter, exec_host_nodes, parse_records
from hubdash.schedulers.slurm import SlurmAdapter

from .job_requests import request_with
from .scheduler_samples import DATA, recorded, sample

TORQUE = PBSAdapter("torque")
PBSPRO = PBSAdapter("pbspro")
WRAPPER = PBSAdapter("slurm-torque")
JOB_HEADER = re.compile(r"^Job Id:\s*(\S+)")


REQUEST = JobRequest(
    job_name="jupyterhub-alice",
    queue="batch",
    walltime_seconds=3600,
    nodes=2,
    tasks_per_node=4,
    output_path=".hubdash/job.log",
    account="physics",
    memory_mb=4000,
    gpus=1,
)


# --- the job script -------------------------------------------------------------------------


def test_torque_directives_use_nodes_ppn_and_total_memory():
    assert TORQUE.directives(REQUEST) == [
        "#PBS -N jupyterhub-alice",
        "#PBS -q batch",
        "#PBS -l walltime=1:00:00",
        "#PBS -l nodes=2:ppn=4:gpus=1",
        "#PBS -l mem=8000mb",  # Torque's mem is for the whole job: 2 nodes x 4000 MB
        "#PBS -o .hubdash/job.log",
        "#PBS -j oe",
        "#PBS -A physics",
        "#PBS -r n",
    ]


def test_pbspro_directives_use_select_with_one_chunk_per_node():
    assert PBSPRO.directives(REQUEST) == [
        "#PBS -N jupyterhub-alice",
        "#PBS -q batch",
        "#PBS -l walltime=1:00:00",
        "#PBS -l select=2:ncpus=4:mpiprocs=4:ngpus=1:mem=4000mb",
        "#PBS -l place=scatter",
        "#PBS -o .hubdash/job.log",
        "#PBS -j oe",
        "#PBS -A physics",
        "#PBS -r n",
    ]


def test_wrapper_directives_speak_what_sbatch_translates():
    assert WRAPPER.directives(REQUEST) == [
        "#PBS -N jupyterhub-alice",
        "#PBS -q batch",
        "#PBS -l walltime=1:00:00",
        "#PBS -l nodes=2:ppn=4",
        "#PBS -l naccelerators=2",  # sbatch's --gpus counts for the whole job
        "#PBS -l mem=4000mb",  # sbatch's --mem is per node
        "#PBS -o .hubdash/job.log",
        "#PBS -j oe",
        "#PBS -A physics",
        "#PBS -r n",
    ]


def test_minimal_request_asks_for_one_node_and_nothing_optional():
    request = JobRequest(job_name="jupyterhub-bob", queue="", walltime_seconds=90)
    assert TORQUE.directives(request) == [
        "#PBS -N jupyterhub-bob",
        "#PBS -l walltime=0:01:30",
        "#PBS -l nodes=1:ppn=1",
        "#PBS -r n",
    ]


@pytest.mark.parametrize("field", ["job_name", "queue", "output_path", "account"])
@pytest.mark.parametrize("bad", ["a b", "x\n#PBS -u root", "'q'", "$X", "`id`", "a;b", "-W"])
def test_unsafe_directive_value_is_refused_by_name(field, bad):
    with pytest.raises(ValueError, match=field):
        TORQUE.directives(request_with(field, bad))


def test_unknown_flavor_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="slurm-torque"):
        PBSAdapter("lsf")


def test_flavor_comes_through_the_registry():
    adapter = adapter_for("pbs", flavor="pbspro")
    assert isinstance(adapter, PBSAdapter) and adapter.node_spelling == "select"
    assert adapter_for("pbs").flavor == "torque"


def test_wrapper_jobs_know_their_id_as_a_slurm_job():
    assert TORQUE.job_id_variable == PBSPRO.job_id_variable == "PBS_JOBID"
    assert TORQUE.directive_prefix == "#PBS"
    # Recorded: `env` inside a job submitted with the wrapper's qsub.
    environment = sample("recorded-torque-wrapper-job-environment.txt")
    assert f"{WRAPPER.job_id_variable}=" in environment
    assert "PBS_JOBID=" not in environment


# --- submitting -----------------------------------------------------------------------------


def test_submit_is_qsub_on_the_script():
    assert TORQUE.submit_command(".hubdash/job.sh", REQUEST) == ["qsub", ".hubdash/job.sh"]
    assert WRAPPER.submit_command(".hubdash/job.sh") == ["qsub", ".hubdash/job.sh"]


def test_wrapper_submit_repeats_the_output_on_the_command_line():
    request = JobRequest(job_name="j", queue="q", walltime_seconds=60, output_path="o.log")
    assert WRAPPER.submit_command("job.sh", request) == [
        "qsub", "-j", "oe", "-r", "n", "-o", "o.log", "job.sh",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "job_id"),
    [
        ("doc-torque-6-qsub.txt", "1234.torque01.example.org"),
        ("recorded-openpbs-23.06-qsub-held.txt", "230.pbs-login"),
    ],
)
def test_submit_output_gives_the_whole_job_id(name, job_id):
    assert TORQUE.parse_submit(sample(name)) == job_id


def test_wrapper_submit_output_is_the_bare_slurm_id():
    assert WRAPPER.parse_submit(sample("torque-wrapper-qsub.txt")).isdigit()


def test_wrapper_submit_refusal_is_not_a_job_id():
    with pytest.raises(SchedulerError, match="error running the Slurm sbatch"):
        WRAPPER.parse_submit(sample("torque-wrapper-qsub-error-bad-queue.txt"))


def test_submit_output_without_a_job_id_is_an_error_that_quotes_it():
    with pytest.raises(SchedulerError, match="qsub: Unknown queue"):
        TORQUE.parse_submit("qsub: Unknown queue MSG=cannot locate queue\n")


# --- status: commands and Torque ------------------------------------------------------------


def test_status_is_one_full_qstat_for_all_ids():
    assert TORQUE.status_command(["1.s", "2.s"]) == ["qstat", "-f", "1.s", "2.s"]
    assert WRAPPER.status_command(["7"]) == ["qstat", "-f", "7"]


def test_torque_running_job_has_its_nodes_once_each_and_its_output_file():
    job_id = "1234.torque01.example.org"
    info = TORQUE.parse_status(sample("doc-torque-6-qstat-f-running.txt"), [job_id])[job_id]
    assert (info.state, info.raw_state, info.queue) == (JobState.RUNNING, "R", "batch")
    assert info.nodes == ["cn01", "cn02"]
    assert info.output_path == "/home/alice/.hubdash/job.log"
    assert info.exit_code is None


def test_long_values_continue_on_tab_lines():
    (_, attributes), *_ = parse_records(sample("doc-torque-6-qstat-f-running.txt"), JOB_HEADER)
    assert attributes["Variable_List"].endswith("PBS_O_SERVER=torque01.example.org")
    assert "PBS_O_LOGNAME=alice,PBS_O_PATH" in attributes["Variable_List"]


def test_short_id_finds_the_job_qstat_names_in_full():
    info = TORQUE.parse_status(sample("doc-torque-6-qstat-f-running.txt"), ["1234"])
    assert info["1234"].state is JobState.RUNNING


def test_torque_queued_job_is_pending():
    job_id = "1235.torque01.example.org"
    info = TORQUE.parse_status(sample("doc-torque-6-qstat-f-queued.txt"), [job_id])[job_id]
    assert (info.state, info.nodes, info.estimated_start) == (JobState.PENDING, [], None)


@pytest.mark.parametrize(
    ("name", "state", "exit_code"),
    [
        ("doc-torque-6-qstat-f-completed.txt", JobState.DONE, 0),
        ("doc-torque-6-qstat-f-deleted-running.txt", JobState.CANCELLED, 271),
        ("doc-torque-6-qstat-f-exec-failed.txt", JobState.FAILED, -1),
    ],
)
def test_torque_finished_job_ends_by_its_exit_status(name, state, exit_code):
    listed = TORQUE.parse_status(sample(name), ["1234", "1236"])
    info = next(job for job in listed.values() if job.state is not JobState.GONE)
    assert (info.state, info.exit_code) == (state, exit_code)


def test_job_killed_by_a_signal_says_which():
    info = TORQUE.parse_status(sample("doc-torque-6-qstat-f-deleted-running.txt"), ["1234"])
    assert info["1234"].reason == "killed by signal 15"


def test_job_pbs_could_not_start_says_so():
    info = TORQUE.parse_status(sample("doc-torque-6-qstat-f-exec-failed.txt"), ["1236"])
    assert "could not run" in info["1236"].reason


def test_known_jobs_are_read_and_unknown_ones_gone_when_qstat_complains_about_some():
    stdout = sample("doc-torque-6-qstat-f-one-of-two.txt")
    stderr = sample("doc-torque-6-qstat-f-one-of-two.stderr.txt")
    assert TORQUE.status_failure_means_gone(153, stderr)
    info = TORQUE.parse_status(stdout, ["1234.torque01.example.org", "1299.torque01.example.org"])
    assert info["1234.torque01.example.org"].state is JobState.RUNNING
    assert info["1299.torque01.example.org"].state is JobState.GONE
    assert TORQUE.unknown_ids(stderr) == {"1299.torque01.example.org"}


# --- status: the Slurm wrapper (recorded) ------------------------------------------------------


def test_wrapper_recorded_jobs_are_read_from_tab_indented_blocks():
    stdout = sample("recorded-torque-wrapper-qstat-f-two-of-three-ids.txt")
    info = WRAPPER.parse_status(stdout, ["41", "42", "999999"])
    assert info["41"].state is JobState.PENDING
    assert (info["42"].queue, info["42"].raw_state) == ("debug,batch", "Q")
    # The wrapper leaves unknown ids out silently and exits 0.
    assert info["999999"].state is JobState.GONE


@pytest.mark.parametrize(
    ("scenario", "state", "has_nodes"),
    [
        ("pending", JobState.PENDING, False),
        ("running", JobState.RUNNING, True),
        ("running-two-nodes", JobState.RUNNING, True),
        # The wrapper prints "C" and no exit status for completed, failed, timed-out and
        # cancelled jobs alike: the PBS adapter can only say the job is over.
        ("completed", JobState.DONE, True),
        ("failed", JobState.DONE, True),
        ("timeout", JobState.DONE, True),
        ("cancelled", JobState.DONE, True),
        ("qdel-running", JobState.DONE, True),
        ("qdel-pending", JobState.DONE, False),
    ],
)
def test_wrapper_recorded_job_states(scenario, state, has_nodes):
    name = f"torque-wrapper-qstat-f-{scenario}.txt"
    argv, exit_status = recorded(name)
    job_ids = argv[2:]
    assert (WRAPPER.status_command(job_ids), exit_status) == (argv, 0)
    (info,) = WRAPPER.parse_status(sample(name), job_ids).values()
    assert (info.state, bool(info.nodes), info.exit_code) == (state, has_nodes, None)
    assert info.queue == "debug"


def test_wrapper_two_node_job_lists_both_nodes():
    name = "torque-wrapper-qstat-f-running-two-nodes.txt"
    (info,) = WRAPPER.parse_status(sample(name), recorded(name)[0][2:]).values()
    assert info.nodes == ["cn1", "cn2"]


def test_wrapper_unknown_job_prints_nothing_and_means_gone():
    name = "torque-wrapper-qstat-f-unknown-id.txt"
    argv, exit_status = recorded(name)
    assert not (DATA / "torque-wrapper-qstat-f-unknown-id.stderr.txt").exists()
    assert WRAPPER.status_failure_means_gone(exit_status, "")
    assert WRAPPER.parse_status(sample(name), argv[2:])[argv[2]].state is JobState.GONE


def test_wrapper_unknown_state_letter_ends_the_job_but_on_pbspro_it_waits():
    # The wrapper prints U for Slurm states it has no letter for (out of memory, deadline);
    # PBS Pro's U is a job suspended while its workstation is busy.
    assert WRAPPER.job_state("U", None) is JobState.FAILED
    assert PBSPRO.job_state("U", None) is JobState.PENDING


@pytest.mark.parametrize(
    ("letter", "state"),
    [
        ("Q", JobState.PENDING),
        ("H", JobState.PENDING),
        ("W", JobState.PENDING),
        ("T", JobState.PENDING),
        ("S", JobState.PENDING),
        ("R", JobState.RUNNING),
        ("E", JobState.COMPLETING),
        ("C", JobState.DONE),
        ("F", JobState.DONE),
        ("Z", JobState.PENDING),  # a letter we do not know never ends a server
    ],
)
def test_state_letters(letter, state):
    assert TORQUE.job_state(letter, None) is state


# --- status failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exit_status", "stderr_name"),
    [
        (153, "doc-torque-6-qstat-unknown.stderr.txt"),
        (153, "recorded-openpbs-23.06-qstat-E-x-f-F-json-unknown.stderr.txt"),
        (153, "recorded-openpbs-23.06-qstat-x-f-two-ids-and-unknown.stderr.txt"),
        (35, "recorded-openpbs-23.06-qstat-E-f-F-json-finished-without-x.stderr.txt"),
    ],
)
def test_unknown_job_id_means_gone(exit_status, stderr_name):
    assert TORQUE.status_failure_means_gone(exit_status, sample(stderr_name))


@pytest.mark.parametrize(
    ("exit_status", "stderr"),
    [
        (1, "Problem loading jobs.\n"),  # the wrapper when slurmctld does not answer
        (255, ""),  # ssh itself failed
        (1, ""),
        (
            153,
            "qstat: Unknown Job Id Error 1299.torque01.example.org\n"
            "Cannot connect to specified server host 'torque01.example.org'.\n"
            "qstat: cannot connect to server torque01.example.org (errno=111) Connection refused\n",
        ),
        (2, "qstat: illegally formed job identifier: 12x\n"),
    ],
)
def test_scheduler_timeout_is_not_gone(exit_status, stderr):
    assert not TORQUE.status_failure_means_gone(exit_status, stderr)


def test_unknown_ids_reads_every_complaint():
    stderr = sample("recorded-openpbs-23.06-qstat-E-x-f-F-json-unknown.stderr.txt") + sample(
        "recorded-openpbs-23.06-qstat-E-f-F-json-finished-without-x.stderr.txt"
    )
    assert PBSPRO.unknown_ids(stderr) == {"999999.pbs-login", "238.pbs-login"}


# --- cancelling, queues and nodes ----------------------------------------------------------------


def test_cancel_is_qdel_on_the_ids():
    assert TORQUE.cancel_command(["1.s", "2.s"]) == ["qdel", "1.s", "2.s"]


def test_queues_ask_for_the_full_listing():
    assert TORQUE.queues_command() == ["qstat", "-Q", "-f"]


def test_torque_queue_listing_gives_counts_limit_and_state():
    queues = TORQUE.parse_queues(sample("doc-torque-6-qstat-Q-f.txt"))
    batch, debug = queues["batch"], queues["debug"]
    assert (batch.jobs_pending, batch.jobs_running, batch.max_walltime) == (3, 2, "48:00:00")
    assert (batch.state, debug.state) == ("up", "disabled")


def test_pbspro_text_queue_listing_gives_counts_limit_and_state():
    # Recorded with one held and one running job in workq, one queued in the stopped hold.
    queues = PBSPRO.parse_queues(sample("recorded-openpbs-23.06-qstat-Q-f.txt"))
    assert (queues["workq"].jobs_pending, queues["workq"].jobs_running) == (1, 1)
    assert (queues["workq"].max_walltime, queues["workq"].state) == ("24:00:00", "up")
    assert (queues["hold"].jobs_pending, queues["hold"].state) == (1, "stopped")


def test_wrapper_queue_listing_has_names_and_state_but_no_counts():
    queues = WRAPPER.parse_queues(sample("recorded-torque-wrapper-qstat-Q-f.txt"))
    assert list(queues) == ["debug", "batch"]
    assert (queues["debug"].state, queues["debug"].jobs_pending) == ("up", None)


@pytest.mark.parametrize(
    ("name", "queue", "pending", "running", "state"),
    [
        ("doc-torque-6-qstat-Q.txt", "batch", 3, 2, "up"),
        ("doc-torque-6-qstat-Q.txt", "debug", 0, 0, "disabled"),
        ("recorded-openpbs-23.06-qstat-Q.txt", "workq", 1, 1, "up"),
        ("recorded-openpbs-23.06-qstat-Q.txt", "hold", 1, 0, "stopped"),
        ("recorded-torque-wrapper-qstat-Q.txt", "debug", None, None, "up"),
    ],
)
def test_queue_table_is_read_too(name, queue, pending, running, state):
    summary = TORQUE.parse_queues(sample(name))[queue]
    assert (summary.jobs_pending, summary.jobs_running, summary.state) == (
        pending,
        running,
        state,
    )


@pytest.mark.parametrize(
    ("name", "total", "free", "unavailable"),
    [
        ("doc-torque-6-pbsnodes-a.txt", 5, 1, 1),  # cn05 is "free" but runs a job
        ("recorded-openpbs-23.06-pbsnodes-a.txt", 2, 1, 0),  # pbs-cn1 runs a job
        ("recorded-torque-wrapper-pbsnodes-a.txt", 2, 1, 0),  # cn1 "mixed"
    ],
)
def test_nodes_are_counted_free_only_when_idle(name, total, free, unavailable):
    counts = TORQUE.parse_nodes(sample(name))
    assert (counts.total, counts.free, counts.unavailable) == (total, free, unavailable)


def test_queue_detail_copies_cluster_wide_node_counts_into_every_queue():
    queues = TORQUE.parse_queues(sample("doc-torque-6-qstat-Q-f.txt"))
    assert TORQUE.queue_detail_command() == ["pbsnodes", "-a"]
    TORQUE.add_queue_detail(queues, sample("doc-torque-6-pbsnodes-a.txt"))
    assert {(q.nodes_total, q.nodes_free) for q in queues.values()} == {(5, 1)}


def test_torque_and_the_wrapper_have_no_queue_position_query():
    assert TORQUE.position_command("batch") is None
    assert WRAPPER.position_command("batch") is None


@pytest.mark.parametrize(
    ("exec_host", "nodes"),
    [
        ("cn01/0-3+cn02/0-3", ["cn01", "cn02"]),
        ("cn1/3+cn1/2+cn1/1+cn1/0", ["cn1"]),
        ("cn1/0*4+cn2/0*4", ["cn1", "cn2"]),
        ("", []),
    ],
)
def test_exec_host_gives_each_node_once_in_order(exec_host, nodes):
    assert exec_host_nodes(exec_host) == nodes


def test_orphan_check_uses_qselect_or_squeue_under_the_wrappers():
    assert PBSAdapter("torque").jobs_named_command("jh-alice-default", "alice")[0] == "qselect"
    assert PBSAdapter("slurm-torque").jobs_named_command("jh-alice-default", "alice")[0] == (
        "squeue"
    )


@pytest.mark.parametrize(
    ("written", "ours", "pbs", "exact"),
    [
        ("123", "123", True, True),
        ("123", "123.pbs.example.org", True, False),  # PBS_JOBID without the server's name
        ("123.pbs", "123.pbs.example.org", True, False),
        ("123.pbs.example.org", "123.pbs", True, False),
        ("12", "123", False, False),
        ("1234", "123.pbs", False, False),
        ("123.a", "123.b", False, False),
        ("unknown", "123", False, False),  # the launcher's id where the variable was unset
        ("", "", False, False),
    ],
)
def test_one_rule_per_scheduler_says_which_job_wrote_a_file(written, ours, pbs, exact):
    for adapter in (TORQUE, PBSPRO, WRAPPER):
        assert adapter.same_job(written, ours) is pbs
    assert SchedulerAdapter().same_job(written, ours) is exact
    assert SlurmAdapter().same_job(written, ours) is exact


# --- what an admin reads of a setting that cannot work ---------------------------------------


def test_unknown_flavor_names_itself_and_every_choice():
    with pytest.raises(ValueError) as caught:
        PBSAdapter("lsf")
    assert str(caught.value) == (
        "unknown PBS flavor 'lsf': choose 'torque' (Torque 6), 'pbspro' or 'openpbs' "
        "(PBS Pro, OpenPBS) or 'slurm-torque' (Slurm's qsub wrappers)"
    )


@pytest.mark.parametrize(
    ("flavor", "spelling"), [("torque", "select"), ("slurm-torque", "select"), ("pbspro", "x")]
)
def test_a_spelling_the_flavor_does_not_speak_names_both(flavor, spelling):
    with pytest.raises(ValueError) as caught:
        PBSAdapter(flavor, resource_spelling=spelling)
    assert str(caught.value) == (
        f"PBS resource spelling {spelling!r} does not suit flavor {flavor!r}: choose 'select' "
        "or 'nodes' for PBS Pro/OpenPBS; Torque and Slurm's wrappers speak only 'nodes'"
    )


def test_openpbs_is_pbspro_by_another_name():
    adapter = PBSAdapter("openpbs")
    assert (adapter.flavor, adapter.node_spelling, adapter.show_finished) == (
        "pbspro",
        "select",
        True,
    )
    torque = PBSAdapter("torque", resource_spelling="nodes")
    assert (torque.flavor, torque.node_spelling, torque.show_finished) == (
        "torque",
        "nodes",
        False,
    )


def test_gpus_in_the_nodes_spelling_of_pbspro_name_the_setting_to_change():
    adapter = PBSAdapter("pbspro", resource_spelling="nodes")
    with pytest.raises(ValueError) as caught:
        adapter.submit_options(request_with("gpus", 1))
    assert str(caught.value) == (
        "gpus cannot be asked for in PBS's nodes=N:ppn=M spelling: "
        "set JobSpawner.pbs_resource_spelling = 'select'"
    )


@pytest.mark.parametrize("stdout", ["", "qsub: job rejected\n", "\n\n"])
def test_qsub_without_a_job_id_is_quoted(stdout):
    with pytest.raises(SchedulerError) as caught:
        TORQUE.parse_submit(stdout)
    assert str(caught.value) == f"qsub did not print a job id; it printed {stdout.strip()!r}"


# --- commands of each flavor ------------------------------------------------------------------

WRAPPER = PBSAdapter("slurm-torque")
PBSPRO = PBSAdapter("pbspro")
LIVE = "PENDING,RUNNING,SUSPENDED,CONFIGURING"


def test_the_users_jobs_by_name_are_asked_of_the_scheduler_underneath():
    assert TORQUE.jobs_named_command("j", "alice") == [
        "qselect", "-N", "j", "-u", "alice", "-s", "QHWRTE",
    ]  # fmt: skip
    assert WRAPPER.jobs_named_command("j", "alice") == [
        "squeue", "-h", "-u", "alice", "-n", "j", "-t", LIVE, "-o", "%i",
    ]  # fmt: skip
    assert TORQUE.user_jobs_command("alice") == ["qselect", "-u", "alice", "-s", "QHWRTE"]
    assert WRAPPER.user_jobs_command("alice") == [
        "squeue", "-h", "-u", "alice", "-t", LIVE, "-o", "%i|%j",
    ]  # fmt: skip


def test_the_users_jobs_are_read_with_names_where_the_listing_has_them():
    assert WRAPPER.parse_user_jobs("12|jupyterhub-a\n13|other\n", "alice") == {
        "12": "jupyterhub-a",
        "13": "other",
    }
    assert TORQUE.parse_user_jobs("12.srv\n\n13.srv\n", "alice") == {"12.srv": "", "13.srv": ""}
    assert TORQUE.job_names_command(["12.srv"]) == ["qstat", "-f", "12.srv"]
    assert PBSPRO.job_names_command(["12.srv"]) == ["qstat", "-f", "-F", "json", "12.srv"]
    named = '{"Jobs": {"12.srv": {"Job_Name": "jupyterhub-a"}, "13.srv": {"job_state": "R"}}}'
    assert PBSPRO.parse_job_names(named) == {"12.srv": "jupyterhub-a", "13.srv": ""}


def test_the_wrappers_submit_refuses_an_output_path_by_name():
    with pytest.raises(ValueError) as caught:
        WRAPPER.submit_command("s/job.sh", request_with("output_path", "a b"))
    assert str(caught.value).startswith("output_path 'a b' cannot go in a directive")


def test_only_pbspro_lists_a_backlog_and_refuses_an_odd_queue_by_name():
    assert TORQUE.backlog_command("batch") is None
    assert PBSPRO.backlog_command("workq") == ["qstat", "-f", "-F", "json", "workq"]
    with pytest.raises(ValueError) as caught:
        PBSPRO.backlog_command("a b")
    assert str(caught.value).startswith("queue 'a b' cannot go in a directive")


# --- readers ----------------------------------------------------------------------------------


def test_a_job_without_a_state_keeps_waiting():
    info = PBSPRO.parse_status('{"Jobs": {"7.s": {"queue": "workq"}}}', ["7.s"])["7.s"]
    assert (info.state, info.raw_state, info.queue) == (JobState.PENDING, "", "workq")


def test_the_backlog_holds_waiting_starts_and_running_ends_it_can_tell():
    jobs = {
        "1.s": {"job_state": "Q", "estimated": {"start_time": "Wed Nov 25 22:00:00 2026"}},
        "2.s": {"job_state": "Q"},
        "3.s": {},
        "4.s": {
            "job_state": "R",
            "stime": "Wed Nov 25 21:00:00 2026",
            "Resource_List": {"walltime": "01:30:00"},
            "exec_host": "cn1/0*2+cn2/0*2",
        },
        "5.s": {
            "job_state": "R",
            "stime": "Wed Nov 25 21:00:00 2026",
            "Resource_List": {"walltime": "00:30:00"},
        },
        "6.s": {"job_state": "R", "Resource_List": {"walltime": "00:30:00"}},
        "7.s": {"job_state": "R", "stime": "Wed Nov 25 21:00:00 2026"},
        "8.s": {"job_state": "F"},
    }
    backlog = PBSPRO.parse_backlog(json.dumps({"Jobs": jobs}))
    assert backlog.waiting_starts == [datetime(2026, 11, 25, 22, 0), None, None]
    assert backlog.running_ends == [
        (datetime(2026, 11, 25, 22, 30), 2),
        (datetime(2026, 11, 25, 21, 30), 1),
    ]
    with pytest.raises(SchedulerError, match="^qstat printed JSON we cannot read"):
        PBSPRO.parse_backlog("{")


def test_json_answers_that_cannot_be_read_name_their_command():
    with pytest.raises(SchedulerError, match=r"^qstat -Q printed JSON whose 'Queue' is not"):
        PBSPRO.parse_queues('{"Queue": [1]}')
    with pytest.raises(SchedulerError, match=r"^pbsnodes printed JSON whose 'nodes' is not"):
        PBSPRO.parse_nodes('{"nodes": "none"}')


def test_json_with_control_characters_in_a_value_is_read():
    # PBS leaves a job's variables unescaped: a raw tab in a string.
    stdout = '{"Jobs": {"7.s": {"job_state": "R", "Variable_List": {"X": "a\tb"}}}}'
    assert PBSPRO.parse_status(stdout, ["7.s"])["7.s"].state is JobState.RUNNING


def test_queues_keep_their_names_and_counts_of_any_form():
    listed = {
        "workq": {
            "state_count": "Transit:0 Queued:1 Held:2 Running:3",
            "enabled": "True",
            "started": "True",
        },
        "other": {"state_count": "Queued:1 Held:0 Waiting:4 Running:0"},
    }
    queues = PBSPRO.parse_queues(json.dumps({"Queue": listed}))
    assert [(q.name, q.jobs_pending, q.jobs_running, q.state) for q in queues.values()] == [
        ("workq", 3, 3, "up"),
        ("other", 5, 0, "disabled"),
    ]
    blocks = "Queue: batch\n    queue_type = Execution\n    started = True\n"
    assert TORQUE.parse_queues(blocks)["batch"].name == "batch"


TABLE_HEADER = "Queue              Max   Tot Ena Str   Que   Run   Hld   Wat   Trn   Ext T   Cpt\n"
TABLE_DASHES = "----------------   --- ---- --- ---  ---- ----- ----- ----- ----- ----- -   ---\n"


def test_the_queue_table_skips_lines_it_cannot_read_and_keeps_the_rest():
    table = (
        TABLE_HEADER
        + TABLE_DASHES
        + "short 0 0\n"
        + "batch                0     3 yes yes     1     2     0     4     0     0 E     0 x\n"
        + "debug                0     0   Y   t     0     0     0     0     0     0 E     0\n"
        + "held                 0     0   1  no     ?     0     0     0     0     0 E     0\n"
    )
    queues = WRAPPER.parse_queues(table)
    assert [(q.name, q.jobs_pending, q.jobs_running, q.state) for q in queues.values()] == [
        ("batch", 5, 2, "up"),
        ("debug", 0, 0, "up"),
        ("held", None, 0, "stopped"),
    ]


def test_a_queue_table_without_some_columns_leaves_them_unknown():
    table = "Queue Max Tot\n----- --- ---\nbatch 0 3\n"
    queue = WRAPPER.parse_queues(table)["batch"]
    assert (queue.jobs_pending, queue.jobs_running, queue.state) == (None, None, "disabled")
    enabled = "Queue Max Tot Ena\n----- --- --- ---\nbatch 0 3 yes\n"
    assert WRAPPER.parse_queues(enabled)["batch"].state == "stopped"


@pytest.mark.parametrize(
    ("output_path", "path"),
    [
        ("login1:/home/a/job.log", "/home/a/job.log"),
        ("login1:/home/a/x:y.log", "/home/a/x:y.log"),
        ("/home/a/job.log", "/home/a/job.log"),
        ("/home/a:b/job.log", "/home/a:b/job.log"),
    ],
)
def test_the_output_path_is_the_path_without_the_submit_host(output_path, path):
    assert pbstext.strip_host(output_path) == path


@pytest.mark.parametrize(
    "state", ["down", "offline", "state-unknown", "unknown", "stale", "drained", "Down*"]
)
def test_each_way_a_node_is_out_counts_it_unavailable(state):
    nodes = {
        "cn0": {"ntype": "PBS"},  # no state: not a node we count
        "cn1": {"state": state},
        "cn2": {"state": f"{state},job-busy"},
        "cn3": {"state": "free"},
    }
    counts = PBSPRO.parse_nodes(json.dumps({"nodes": nodes}))
    assert (counts.total, counts.free, counts.unavailable) == (3, 1, 2)


def test_queued_ids_cut_short_name_no_job():
    stdout = (
        "Job ID     User Queue Name SessID NDS TSK Memory Time S Time\n"
        "---------- ---- ----- ---- ------ --- --- ------ ---- - ----\n"
        "1234567*   al   q     a    --     1   1   --     00:10 Q 11:25\n"
        "8.s        al*  q     b    --     1   1   --     00:10 Q 11:30\n"
    )
    assert PBSPRO.parse_positions(stdout) == {"8.s": 1}


def test_pbs_times_durations_and_exit_statuses_at_their_edges():
    assert pbstext.parse_pbs_time("1764100000") == datetime.fromtimestamp(1764100000)
    assert pbstext.pbs_walltime("01:30:00.000") == "1:30:00"
    assert pbstext.pbs_walltime("1:00:00:00") == ""
    assert pbstext.finished_state(255) is JobState.DONE
    assert pbstext.finished_state(256) is JobState.FAILED
    assert [pbstext.exit_reason(s) for s in (None, 0, 256, 257, -1)] == [
        "",
        "",
        "",
        "killed by signal 1",
        "the batch system could not run the job (exit status -1)",
    ]


def test_a_record_without_attributes_is_a_waiting_job_with_nothing_guessed():
    infos = PBSPRO.parse_status('{"Jobs": {"7.srv": {}}}', ["7", "8"])
    assert infos == {
        "7": JobInfo(job_id="7", state=JobState.PENDING),
        "8": JobInfo(job_id="8", state=JobState.GONE),
    }
    with pytest.raises(SchedulerError, match="^qstat printed JSON we cannot read"):
        PBSPRO.parse_status("{", ["7"])


def test_state_letters_beyond_queued_and_running():
    assert PBSPRO.job_state("B", None) is JobState.RUNNING  # an array job that has begun
    assert PBSPRO.job_state("X", 0) is JobState.DONE  # a subjob that finished
    assert PBSPRO.job_state("Running", None) is JobState.RUNNING  # its first letter counts


def test_jobs_under_the_slurm_wrappers_see_slurms_job_id():
    assert PBSAdapter("slurm-torque").job_id_variable == "SLURM_JOB_ID"
    assert PBSAdapter("torque").job_id_variable == PBSAdapter("pbspro").job_id_variable
    assert PBSAdapter("pbspro").job_id_variable == "PBS_JOBID"


def test_qstat_records_join_cut_values_and_skip_what_is_no_record():
    text = (
        "    orphan = before any record\n"
        "Job Id: 7.srv\n"
        "\tcut off, before any attribute\n"
        "    Job_Name = jupyterhub-a\n"
        "    comment =\n"
        "    Variable_List = A=1,B=two\n"
        "\t words,C=3\n"
        "\tE = 5\n"
        "        ,D = 4\n"
        "    not an attribute line\n"
        "qstat: a stray line\n"
        "    stray = after stray text\n"
        "Job Id: 8.srv\n"
        "    job_state = R\n"
    )
    assert parse_records(text, pbstext.JOB_HEADER) == [
        (
            "7.srv",
            {
                "Job_Name": "jupyterhub-a",
                "comment": "",
                "Variable_List": "A=1,B=two words,C=3E = 5,D = 4not an attribute line",
            },
        ),
        ("8.srv", {"job_state": "R"}),
    ]


def test_an_exec_host_placeholder_names_no_node():
    assert exec_host_nodes("--") == []
    assert exec_host_nodes("cn1/0+--") == ["cn1"]


def test_an_enabled_queue_without_a_started_attribute_is_stopped():
    listed = {"workq": {"enabled": "True"}}
    assert PBSPRO.parse_queues(json.dumps({"Queue": listed}))["workq"].state == "stopped"
