"""Slurm's accounting: what sacctmgr and sacct print, read; the accounts and QOS a user may
charge, checked; the scheduler's refusal before submitting; a forgotten job's end from sacct."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime
from types import SimpleNamespace

import pytest

from hubdash.cluster.queueinfo import QueueInformation
from hubdash.schedulers.base import JobInfo, JobState, SchedulerError, UserAccounting
from hubdash.schedulers.slurm import SlurmAdapter
from hubdash.schedulers.slurmaccounting import (
    month_start,
    parse_accounting,
    parse_associations,
    parse_ended,
    parse_qos,
    parse_usage,
    usage_command,
)
from hubdash.spawner.extras import ExtraError, parse_extra_settings
from hubdash.spawner.formpage import render_options_form
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.options import OptionsError, parse_queue_table, validate_options

from .test_formpage import Page, make_spawner

# As Slurm 22.05's sacctmgr printed them on the test cluster (scripts/testbed/accounting.sh).
ASSOCIATIONS = "proj1|proj2|normal,short|normal\nproj1|proj1|normal,short|normal\n"
QOS = "normal|\nshort|00:30:00\n"
USAGE = "proj1|1|63\nproj1|2|8\nproj2|2|9\nproj2|2|0\nproj1|1|0\n"
NOW = datetime(2026, 12, 4, 22, 54)
ALICE = parse_accounting([ASSOCIATIONS, QOS, USAGE], NOW)


def test_alices_associations_come_default_first_with_their_qos():
    default, accounts, default_qos = parse_associations(ASSOCIATIONS)
    assert default == "proj1"
    assert accounts == {"proj1": ("normal", "short"), "proj2": ("normal", "short")}
    assert default_qos == {"proj1": "normal", "proj2": "normal"}


def test_rows_of_one_account_on_several_partitions_are_merged():
    _, accounts, _ = parse_associations("a|a|normal|normal\na|a|long|normal\n\nbroken line\n")
    assert accounts == {"a": ("normal", "long")}


def test_qos_caps_and_this_months_node_hours():
    assert parse_qos(QOS) == {"normal": None, "short": 1800}
    assert parse_qos("weird|soon\n") == {"weird": None}
    assert parse_usage(USAGE) == {"proj1": round((63 + 16) / 3600, 4), "proj2": 0.005}
    assert parse_usage("proj1|x|3\n|1|\n") == {}
    assert ALICE.since == datetime(2026, 12, 1)


def test_the_usage_question_is_this_months_allocations_cut_to_the_window():
    argv = usage_command("alice", month_start(NOW))
    assert argv[:5] == ["sacct", "-n", "-P", "-X", "-T"]
    assert argv[argv.index("-u") + 1] == "alice"
    assert argv[argv.index("-S") + 1] == "2026-12-01T00:00:00"
    with pytest.raises(ValueError):
        usage_command("alice; id", NOW)


# --- a job slurmctld has forgotten ---------------------------------------------------------


def test_a_gone_job_is_followed_up_in_sacct_and_only_then():
    slurm = SlurmAdapter()
    gone = JobInfo(job_id="42", state=JobState.GONE)
    assert slurm.follow_up_command(gone) == [
        "sacct", "-n", "-P", "-X", "-j", "42", "-o", "JobID,State,ExitCode,NodeList",
    ]  # fmt: skip
    assert slurm.follow_up_command(JobInfo(job_id="42", state=JobState.RUNNING)) is None


def test_sacct_tells_how_a_forgotten_job_ended():
    slurm = SlurmAdapter()
    gone = JobInfo(job_id="42", state=JobState.GONE)
    ended = slurm.complete_lookup(gone, 0, "42|FAILED|7:0|cn[1-2]\n", "")
    assert (ended.state, ended.raw_state, ended.exit_code) == (JobState.FAILED, "FAILED", 7)
    assert ended.nodes == ["cn1", "cn2"]
    assert "sacct" in ended.reason
    killed = slurm.complete_lookup(gone, 0, "42|CANCELLED by 1001|0:15|cn1\n", "")
    assert (killed.state, killed.raw_state, killed.exit_code) == (
        JobState.CANCELLED, "CANCELLED by 1001", 143,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("exit_status", "stdout"),
    [
        (1, "sacct: error: Slurm accounting storage is disabled\n"),  # no slurmdbd
        (0, ""),  # no record
        (0, "43|FAILED|1:0|cn1\n"),  # another job's record
        (0, "42|RUNNING|0:0|cn1\n"),  # slurmdbd has not heard of its end yet
        (0, "42||0:0|cn1\n"),  # a record without a state
    ],
)
def test_without_a_usable_record_gone_stands(exit_status, stdout):
    gone = JobInfo(job_id="42", state=JobState.GONE)
    assert SlurmAdapter().complete_lookup(gone, exit_status, stdout, "") is gone


def test_a_record_without_a_state_is_a_scheduler_error_for_its_reader():
    with pytest.raises(SchedulerError, match="sacct gave job 42 no state"):
        parse_ended("42||0:0|cn1\n", "42")


# --- the choice: accounts and QOS from the accounting ----------------------------------------

QUEUES = parse_queue_table({"debug": {"max_walltime": "1:00:00"}})


def extras(accounting: UserAccounting | None = ALICE):
    plain = parse_extra_settings(["account", "qos"], accounts={"alice": ["from-config"]})
    return (
        plain
        if accounting is None
        else plain.__class__(**{**plain.__dict__, "user_accounting": accounting})
    )


def check(data, accounting: UserAccounting | None = ALICE):
    return validate_options({"queue": "debug", **data}, QUEUES, "alice", (), extras(accounting))


def refusal(data, accounting: UserAccounting | None = ALICE) -> dict[str, str]:
    with pytest.raises(OptionsError) as caught:
        check(data, accounting)
    return caught.value.errors


def test_the_accounting_replaces_the_configured_accounts():
    assert extras().allowed_accounts((), "alice", []) == ("proj1", "proj2")
    assert extras(None).allowed_accounts((), "alice", []) == ("from-config",)
    assert check({"account": "proj2", "qos": "short"}).qos == "short"
    errors = refusal({"account": "from-config"})
    assert errors["account"].endswith("choose one of: proj1, proj2")


def test_a_qos_the_account_does_not_allow_is_refused_naming_those_it_does():
    only_normal = UserAccounting("proj1", {"proj1": ("normal",)}, {"proj1": "normal"})
    assert refusal({"qos": "short"}, only_normal) == {
        "qos": "QOS 'short' is not allowed for your default account; choose one of: normal"
    }
    assert check({"qos": ""}, only_normal).qos == ""  # the association's default


def test_typed_qos_without_accounting_keeps_to_the_safe_alphabet():
    assert check({"qos": "long"}, None).qos == "long"
    with pytest.raises(ExtraError):
        extras(None).check_qos("long; id", "")


def test_qos_reaches_slurm_and_only_slurm_knows_it():
    from hubdash.schedulers.base import JobRequest

    request = JobRequest(job_name="j", queue="debug", walltime_seconds=60, qos="short")
    assert "--qos=short" in SlurmAdapter().submit_options(request)
    spawner = JobSpawner(
        login_host="login.example.org",
        scheduler="pbs",
        form_extras=["qos"],
        user=SimpleNamespace(name="alice", groups=[]),
    )
    with pytest.raises(Exception, match="'qos', which only Slurm knows"):
        _ = spawner.extra_fields


# --- the form, from the cluster's cache --------------------------------------------------


def primed_cluster(accounting: UserAccounting) -> SimpleNamespace:
    info = QueueInformation("login.example.org", ttl=30)

    async def fetch():
        return accounting

    asyncio.run(info.accounting("alice", fetch))
    return SimpleNamespace(queue_info=info)


def test_the_form_lists_the_accounts_qos_and_use_this_month(monkeypatch):
    spawner = make_spawner(form_extras=["account", "qos"], accounts_from_scheduler=True)
    monkeypatch.setattr(JobSpawner, "cluster", property(lambda self: primed_cluster(ALICE)))
    page = Page(render_options_form(spawner))
    assert [o["text"].strip() for o in page.options["account-select"]] == [
        "Your default account (proj1)", "proj1", "proj2",
    ]  # fmt: skip
    assert [o["text"].strip() for o in page.options["qos"]] == [
        "The account's default QOS (normal)", "normal", "short (walltime up to 0:30:00)",
    ]  # fmt: skip
    assert page.text("account-usage") == (
        "Your use this month (since 2026-12-01): proj1 0.02 node-hours, proj2 0.01 node-hours."
    )


def test_an_answer_older_than_the_ttl_is_not_used():
    clock = [0.0]
    info = QueueInformation("c", ttl=30, clock=lambda: clock[0])

    async def fetch():
        return ALICE

    asyncio.run(info.accounting("alice", fetch))
    assert info.cached_accounting("alice").accounting is ALICE
    clock[0] = 31.0
    assert info.cached_accounting("alice") is None


# --- Slurm's word before submitting ----------------------------------------------------------


class AnsweringCluster:
    """A cluster whose `sbatch --test-only` refuses or accepts, counting the questions."""

    def __init__(self, refusal: str = ""):
        self.asked = 0
        self.queue_info = QueueInformation("login.example.org", ttl=30)
        outer = self

        class Client:
            async def estimate_start(self, transport, request, nodes_free=None):
                outer.asked += 1
                if refusal:
                    raise SchedulerError(refusal)
                from hubdash.cluster.startguess import StartGuess

                return StartGuess(datetime.now())

        self.client = Client()
        self.health = None


def precheck_spawner(monkeypatch, cluster: AnsweringCluster) -> JobSpawner:
    spawner = make_spawner(form_extras=["account", "qos"])
    spawner.scheduler_precheck = True
    monkeypatch.setattr(JobSpawner, "cluster", property(lambda self: cluster))
    monkeypatch.setattr(JobSpawner, "user_transport", lambda self: None)
    return spawner


def test_slurms_refusal_comes_back_under_the_field_it_is_about(monkeypatch):
    reason = "sbatch: error: QOSMaxWallDurationPerJobLimit"
    spawner = precheck_spawner(monkeypatch, AnsweringCluster(reason))
    with pytest.raises(OptionsError) as caught:
        asyncio.run(
            spawner.job_options_checked({"queue": "debug", "walltime": "45", "qos": "short"})
        )
    assert caught.value.errors == {"walltime": f"the scheduler would not run this job: {reason}"}


def test_an_accepted_choice_is_not_asked_again_at_once(monkeypatch):
    cluster = AnsweringCluster()
    spawner = precheck_spawner(monkeypatch, cluster)
    data = {"queue": "debug", "walltime": "30"}
    asyncio.run(spawner.job_options_checked(data))
    asyncio.run(spawner.job_options_checked(data))  # the form's POST, then apply_user_options
    assert cluster.asked == 1
    # Later on, the cluster's short-lived cache (the form's estimate) answers; then Slurm.
    spawner._accepted = (spawner._accepted[0], time.monotonic() - 60)
    asyncio.run(spawner.job_options_checked(data))
    assert cluster.asked == 1
    cluster.queue_info._entries.clear()
    spawner._accepted = None
    asyncio.run(spawner.job_options_checked(data))
    assert cluster.asked == 2


def test_the_precheck_can_be_switched_off(monkeypatch):
    cluster = AnsweringCluster("sbatch: error: Invalid account")
    spawner = precheck_spawner(monkeypatch, cluster)
    spawner.scheduler_precheck = False
    asyncio.run(spawner.job_options_checked({"queue": "debug", "walltime": "30"}))
    assert cluster.asked == 0


# --- the questions, exactly as asked, and their readers at their edges ------------------------


def test_the_accounting_questions_as_sacctmgr_and_sacct_read_them():
    from hubdash.schedulers.slurmaccounting import (
        accounting_commands,
        associations_command,
        qos_command,
    )

    assert associations_command("alice") == [
        "sacctmgr", "-n", "-P", "show", "user", "alice", "withassoc",
        "format=DefaultAccount,Account,QOS,DefaultQOS",
    ]  # fmt: skip
    assert qos_command() == ["sacctmgr", "-n", "-P", "show", "qos", "format=Name,MaxWall"]
    assert usage_command("alice", month_start(NOW)) == [
        "sacct", "-n", "-P", "-X", "-T", "-u", "alice", "-S", "2026-12-01T00:00:00",
        "-E", "now", "-o", "Account,NNodes,ElapsedRaw",
    ]  # fmt: skip
    assert accounting_commands("bob", NOW) == [
        associations_command("bob"), qos_command(), usage_command("bob", month_start(NOW)),
    ]  # fmt: skip
    assert SlurmAdapter().accounting_commands("bob", NOW) == accounting_commands("bob", NOW)
    for command in (associations_command, lambda u: usage_command(u, NOW)):
        with pytest.raises(ValueError, match="^user "):
            command("alice bob")


def test_the_month_starts_at_midnight_of_the_first():
    assert month_start(datetime(2026, 12, 4, 22, 54, 31, 999)) == datetime(2026, 12, 1)


def test_readers_skip_odd_lines_and_read_on():
    default, accounts, default_qos = parse_associations(
        "odd\n|||\nproj1|proj1|normal|\nproj1|proj2|long|long\n"
    )
    assert default == "proj1"
    assert accounts == {"proj1": ("normal",), "proj2": ("long",)}
    assert default_qos == {"proj2": "long"}  # an association without a default QOS has none
    assert parse_associations("") == ("", {}, {})
    assert parse_qos("\nnormal||\nshort|00:30:00\n") == {"normal": None, "short": 1800}
    accounting = SlurmAdapter().parse_accounting([ASSOCIATIONS, QOS, USAGE], NOW)
    assert accounting == ALICE
    assert accounting.qos_for("") == ("normal", "short") == accounting.qos_for("proj2")
    assert accounting.qos_for("nope") == ()


# --- asking for a user's accounts ------------------------------------------------------------


class AccountingCluster(AnsweringCluster):
    """A cluster whose accounting answers (or fails), recording who asked with what."""

    def __init__(self, accounting: UserAccounting | None = ALICE, error: str = ""):
        super().__init__()
        self.questions: list[tuple[object, str]] = []
        outer = self

        async def user_accounting(transport, user):
            outer.questions.append((transport, user))
            if error:
                raise SchedulerError(error)
            return accounting

        self.client.user_accounting = user_accounting


def accounting_spawner(monkeypatch, cluster, **settings) -> JobSpawner:
    settings = {"form_extras": ["account", "qos"], "accounts_from_scheduler": True, **settings}
    spawner = make_spawner(remote_username="{username}-hpc", **settings)
    transport = object()
    monkeypatch.setattr(JobSpawner, "cluster", property(lambda self: cluster))
    monkeypatch.setattr(JobSpawner, "user_transport", lambda self: transport)
    spawner.test_transport = transport
    return spawner


def test_the_accounts_are_asked_as_the_cluster_user_over_their_own_connection(monkeypatch):
    cluster = AccountingCluster()
    spawner = accounting_spawner(monkeypatch, cluster)
    answer = asyncio.run(spawner.load_user_accounting())
    assert answer.available and answer.accounting is ALICE
    assert cluster.questions == [(spawner.test_transport, "alice-hpc")]
    assert spawner.extras_for_user().user_accounting is ALICE
    asyncio.run(spawner.load_user_accounting())  # the cluster's cache answers now
    assert len(cluster.questions) == 1


@pytest.mark.parametrize(
    "settings",
    [{"accounts_from_scheduler": False}, {"form_extras": ["memory"]}],
    ids=["switched off", "no account field"],
)
def test_the_accounts_are_not_asked_unless_the_form_shows_them(monkeypatch, settings):
    cluster = AccountingCluster()
    spawner = accounting_spawner(monkeypatch, cluster, **settings)
    assert asyncio.run(spawner.load_user_accounting()) is None
    assert cluster.questions == []
    assert spawner.extras_for_user().user_accounting is None


def test_an_accounting_that_does_not_answer_leaves_typed_accounts_and_says_why(monkeypatch, caplog):
    cluster = AccountingCluster(error="slurmdbd: Connection refused")
    spawner = accounting_spawner(monkeypatch, cluster)
    answer = asyncio.run(spawner.load_user_accounting())
    assert not answer.available
    assert spawner.extras_for_user().user_accounting is None
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        f"Accounts of {spawner._log_name} from the scheduler" in text
        and "from the scheduler unavailable (slurmdbd: Connection refused): typed accounts "
        "are checked against account_pattern"
        in text
        for text in warned
    ), warned


def test_a_cluster_that_does_not_answer_is_not_asked(monkeypatch):
    cluster = AccountingCluster()
    spawner = accounting_spawner(monkeypatch, cluster)

    async def down(max_age=None):
        return "the cluster is unavailable: no answer"

    monkeypatch.setattr(JobSpawner, "unavailable_reason", lambda self, max_age=None: down())
    assert asyncio.run(spawner.load_user_accounting()) is None
    assert cluster.questions == []
    spawner.scheduler_precheck = True
    asyncio.run(spawner.check_with_scheduler(spawner.job_options({"queue": "debug"})))
    assert cluster.asked == 0


# --- the pre-check's key, and where its refusal goes -----------------------------------------


def test_two_servers_of_one_size_share_one_question(monkeypatch):
    cluster = AnsweringCluster()
    asked: list = []
    estimate = cluster.client.estimate_start

    async def recording(transport, request, nodes_free=None):
        asked.append((transport, request))
        return await estimate(transport, request)

    cluster.client.estimate_start = recording
    first = precheck_spawner(monkeypatch, cluster)
    transport = object()
    monkeypatch.setattr(JobSpawner, "user_transport", lambda self: transport)
    data = {"queue": "debug", "walltime": "30"}
    asyncio.run(first.job_options_checked(data))
    second = make_spawner(form_extras=["account", "qos"], server="other")
    second.scheduler_precheck = True
    asyncio.run(second.job_options_checked(data))
    assert cluster.asked == 1  # another job name and output file: the same answer
    ((used, request),) = asked
    assert used is transport
    assert (request.queue, request.walltime_seconds) == ("debug", 1800)


def test_an_accepted_choice_is_asked_again_after_a_while(monkeypatch):
    cluster = AnsweringCluster()
    spawner = precheck_spawner(monkeypatch, cluster)
    data = {"queue": "debug", "walltime": "30"}
    asyncio.run(spawner.job_options_checked(data))
    cluster.queue_info._entries.clear()  # no cached estimate: only the accepted mark stands
    spawner._accepted = (spawner._accepted[0], time.monotonic() - 20)
    asyncio.run(spawner.job_options_checked(data))
    assert cluster.asked == 1
    cluster.queue_info._entries.clear()
    spawner._accepted = (spawner._accepted[0], time.monotonic() - 31)
    asyncio.run(spawner.job_options_checked(data))
    assert cluster.asked == 2
    cluster.queue_info._entries.clear()
    asyncio.run(spawner.job_options_checked({**data, "walltime": "31"}))  # another choice
    assert cluster.asked == 3


@pytest.mark.parametrize(
    ("reason", "field"),
    [
        ("Requested node configuration is not available", "nodes"),
        ("Required partition not available (inactive or drain)", "queue"),
        ("Invalid account or account/partition combination specified", "account"),
        ("QOSMaxWallDurationPerJobLimit", "walltime"),
        ("Invalid generic resource (gres) specification", "scheduler"),  # no GPU field
        ("Invalid qos specification", "qos"),
        ("Memory required by task is not available", "scheduler"),
        ("something else entirely", "scheduler"),
    ],
)
def test_a_refusal_goes_under_the_field_it_names_when_the_form_has_it(monkeypatch, reason, field):
    spawner = precheck_spawner(monkeypatch, AnsweringCluster(reason))
    with pytest.raises(OptionsError) as caught:
        asyncio.run(spawner.job_options_checked({"queue": "debug", "walltime": "30"}))
    assert caught.value.errors == {field: f"the scheduler would not run this job: {reason}"}


def test_readers_read_past_an_odd_line_to_the_record_wanted():
    _, accounts, _ = parse_associations("zeta|alpha|normal|normal\nzeta|zeta|normal|normal\n")
    assert list(accounts) == ["zeta", "alpha"]  # the default account first, whatever its name
    assert parse_usage("proj1|x|3\nproj1|1|3600\n") == {"proj1": 1.0}
    ended = parse_ended("43|FAILED|1:0|cn2\n42|COMPLETED|0:0|(null)\n", "42")
    assert (ended.job_id, ended.state, ended.exit_code, ended.nodes) == (
        "42", JobState.DONE, 0, [],
    )  # fmt: skip
    assert ended.reason == "recorded by Slurm's accounting (sacct)"


def test_the_pre_check_reuses_the_forms_own_estimate(monkeypatch):
    from hubdash.cluster.startguess import StartGuess

    cluster = AnsweringCluster()
    spawner = precheck_spawner(monkeypatch, cluster)
    options = spawner.job_options({"queue": "debug", "walltime": "30"})
    request = spawner.job_request(options)
    # The key the form's estimate API caches under (queueapi.EstimateHandler): a job of
    # another name and output file is the same question.
    key = (spawner.cluster_username, dataclasses.replace(request, job_name="", output_path=""))
    assert spawner.estimate_key(dataclasses.replace(request, job_name="x", output_path="y")) == key

    async def form_estimate():
        return StartGuess(datetime.now())

    asyncio.run(cluster.queue_info.estimate(key, form_estimate))
    asyncio.run(spawner.check_with_scheduler(options))
    assert cluster.asked == 0


# --- the QOS of the account chosen, in the words the user reads ------------------------------

SPLIT = UserAccounting(
    "proj1", {"proj1": ("normal",), "proj2": ("normal", "short")}, {"proj1": "normal"}
)


def test_the_qos_offered_are_the_chosen_accounts_own():
    assert check({"account": "proj2", "qos": "short"}, SPLIT).qos == "short"
    assert refusal({"account": "proj1", "qos": "short"}, SPLIT) == {
        "qos": "QOS 'short' is not allowed for account 'proj1'; choose one of: normal"
    }
    assert extras(SPLIT).qos_choices("proj2") == ("normal", "short")
    assert extras(SPLIT).qos_choices("") == ("normal",)


def test_qos_refusals_read_in_full():
    none_allowed = UserAccounting("p", {"p": ()}, {})
    assert refusal({"qos": "short"}, none_allowed) == {
        "qos": "QOS 'short' is not allowed for your default account; it allows none"
    }
    long = "q" * 41
    assert refusal({"qos": long}, SPLIT)["qos"].startswith(f"QOS '{'q' * 40}…' is not allowed")
    assert refusal({"qos": "q" * 40}, SPLIT)["qos"].startswith(f"QOS '{'q' * 40}' is not")
    assert refusal({"qos": "a b"}, None) == {"qos": "QOS 'a b' is not a QOS name here"}


def test_a_bad_environment_table_is_an_extra_settings_error_naming_it():
    from hubdash.spawner.extras import ExtraConfigError

    with pytest.raises(ExtraConfigError) as caught:
        parse_extra_settings([], environments={"a": {"x": 1}})
    assert str(caught.value) == (
        "JobSpawner.environments['a'] has unknown key(s) ['x']; known keys: "
        "['default', 'description', 'lines', 'modules', 'prefix', 'python']"
    )


def test_a_qos_name_slurm_cannot_take_is_refused_naming_the_qos():
    from hubdash.schedulers.base import JobRequest

    request = JobRequest(job_name="j", queue="debug", walltime_seconds=60, qos="a;b")
    with pytest.raises(ValueError, match="^qos "):
        SlurmAdapter().submit_options(request)


def test_a_job_slurmctld_still_knows_is_not_read_from_sacct():
    running = JobInfo(job_id="42", state=JobState.RUNNING)
    assert SlurmAdapter().complete_lookup(running, 0, "42|FAILED|1:0|cn1\n", "") is running


def test_a_refused_qos_lists_every_one_the_account_allows():
    assert refusal({"account": "proj2", "qos": "long"}, SPLIT) == {
        "qos": "QOS 'long' is not allowed for account 'proj2'; choose one of: normal, short"
    }
