"""The PBS adapter: Torque 6, PBS Pro/OpenPBS and Slurm's Torque wrappers.

Samples in tests/unit/data: `torque-wrapper-*` and `recorded-torque-wrapper-*` are real
output of the Torque wrappers on the local Slurm 22.05 test cluster (the former recorded by
scripts/record-scheduler-samples, which lists command and exit code in SAMPLES.md; job
ids change with every recording, so these tests take them from there).
`recorded-openpbs-23.06-*` are real output of the test bed's OpenPBS (SAMPLES-pbs.md; the
JSON forms are tested in test_openpbs_adapter.py). `doc-torque-6-*` are written after
Torque's documented output (no such cluster here).
"""

import re

import pytest

from hubdash.schedulers import adapter_for
from hubdash.schedulers.base import JobRequest, JobState, SchedulerAdapter, SchedulerError
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
