"""The Grid Engine adapter, on real Son of Grid Engine 8.1.9 output.

Samples: tests/unit/data/recorded-sge-8.1.9-*, each with the command that produced it in
data/SAMPLES-sge.md (job ids of that run: 7 held, 8 waiting for the disabled hold.q,
9 running, 10 running on two hosts, 11 in error state, 12 too big, 13 suspended;
14 exited 3, 15 killed at its h_rt, 16 a two-host job whose qrsh tasks exited 7).
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from hubdash.schedulers import SCHEDULERS, adapter_for
from hubdash.schedulers.base import JobInfo, JobRequest, JobState, SchedulerError
from hubdash.schedulers.sge import GridEngineAdapter, sge_state, state_reason
from hubdash.schedulers.sgetext import AccountingRecord, accounting_missing, ended_state
from hubdash.schedulers.sgexml import (
    ClusterQueue,
    DetailedJob,
    JobDetails,
    ListedJob,
    QueueInstance,
    parse_cluster_queues,
    parse_host_queues,
    parse_job_details,
    parse_job_list,
)
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


# --- what an admin or user reads of a refusal --------------------------------------------------


@pytest.mark.parametrize(
    ("slots", "message"),
    [
        ("eight", "slots_per_node must be a whole number, not 'eight'"),
        ("-2", "slots_per_node must be 0 or more, not -2"),
    ],
)
def test_slots_per_node_that_cannot_work_are_named(slots, message):
    with pytest.raises(ValueError) as caught:
        GridEngineAdapter(slots_per_node=slots)
    assert str(caught.value) == message


def test_refusals_of_a_request_say_what_to_change():
    with pytest.raises(ValueError) as caught:
        GridEngineAdapter(parallel_environment="").directives(
            JobRequest("j", "q", 60, nodes=2, tasks_per_node=3)
        )
    assert str(caught.value) == (
        "a job of 2 node(s) x 3 slot(s) needs a parallel environment: "
        "set JobSpawner.sge_parallel_environment"
    )
    with pytest.raises(ValueError) as caught:
        SGE.directives(request_with("gpus", 1))
    assert str(caught.value) == (
        "GPUs on Grid Engine are a site-defined resource; hubdash does not ask for them: "
        "offer no 'max_gpus' in the queue table"
    )
    with pytest.raises(ValueError) as caught:
        GridEngineAdapter(slots_per_node=4).directives(
            JobRequest("j", "q", 60, nodes=2, tasks_per_node=5)
        )
    assert str(caught.value) == (
        "5 tasks per node do not fit the 4 slots the parallel environment mpi gives each "
        "node (JobSpawner.sge_slots_per_node): lower the queue's engines_per_node"
    )


@pytest.mark.parametrize("stdout", ["", "Unable to run job: denied.\n"])
def test_qsub_without_a_job_id_is_quoted(stdout):
    with pytest.raises(SchedulerError) as caught:
        SGE.parse_submit(stdout)
    assert str(caught.value) == f"qsub did not print a job id; it printed {stdout.strip()!r}"


def test_a_failed_qstat_is_no_answer_naming_its_exit_and_last_words():
    with pytest.raises(SchedulerError) as caught:
        SGE.parse_lookup(1, "", "x" * 100 + "e" * 400, ["7"])
    assert str(caught.value) == f"qstat failed (exit 1): {'e' * 400}"
    with pytest.raises(SchedulerError) as caught:
        SGE.parse_lookup(2, "", "", ["7"])
    assert str(caught.value) == "qstat failed (exit 2): (no output)"


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        ("<!DOCTYPE x><job_info/>", "Grid Engine printed XML with a document type: refused"),
        ("  \n", "Grid Engine printed no XML"),
        ("<job_info><queue_info>", "Grid Engine printed XML we cannot read: "),
        ("<qhost/>", "qstat printed <qhost> where a job list belongs"),
    ],
)
def test_xml_that_is_no_job_list_is_no_answer_saying_why(stdout, message):
    with pytest.raises(SchedulerError) as caught:
        parse_job_list(stdout)
    assert str(caught.value).startswith(message)


# --- the XML readers, field by field --------------------------------------------------------


def test_a_job_list_merges_task_lines_master_host_first():
    xml = """<?xml version='1.0'?>
<job_info>
  <queue_info>
    <job_list state="pending"><JB_job_number></JB_job_number><state>qw</state></job_list>
    <job_list state="running"><JB_job_number>9</JB_job_number><JB_name>a?>b</JB_name>
      <JB_owner>alice</JB_owner><state>r</state><queue_name>all.q@cn2</queue_name>
      <slots>1</slots><master>SLAVE</master>
      <JB_submission_time>2026-12-04T03:08:20</JB_submission_time>
      <JAT_start_time>2026-12-04T03:08:25</JAT_start_time></job_list>
    <job_list state="running"><JB_job_number>9</JB_job_number><state>r</state>
      <queue_name>all.q@cn1</queue_name><master>SLAVE</master></job_list>
    <job_list state="running"><JB_job_number>9</JB_job_number><state>r</state>
      <queue_name>debug.q@cn1</queue_name><master>MASTER</master></job_list>
    <job_list state="running"><JB_job_number>9</JB_job_number><state>r</state>
      <queue_name>all.q@cn3</queue_name><master>SLAVE</master></job_list>
    <job_list state="running"><JB_job_number>11</JB_job_number><state>r</state>
      <queue_name>all.q@cn4</queue_name><master>SLAVE</master></job_list>
  </queue_info>
  <job_info>
    <job_list state="pending"><JB_job_number>10</JB_job_number><JB_name>b</JB_name>
      <JB_owner>bob</JB_owner><state>qw</state><queue_name></queue_name><slots>x</slots>
      <JB_submission_time>not a time</JB_submission_time></job_list>
  </job_info>
</job_info>"""
    assert parse_job_list(xml) == {
        "9": ListedJob(
            job_id="9",
            state="r",
            name="a?>b",
            owner="alice",
            hosts=["cn1", "cn2", "cn3"],
            queue="debug.q",
            slots=1,
            submitted=datetime(2026, 12, 4, 3, 8, 20),
            started=datetime(2026, 12, 4, 3, 8, 25),
        ),
        "11": ListedJob(job_id="11", state="r", hosts=["cn4"], queue="all.q"),
        "10": ListedJob(job_id="10", state="qw", name="b", owner="bob"),
    }


def test_xml_declaring_an_entity_is_refused_before_it_is_read():
    with pytest.raises(SchedulerError) as caught:
        parse_job_list('<!ENTITY x "y"><job_info/>')
    assert str(caught.value) == "Grid Engine printed XML with a document type: refused"


def test_a_job_in_detail_with_its_queues_errors_and_the_schedulers_messages():
    xml = """<?xml version='1.0'?>
<unknown_jobs>
  <element>
    <ST_name>11</ST_name>
  </element>
</unknown_jobs>
<?xml version='1.0'?>
<detailed_job_info>
  <djob_info>
    <element><JB_job_number>9</JB_job_number><JB_job_name>jupyterhub-a</JB_job_name>
      <JB_owner>alice</JB_owner>
      <JB_hard_queue_list><destin_ident_list><QR_name>debug.q</QR_name></destin_ident_list>
      </JB_hard_queue_list>
      <JB_ja_tasks><ulong_sublist><JAT_status>128</JAT_status>
        <JAT_message_list><ulong_sublist><QIM_message>can't chdir</QIM_message>
        </ulong_sublist><ulong_sublist><QIM_message> </QIM_message></ulong_sublist>
        </JAT_message_list></ulong_sublist></JB_ja_tasks></element>
    <element><JB_job_number>10</JB_job_number>
      <JB_ja_tasks><ulong_sublist><JAT_task_number>128</JAT_task_number>
        <JAT_status>65536</JAT_status></ulong_sublist>
      </JB_ja_tasks></element>
    <element><JB_job_name>no number</JB_job_name></element>
  </djob_info>
  <messages>
    <element>
      <SME_message_list>
        <element><MES_job_number_list><ulong_sublist><ULNG_value>10</ULNG_value>
          </ulong_sublist><ulong_sublist><ULNG_value>77</ULNG_value></ulong_sublist>
          </MES_job_number_list><MES_message>cannot run in queue "all.q@cn1"</MES_message>
        </element>
        <element><MES_job_number_list><ulong_sublist><ULNG_value>10</ULNG_value>
          </ulong_sublist></MES_job_number_list><MES_message></MES_message></element>
      </SME_message_list>
      <SME_global_message_list>
        <element><MES_message>There are no messages available</MES_message></element>
        <element><MES_message>all queues dropped</MES_message></element>
        <element><MES_message></MES_message></element>
      </SME_global_message_list>
    </element>
  </messages>
</detailed_job_info>
<?xml version='1.0'?>
<unknown_jobs><element><ST_name>12</ST_name></element><element><ST_name></ST_name></element>
</unknown_jobs>"""
    assert parse_job_details(xml) == JobDetails(
        jobs={
            "9": DetailedJob(
                job_id="9",
                name="jupyterhub-a",
                owner="alice",
                running=True,
                queues=["debug.q"],
                errors=["can't chdir"],
            ),
            "10": DetailedJob(job_id="10", messages=['cannot run in queue "all.q@cn1"']),
        },
        unknown=["11", "12"],
        global_messages=["all queues dropped"],
    )
    with pytest.raises(SchedulerError) as caught:
        parse_job_details("<job_info/>")
    assert str(caught.value) == "qstat -j printed <job_info> where job details belong"


def test_cluster_queues_with_every_count():
    xml = """<?xml version='1.0'?>
<job_info>
  <cluster_queue_summary><name></name><used>1</used></cluster_queue_summary>
  <cluster_queue_summary><name>all.q</name><load>0.5</load><used>2</used><resv>1</resv>
    <available>3</available><total>8</total><temp_disabled>0</temp_disabled>
    <manual_intervention>2</manual_intervention></cluster_queue_summary>
  <cluster_queue_summary><name>odd.q</name><used>-</used><resv>-1</resv>
  </cluster_queue_summary>
</job_info>"""
    assert parse_cluster_queues(xml) == {
        "all.q": ClusterQueue("all.q", 2, 1, 3, 8, 0, 2),
        "odd.q": ClusterQueue("odd.q", reserved=-1),
    }


def test_host_queues_with_their_slots_state_and_whether_the_host_reports():
    xml = """<?xml version='1.0'?>
<qhost>
  <host name='global'><hostvalue name='load_avg'>-</hostvalue></host>
  <host name='cn1'><hostvalue name='load_avg'>0.01</hostvalue>
    <queue name='all.q'><queuevalue qname='all.q' name='slots_used'>1</queuevalue>
      <queuevalue qname='all.q' name='slots'>4</queuevalue>
      <queuevalue qname='all.q' name='state_string'></queuevalue></queue></host>
  <host name='cn2'><hostvalue name='load_avg'>-</hostvalue>
    <queue name='all.q'><queuevalue qname='all.q' name='state_string'>au</queuevalue></queue>
  </host>
  <host name='cn3'><queue name='debug.q'></queue></host>
  <host><hostvalue name='load_avg'/><queue><queuevalue name='slots'>2</queuevalue></queue></host>
</qhost>"""
    assert parse_host_queues(xml) == [
        QueueInstance("all.q", "cn1", 1, 4, "", True),
        QueueInstance("all.q", "cn2", None, None, "au", False),
        QueueInstance("debug.q", "cn3", None, None, "", False),
        QueueInstance("", "", None, 2, "", False),
    ]
    with pytest.raises(SchedulerError) as caught:
        parse_host_queues("<job_info/>")
    assert str(caught.value) == "qhost printed <job_info> where hosts belong"


@pytest.mark.parametrize(
    ("letters", "reason"),
    [
        ("rs", "suspended (qmod -sj)"),
        ("rS", "suspended: its queue is suspended"),
        ("rT", "suspended: its host is over a load threshold"),
        ("Er", "in error state: an admin must clear it (qmod -cj)"),
        ("t", "being sent to its host"),
    ],
)
def test_a_running_job_that_cannot_answer_waits_and_says_why(letters, reason):
    assert (sge_state(letters), state_reason(letters)) == (JobState.PENDING, reason)


def test_a_parallel_environment_no_directive_may_hold_is_refused_by_name():
    with pytest.raises(ValueError) as caught:
        GridEngineAdapter(parallel_environment="a b")
    assert str(caught.value).startswith("parallel_environment 'a b' cannot go in a directive")


def test_tasks_that_fill_the_slots_of_a_node_fit():
    directives = GridEngineAdapter(slots_per_node=4).directives(
        JobRequest("j", "q", 60, nodes=2, tasks_per_node=4)
    )
    assert "#$ -pe mpi 8" in directives


def test_jobs_asked_about_are_told_apart_by_id_with_the_schedulers_reason():
    listing = "<job_info><queue_info/><job_info/></job_info>"
    assert SGE.parse_lookup(0, listing, "", ["9"]) == {
        "9": JobInfo(job_id="9", state=JobState.GONE, reason="no longer in qstat's listing")
    }
    details = """<detailed_job_info><djob_info>
      <element><JB_job_number>9</JB_job_number><JB_hard_queue_list><destin_ident_list>
        <QR_name>all.q</QR_name></destin_ident_list></JB_hard_queue_list></element>
      </djob_info><messages><element><SME_global_message_list>
        <element><MES_message>queue "all.q@cn1" dropped because it is full</MES_message>
        </element></SME_global_message_list></element></messages></detailed_job_info>"""
    assert SGE.parse_status(details, ["9", "10"]) == {
        "9": JobInfo(
            job_id="9",
            state=JobState.PENDING,
            reason='queue "all.q@cn1" dropped because it is full',
        ),
        "10": JobInfo(job_id="10", state=JobState.GONE),
    }


def test_a_reason_of_many_messages_keeps_three_and_at_most_300_characters():
    def waiting(*messages: str) -> str:
        listed = "".join(f"<element><MES_message>{m}</MES_message></element>" for m in messages)
        xml = (
            "<detailed_job_info><djob_info><element><JB_job_number>9</JB_job_number>"
            "</element></djob_info><messages><element><SME_global_message_list>"
            f"{listed}</SME_global_message_list></element></messages></detailed_job_info>"
        )
        return SGE.parse_status(xml, ["9"])["9"].reason

    assert waiting("a", "b", "c") == "a; b; c"
    assert waiting("a", "b", "c", "d", "e") == "a; b; c (and 2 more)"
    assert waiting("x" * 300) == "x" * 300
    assert waiting("x" * 301) == "x" * 299 + "…"


def test_the_users_jobs_are_those_of_the_user_or_of_no_named_owner():
    xml = """<job_info><queue_info>
      <job_list><JB_job_number>9</JB_job_number><JB_name>a</JB_name><JB_owner>alice</JB_owner>
        <state>r</state></job_list>
      <job_list><JB_job_number>10</JB_job_number><JB_name>b</JB_name><JB_owner>bob</JB_owner>
        <state>r</state></job_list>
      <job_list><JB_job_number>11</JB_job_number><JB_name>c</JB_name><state>r</state></job_list>
    </queue_info></job_info>"""
    assert SGE.parse_user_jobs(xml, "alice") == {"9": "a", "11": "c"}


QACCT_SEPARATOR = "=" * 62


def test_qacct_reads_the_jobs_own_record_among_its_tasks():
    text = "\n".join(
        [
            "a line before any record",
            QACCT_SEPARATOR,
            "qname        debug.q",
            "hostname     cn1",
            "jobnumber    9",
            "qsub_time    Fri Dec  4 03:08:20 2026",
            "end_time     Fri Dec  4 03:10:00 2026",
            "failed       0",
            "exit_status  0",
            QACCT_SEPARATOR,
            "qname        all.q",
            "hostname     cn2",
            "jobnumber    9",
            "qsub_time    Fri Dec  4 03:08:30 2026",
            "end_time     Fri Dec  4 03:10:00 2026",
            "",
            "failed       0",
            QACCT_SEPARATOR,
            "jobnumber    9",
            "qsub_time    Fri Dec  4 03:08:40 2026",
            "failed       0",
            QACCT_SEPARATOR,
            "jobnumber    9",
            "end_time     Fri Dec  4 03:09:00 2026",
        ]
    )
    info = SGE.parse_job_detail(text)
    assert (info.job_id, info.queue, info.nodes, info.state, info.exit_code) == (
        "9",
        "debug.q",
        ["cn1", "cn2"],
        JobState.DONE,
        0,
    )
    with pytest.raises(SchedulerError) as caught:
        SGE.parse_job_detail("x" * 300)
    assert str(caught.value) == f"qacct printed no record: {'x' * 200!r}"


def test_a_record_without_queue_or_host_names_none():
    info = SGE.parse_job_detail(f"{QACCT_SEPARATOR}\nfailed 0\n")
    assert (info.job_id, info.queue, info.nodes) == ("", "", [])


@pytest.mark.parametrize(
    ("failed", "exit_status", "ended"),
    [
        ("100 : assumedly after job", "128", (JobState.FAILED, "failed 100: assumedly after job")),
        ("100", "137", (JobState.CANCELLED, "killed by signal 9")),
        ("37", "137", (JobState.FAILED, "killed at a limit (h_rt, h_cpu or h_vmem)")),
        ("", "0", (JobState.FAILED, "qacct gave no failure code")),
        ("1", "0", (JobState.FAILED, "failed 1")),
    ],
)
def test_how_a_job_ended_in_words(failed, exit_status, ended):
    assert ended_state(AccountingRecord({"failed": failed, "exit_status": exit_status})) == ended


@pytest.mark.parametrize("where", ["stdout", "stderr"])
def test_qacct_without_the_job_is_no_record_yet(where):
    said = {"stdout": "", "stderr": "", where: "error: job id 9 not found\n"}
    assert accounting_missing(said["stdout"], said["stderr"])
    assert not accounting_missing("", "error: qacct cannot open file\n")


def test_queues_keep_their_names_and_hosts_of_unknown_queues_are_skipped():
    summary = """<job_info><cluster_queue_summary><name>all.q</name><total>4</total>
      <manual_intervention>0</manual_intervention></cluster_queue_summary></job_info>"""
    queues = SGE.parse_queues(summary)
    assert (queues["all.q"].name, queues["all.q"].state) == ("all.q", "up")
    hosts = """<qhost><host name='cn1'><hostvalue name='load_avg'>0.1</hostvalue>
      <queue name='other.q'/><queue name='all.q'><queuevalue name='slots_used'>0</queuevalue>
      </queue></host></qhost>"""
    SGE.add_queue_detail(queues, hosts)
    assert (queues["all.q"].nodes_total, queues["all.q"].nodes_free) == (1, 1)
