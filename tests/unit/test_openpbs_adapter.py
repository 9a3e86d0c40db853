"""The PBS adapter's 'pbspro' flavor against real OpenPBS 23.06 answers.

Every sample is `recorded-openpbs-23.06-*` in tests/unit/data, recorded on the test bed's
OpenPBS cluster; SAMPLES-pbs.md lists the command and exit code of each, and the jobs that
were queued or running meanwhile (230 held, 231 in the stopped queue hold, 232 running on
pbs-cn1, 233 on two nodes, 234 and 235 waiting for both nodes, 236 asking for three of two
nodes, 237 Torque's spelling, 238 exits 3, 239 runs out of walltime).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from hubdash.cluster.client import SchedulerClient
from hubdash.schedulers import adapter_for, pbsjson
from hubdash.schedulers.base import JobRequest, JobState, SchedulerError
from hubdash.schedulers.pbs import PBSAdapter
from hubdash.transport.base import CommandResult

from .scheduler_samples import recorded, sample

PBSPRO = PBSAdapter("pbspro")
P = "recorded-openpbs-23.06-"

REQUEST = JobRequest(
    job_name="jupyterhub-alice",
    queue="workq",
    walltime_seconds=3600,
    nodes=2,
    tasks_per_node=4,
    output_path=".hubdash/job.log",
    memory_mb=4000,
)


def answer(name: str) -> tuple[list[str], int, str, str]:
    """A recorded command line, its exit code, stdout and stderr ("" where there was none)."""
    argv, exit_status = recorded(P + name, "SAMPLES-pbs.md")
    try:
        stderr = sample(P + name.rsplit(".", 1)[0] + ".stderr.txt")
    except FileNotFoundError:
        stderr = ""
    return argv, exit_status, sample(P + name), stderr


def lookup(name: str) -> dict:
    """The adapter's answer to a recorded `qstat -E -x -f -F json ID...`, as the monitor
    reads it."""
    argv, exit_status, stdout, stderr = answer(name)
    job_ids = argv[6:]
    assert PBSPRO.status_command(job_ids) == argv  # the command hubdash runs is the one recorded
    return PBSPRO.parse_lookup(exit_status, stdout, stderr, job_ids)


def one(name: str):
    (info,) = lookup(name).values()
    return info


# --- flavor and resources -------------------------------------------------------------------


def test_openpbs_is_another_name_for_pbspro():
    adapter = adapter_for("pbs", flavor="openpbs")
    assert (adapter.flavor, adapter.node_spelling, adapter.job_id_variable) == (
        "pbspro",
        "select",
        "PBS_JOBID",
    )


def test_torque_spelling_on_pbspro_gives_the_total_memory_and_no_select():
    adapter = PBSAdapter("pbspro", resource_spelling="nodes")
    options = adapter.submit_options(REQUEST)
    assert "-l nodes=2:ppn=4" in options
    # The server splits the job's mem over the chunks (recorded: nodes=2:ppn=2 with
    # mem=200mb became select=2:ncpus=2:mem=102400KB:mpiprocs=2).
    assert "-l mem=8000mb" in options
    assert not any("select" in option or "place" in option for option in options)


def test_torque_spelling_on_pbspro_cannot_ask_for_gpus():
    adapter = PBSAdapter("pbspro", resource_spelling="nodes")
    with pytest.raises(ValueError, match="pbs_resource_spelling = 'select'"):
        adapter.submit_options(JobRequest(job_name="j", queue="", walltime_seconds=60, gpus=1))


@pytest.mark.parametrize(("flavor", "spelling"), [("torque", "select"), ("pbspro", "chunks")])
def test_a_spelling_the_flavor_does_not_speak_is_refused(flavor, spelling):
    with pytest.raises(ValueError, match="resource spelling"):
        PBSAdapter(flavor, resource_spelling=spelling)


def test_torque_spelling_runs_on_two_nodes_as_the_server_converts_it():
    info = one("qstat-E-x-f-F-json-torque-spelling.json")
    assert (info.state, info.nodes) == (JobState.RUNNING, ["pbs-cn1", "pbs-cn2"])


def test_submit_prints_the_whole_id_and_a_dot_in_the_name_is_taken():
    assert PBSPRO.parse_submit(sample(P + "qsub-held.txt")) == "230.pbs-login"
    argv, exit_status = recorded(P + "qsub-name-with-dot.txt", "SAMPLES-pbs.md")
    assert "hd.dot" in argv and exit_status == 0
    assert PBSPRO.parse_submit(sample(P + "qsub-name-with-dot.txt")) == "241.pbs-login"


# --- status: all ids in one request, as JSON ---------------------------------------------------


def test_all_ids_are_asked_in_one_json_request_with_history():
    assert PBSPRO.status_command(["7.s"]) == ["qstat", "-E", "-x", "-f", "-F", "json", "7.s"]
    # From two tracked jobs on, the monitor asks for all of a user's jobs in one command.
    assert PBSPRO.lookup_batch_min == 2
    assert PBSPRO.lookup_command(["7.s", "8.s"], "alice")[-2:] == ["7.s", "8.s"]


def test_without_E_json_answers_for_the_first_id_only():
    # Why -E: without it qstat asks the server once per id and the JSON form then lists only
    # the first job (232, running); the second (234, queued) is simply not there.
    argv, _, stdout, _ = answer("qstat-x-f-F-json-two-ids-without-E.json")
    info = PBSPRO.parse_status(stdout, argv[5:])
    assert info["232.pbs-login"].state is JobState.RUNNING
    assert info["234.pbs-login"].state is JobState.GONE


def test_several_ids_in_one_request_and_the_unknown_one_is_gone():
    info = lookup("qstat-E-x-f-F-json-three-ids-one-unknown.json")
    assert (info["232.pbs-login"].state, info["232.pbs-login"].nodes) == (
        JobState.RUNNING,
        ["pbs-cn1"],
    )
    assert info["234.pbs-login"].estimated_start == datetime(2026, 12, 4, 11, 48, 33)
    assert info["999999"].state is JobState.GONE  # left out, exit 0


def test_when_no_id_is_known_qstat_names_the_last_and_all_are_gone():
    argv, exit_status, stdout, stderr = answer("qstat-E-x-f-F-json-two-unknown.json")
    assert exit_status == 153 and stderr.strip() == "qstat: Unknown Job Id 999999.pbs-login"
    info = lookup("qstat-E-x-f-F-json-two-unknown.json")
    assert {job.state for job in info.values()} == {JobState.GONE}


def test_text_form_of_several_ids_reads_too():
    # Real OpenPBS text (what Torque's flavor reads): long values wrapped at 80 columns.
    argv, exit_status, stdout, stderr = answer("qstat-x-f-two-ids-and-unknown.txt")
    assert exit_status == 153 and PBSPRO.status_failure_means_gone(exit_status, stderr)
    info = PBSPRO.parse_status(stdout, argv[3:])
    assert info["232.pbs-login"].nodes == ["pbs-cn1"]
    assert info["234.pbs-login"].estimated_start == datetime(2026, 12, 4, 11, 48, 33)
    assert info["234.pbs-login"].reason.endswith("(R: 16 A: 10 T: 16)")
    assert info["999999"].state is JobState.GONE


def test_unknown_id_is_gone():
    info = one("qstat-E-x-f-F-json-unknown.json")
    assert info.state is JobState.GONE


def test_held_job_waits_without_estimate():
    info = one("qstat-E-x-f-F-json-held.json")
    assert (info.state, info.raw_state, info.queue) == (JobState.PENDING, "H", "workq")
    assert (info.nodes, info.estimated_start) == ([], None)


def test_job_in_a_stopped_queue_says_so():
    info = one("qstat-E-x-f-F-json-stopped-queue.json")
    assert (info.state, info.queue) == (JobState.PENDING, "hold")
    assert info.reason == "Not Running: Queue not started."


def test_running_job_has_its_node_and_output_path():
    info = one("qstat-E-x-f-F-json-running.json")
    assert (info.state, info.nodes, info.estimated_start) == (JobState.RUNNING, ["pbs-cn1"], None)
    assert info.output_path == "/dev/null"
    assert info.reason.startswith("Job run at")


def test_queued_jobs_carry_the_schedulers_estimated_start():
    first = one("qstat-E-x-f-F-json-queued-estimated.json")
    second = one("qstat-E-x-f-F-json-queued-second.json")
    assert first.state is JobState.PENDING
    assert first.estimated_start == datetime(2026, 12, 4, 11, 48, 33)
    assert second.estimated_start == datetime(2026, 12, 4, 11, 53, 33)
    assert first.reason == "Not Running: Insufficient amount of resource: ncpus (R: 16 A: 10 T: 16)"


def test_a_job_that_can_never_run_says_why_and_has_no_estimate():
    info = one("qstat-E-x-f-F-json-never.json")
    assert (info.state, info.estimated_start) == (JobState.PENDING, None)
    assert info.reason == "Can Never Run: Not enough total nodes available"


def test_variables_with_odd_characters_still_read():
    assert one("qstat-E-x-f-F-json-odd-variable.json").state is JobState.PENDING


# --- status: how jobs end --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state", "exit_code", "reason_end"),
    [
        ("qstat-E-x-f-F-json-exit3.json", JobState.DONE, 3, "and failed"),
        ("qstat-E-x-f-F-json-two-nodes-finished.json", JobState.DONE, 0, "and finished"),
        ("qstat-E-x-f-F-json-walltime.json", JobState.FAILED, -29, "exceeded resource walltime"),
        ("qstat-E-x-f-F-json-deleted-running.json", JobState.CANCELLED, 271, "by alice@pbs-login"),
        # Deleted before they ran: no exit status, substate 91 (terminated).
        ("qstat-E-x-f-F-json-deleted-queued.json", JobState.CANCELLED, None, "and terminated"),
        ("qstat-E-x-f-F-json-deleted-held.json", JobState.CANCELLED, None, ""),
    ],
)
def test_finished_jobs_end_as_history_says(name, state, exit_code, reason_end):
    info = one(name)
    assert (info.state, info.raw_state, info.exit_code) == (state, "F", exit_code)
    assert info.reason.endswith(reason_end)
    assert info.estimated_start is None


def test_two_node_job_lists_both_hosts():
    assert one("qstat-E-x-f-F-json-two-nodes-finished.json").nodes == ["pbs-cn1", "pbs-cn2"]


def test_without_history_a_finished_job_is_gone():
    argv, exit_status, stdout, stderr = answer("qstat-E-f-F-json-finished-without-x.json")
    assert exit_status == 35 and PBSPRO.status_failure_means_gone(exit_status, stderr)
    assert PBSPRO.parse_status(stdout, argv[5:])["238.pbs-login"].state is JobState.GONE


def test_a_server_that_keeps_no_history_is_no_verdict():
    # qstat -x fails for every job, live or not, while job_history_enable is off.
    stderr = sample(P + "qstat-x-f-F-json-no-history.stderr.txt")
    assert not PBSPRO.status_failure_means_gone(0, stderr)
    with pytest.raises(SchedulerError, match="not configured to maintain job history"):
        PBSPRO.parse_lookup(1, "", stderr, ["2.pbshead"])


def test_json_that_is_not_json_is_an_error_not_a_verdict():
    with pytest.raises(SchedulerError, match="JSON"):
        PBSPRO.parse_status('{"Jobs": {"7.s": ', ["7.s"])


# --- the job's side ----------------------------------------------------------------------------


def test_a_job_sees_its_id_and_both_hosts_in_its_node_file():
    output = sample(P + "job-output-two-nodes.txt").splitlines()
    written = output[0].removeprefix(f"{PBSPRO.job_id_variable}=")
    assert PBSPRO.same_job(written, "233.pbs-login")
    assert output[1].startswith("PBS_NODEFILE=")
    # One line per MPI process (mpiprocs=2 in each of the two chunks), host by host.
    assert output[2:6] == ["pbs-cn1", "pbs-cn1", "pbs-cn2", "pbs-cn2"]


# --- queue positions, queues, nodes, orphans ---------------------------------------------------


def test_positions_follow_the_estimated_start_and_skip_held_jobs():
    argv, _, stdout, _ = answer("qstat-T-w-workq.txt")
    assert PBSPRO.position_command("workq") == argv
    assert PBSPRO.parse_positions(stdout) == {
        "234.pbs-login": 1,
        "235.pbs-login": 2,
        "236.pbs-login": 3,  # no estimate: after those with one
    }


def test_queue_listing_gives_counts_limits_and_state():
    argv, _, stdout, _ = answer("qstat-Q-f-F-json.json")
    assert PBSPRO.queues_command() == argv
    queues = PBSPRO.parse_queues(stdout)
    workq, debug, hold = queues["workq"], queues["debug"], queues["hold"]
    # state_count: Queued:3 Held:2 Running:2
    assert (workq.jobs_pending, workq.jobs_running, workq.max_walltime) == (5, 2, "24:00:00")
    assert (workq.state, debug.max_walltime, debug.state) == ("up", "1:00:00", "up")
    assert (hold.state, hold.jobs_pending) == ("stopped", 1)


@pytest.mark.parametrize(("name", "free"), [("busy", 0), ("idle", 2)])
def test_nodes_are_free_only_when_idle(name, free):
    argv, _, stdout, _ = answer(f"pbsnodes-a-F-json-{name}.json")
    assert PBSPRO.nodes_command() == PBSPRO.queue_detail_command() == argv
    counts = PBSPRO.parse_nodes(stdout)
    assert (counts.total, counts.free, counts.unavailable) == (2, free, 0)


def test_queue_figures_through_the_client_take_node_counts_from_pbsnodes():
    class Canned:
        async def run(self, argv, *, input=None, timeout=30):  # noqa: A002 - the contract's name
            name = "qstat-Q-f-F-json.json" if argv[0] == "qstat" else "pbsnodes-a-F-json-idle.json"
            return CommandResult(0, sample(P + name), "")

    queues = asyncio.run(SchedulerClient("test", PBSPRO).queue_summaries(Canned()))
    assert (queues["workq"].nodes_total, queues["workq"].nodes_free) == (2, 2)


def test_orphans_are_found_by_name_with_qselect():
    argv, _, stdout, _ = answer("qselect-by-name.txt")
    assert PBSPRO.jobs_named_command("hd-run", "alice") == argv
    assert PBSPRO.parse_job_ids(stdout, "hd-run", "alice") == ["232.pbs-login"]


@pytest.mark.parametrize("name", ["qdel-finished.txt", "qdel-unknown.txt"])
def test_qdel_of_a_job_that_is_over_fails_and_says_why(name):
    argv, exit_status, _, stderr = answer(name)
    assert PBSPRO.cancel_command(argv[1:]) == argv
    assert exit_status != 0 and argv[1].split(".")[0] in stderr


# --- the form's start estimate: no what-if query, the queue's own estimates ---------------


def test_backlog_reads_the_waiting_jobs_estimates_and_the_running_jobs_walltime_end():
    argv, _, stdout, _ = answer("qstat-f-F-json-queue-waiting.json")
    assert PBSPRO.backlog_command("workq") == argv
    backlog = PBSPRO.parse_backlog(stdout)
    assert backlog.waiting_starts == [datetime(2026, 12, 4, 13, 47, 6)] * 2
    # hd-both: started 13:37:06 with 10 minutes of walltime, on both nodes.
    assert backlog.running_ends == [(datetime(2026, 12, 4, 13, 47, 6), 2)]


@pytest.mark.parametrize(("name", "waiting", "running"), [("busy", 0, 1), ("empty", 0, 0)])
def test_backlog_of_a_busy_and_of_an_empty_queue(name, waiting, running):
    _, _, stdout, _ = answer(f"qstat-f-F-json-queue-{name}.json")
    backlog = PBSPRO.parse_backlog(stdout)
    assert (len(backlog.waiting_starts), len(backlog.running_ends)) == (waiting, running)


def test_only_pbs_pro_lists_a_backlog_and_the_queue_name_is_checked():
    assert PBSAdapter("torque").backlog_command("workq") is None
    assert PBSAdapter("slurm-torque").backlog_command("workq") is None
    with pytest.raises(ValueError):
        PBSPRO.backlog_command("-x")


class CannedBacklog:
    """qstat -f -F json QUEUE answered from a recorded sample; nothing else is asked."""

    def __init__(self, name: str):
        self.name, self.commands = name, []

    async def run(self, argv, *, input=None, timeout=30):  # noqa: A002 - the contract's name
        self.commands.append(argv)
        return CommandResult(0, sample(P + f"qstat-f-F-json-queue-{self.name}.json"), "")


def free(count):
    async def nodes_free():
        return count

    return nodes_free


def test_estimate_behind_waiting_jobs_is_the_latest_of_their_estimates():
    transport = CannedBacklog("waiting")
    guess = asyncio.run(
        SchedulerClient("test", PBSPRO).estimate_start(
            transport, JobRequest("x", "workq", 600), free(0)
        )
    )
    assert guess.start >= datetime(2026, 12, 4, 13, 47, 6)  # or now, once that is past
    assert "2 jobs waiting" in guess.basis
    assert transport.commands == [["qstat", "-f", "-F", "json", "workq"]]  # no qsub


def test_estimate_of_a_busy_queue_with_none_waiting_is_the_running_jobs_walltime_end():
    guess = asyncio.run(
        SchedulerClient("test", PBSPRO).estimate_start(
            CannedBacklog("busy"), JobRequest("x", "workq", 600, nodes=2), free(0)
        )
    )
    assert guess.start is not None and "walltime" in guess.basis


def test_estimate_of_an_empty_queue_with_free_nodes_is_now():
    guess = asyncio.run(
        SchedulerClient("test", PBSPRO).estimate_start(
            CannedBacklog("empty"), JobRequest("x", "debug", 600), free(2)
        )
    )
    assert guess.start is not None and abs((guess.start - datetime.now()).total_seconds()) < 5
    assert guess.basis == "nodes are free and no job waits in this queue"


# --- JSON the adapter cannot read -------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        ('{"Jobs": {', "qstat printed JSON we cannot read: "),
        ("[1, 2]", "qstat printed JSON that is not an object"),
        ('{"Jobs": [1]}', "qstat printed JSON whose 'Jobs' is not an object"),
    ],
)
def test_json_that_is_no_answer_is_a_scheduler_error_saying_why(stdout, message):
    with pytest.raises(SchedulerError) as caught:
        pbsjson.records(stdout, "Jobs", "qstat")
    assert str(caught.value).startswith(message)
    assert pbsjson.is_json(" \n" + stdout) == stdout.startswith("{")


def test_json_values_read_as_the_text_form_prints_them():
    stdout = (
        '{"Jobs": {"7.pbs": {"job_state": "R", "queue": "workq", "Rerunable": false,'
        ' "Hold_Types": true, "exec_host": "cn1/0*2", "Variable_List": {"A": "1"},'
        ' "x": [1, {"b": 2}], "skipped": 3}, "8.pbs": "not a job"}}'
    )
    records = pbsjson.records(stdout, "Jobs", "qstat")
    assert records == [
        (
            "7.pbs",
            {
                "job_state": "R",
                "queue": "workq",
                "Rerunable": "False",
                "Hold_Types": "True",
                "exec_host": "cn1/0*2",
                "Variable_List.A": "1",
                "x": '1, {"b": 2}',
                "skipped": "3",
            },
        )
    ]
    assert pbsjson.records('{"Jobs": null}', "Jobs", "qstat") == []
