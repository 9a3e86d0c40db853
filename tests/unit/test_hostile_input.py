"""Hostile input against the one validation, the job script and the command builder.

Nothing a user types may reach a shell as code, add a line to the job script or become an
option: each value is refused by name or ends up as one quoted word in its own place.
Property tests (hypothesis) run the rendered script and the built command lines in real
shells; every value tried is counted in the end-of-run summary (tests/hostile.py).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tornado import web
from traitlets.config import Config

from hubdash.schedulers.base import JobRequest, check_directive_value
from hubdash.schedulers.pbs import PBSAdapter
from hubdash.schedulers.sge import GridEngineAdapter
from hubdash.schedulers.slurm import SlurmAdapter
from hubdash.spawner.extras import DEFAULT_ACCOUNT_PATTERN, parse_extra_settings
from hubdash.spawner.jobscript import JobScript, render_job_script
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.options import JobOptions, OptionsError, parse_queue_table, validate_options
from hubdash.spawner.serverkey import HASHED_KEY_LENGTHS, server_key
from hubdash.transport.base import command_line

from ..hostile import ODD_VALUES, REFUSED, TALLY, payloads
from .job_requests import request_with

QUEUES = parse_queue_table(
    {
        "debug": {"max_walltime": "1:00:00", "max_nodes": 2, "max_engines": 16},
        "gpu": {"max_walltime": "4:00:00", "max_gpus": 4, "max_memory": "64G"},
    }
)
EXTRAS = parse_extra_settings(["account", "memory", "gpus"])
FIELDS = ("queue", "walltime", "nodes", "engines", "account", "memory", "gpus")
# Only text: a marker path in a unit test shows up in what was built, if anywhere.
MARKER = "/tmp/hubdash-pwned-unit"
VALUES = payloads(MARKER) + ODD_VALUES
ADAPTERS = {
    "slurm": SlurmAdapter(),
    "torque": PBSAdapter("torque"),
    "pbspro": PBSAdapter("pbspro"),
    "slurm-torque": PBSAdapter("slurm-torque"),
}
# What a shell reads as more than a letter of a word. Slurm's qsub wrapper joins its
# arguments into a shell line: none of these may reach it.
SHELL_SPECIAL = set("|&;<>()$`\\\"' \t\n\r*?[]#~{}!^")

# Text as users can send it (no lone surrogates: they cannot be UTF-8 on the wire).
any_text = st.text(max_size=40)
hostile_text = st.one_of(st.sampled_from(VALUES), any_text)
argument_text = hostile_text.filter(lambda s: "\x00" not in s)  # argv cannot hold NUL


def request_for(options: JobOptions) -> JobRequest:
    return JobRequest(
        job_name="jupyterhub-alice-default",
        queue=options.queue,
        walltime_seconds=options.walltime_seconds,
        nodes=options.nodes,
        output_path=".hubdash/servers/default/job.log",
        account=options.account,
        memory_mb=options.memory_mb,
        gpus=options.gpus,
    )


def assert_safe(options: JobOptions) -> None:
    """Accepted options are plain: a queue of the table, numbers, an account-shaped name."""
    assert options.queue in QUEUES
    for number in (options.walltime_seconds, options.nodes, options.engines):
        assert type(number) is int and number >= 0
    assert options.account == "" or re.fullmatch(DEFAULT_ACCOUNT_PATTERN, options.account)
    assert options.memory_mb is None or type(options.memory_mb) is int
    assert options.gpus is None or type(options.gpus) is int
    for adapter in ADAPTERS.values():
        text = "\n".join(adapter.directives(request_for(options)))
        assert "pwned" not in text and "touch" not in text


# --- the one validation: form, REST API and opt- URLs -------------------------------------


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", VALUES, ids=[f"value{i}" for i in range(len(VALUES))])
def test_hostile_value_in_any_field_is_refused_by_name_or_neutralised(field, value):
    data = {"queue": "gpu", field: value}
    with TALLY.trying(value) as trial:
        try:
            options = validate_options(data, QUEUES, "alice", extras=EXTRAS)
        except OptionsError as exc:
            assert field in exc.errors, exc.errors
            assert f"{field}: " in str(exc)
            # The value is shown quoted and cut short, never as raw lines.
            message = exc.errors[field]
            assert "\n" not in message and len(message) < 300, message
            trial.refused()
            return
        assert_safe(options)
        trial.accepted()  # validation changes nothing: what it takes is plain as it came


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.one_of(st.sampled_from((*FIELDS, "_xsrf", "partition")), any_text),
        json_values,
        max_size=6,
    )
)
def test_any_json_user_options_are_refused_by_name_or_are_plain(options):
    with TALLY.trying(options) as trial:
        try:
            result = validate_options(options, QUEUES, "bob", extras=EXTRAS)
        except OptionsError as exc:
            assert exc.errors and all(isinstance(name, str) for name in exc.errors)
            trial.refused()
            return
        assert_safe(result)
        trial.accepted()


def test_nested_json_in_a_field_is_refused_by_name_not_a_crash():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": {"debug": 1}, "nodes": [[2]]}, QUEUES, "alice")
    assert caught.value.errors == {
        "queue": "queue must be text or a number, not dict",
        "nodes": "nodes must be text or a number, not list",
    }


# --- the spawner: every way in ends in a 400 before anything reaches the cluster -----------


def make_spawner(name: str = "") -> JobSpawner:
    config = Config()
    config.JobSpawner.login_host = "login.example.org"
    config.JobSpawner.queues = {"debug": {"max_walltime": "1:00:00"}}
    config.JobSpawner.scheduler_precheck = False  # no scheduler here to ask
    user = SimpleNamespace(name="alice", groups=[], url="/user/alice/", escaped_name="alice")
    row = SimpleNamespace(name=name, display_name=name, server=None, state=None)
    return JobSpawner(config=config, user=user, orm_spawner=row)


@pytest.mark.parametrize("value", payloads(MARKER)[:8], ids=[f"payload{i}" for i in range(8)])
def test_hostile_form_post_is_a_400_naming_the_field(value):
    spawner = make_spawner()
    with TALLY.trying(value, REFUSED), pytest.raises(web.HTTPError) as caught:
        asyncio.run(
            spawner.options_from_form({"queue": ["debug"], "walltime": [value], "nodes": ["1"]})
        )
    assert caught.value.status_code == 400
    assert "Please correct the form: walltime: " in caught.value.jupyterhub_message


@pytest.mark.parametrize(
    "user_options",
    [{"queue": {"debug": 1}}, {"queue": ["debug; id"]}, {"nodes": "1; id"}, {"x;id": "1"}],
)
def test_hostile_api_options_are_a_400_before_start(user_options, monkeypatch):
    spawner = make_spawner()
    monkeypatch.setattr(
        JobSpawner, "cluster", property(lambda self: pytest.fail("reached the cluster"))
    )
    with TALLY.trying(user_options, REFUSED):
        with pytest.raises(web.HTTPError) as caught:
            asyncio.run(spawner.apply_user_options(spawner, user_options))
        assert caught.value.status_code == 400
        # start() checks again, for a spawner whose options did not come that way.
        spawner.user_options = user_options
        with pytest.raises(web.HTTPError) as caught:
            _ = spawner.start().send(None)
        assert caught.value.status_code == 400


# --- the job script -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> SimpleNamespace:
    """A home folder and a stand-in `python` that records the argv it was started with."""
    root = tmp_path_factory.mktemp("script-sandbox")
    home = root / "home"
    home.mkdir()
    python = root / "python"
    python.write_text('#!/bin/bash\nprintf \'%s\\0\' "$@" > "$ARGV_OUT"\n')
    python.chmod(0o755)
    return SimpleNamespace(root=root, home=home, python=python, out=root / "argv")


def run_script(sandbox: SimpleNamespace, script: str) -> list[str]:
    path = sandbox.root / "job.sh"
    path.write_text(script)
    sandbox.out.unlink(missing_ok=True)
    env = {"HOME": str(sandbox.home), "PATH": "/usr/bin:/bin", "ARGV_OUT": str(sandbox.out)}
    env["SLURM_JOB_ID"] = "77"
    done = subprocess.run(["bash", str(path)], env=env, capture_output=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return sandbox.out.read_bytes().decode().split("\0")[:-1]


def exec_line(script: str) -> int:
    return next(i for i, line in enumerate(script.split("\n")) if line.startswith("exec "))


def job_script(sandbox: SimpleNamespace, username: str, server_name: str, args: list[str]) -> str:
    job = JobScript(
        username=username,
        server_name=server_name,
        state_dir=".hubdash/servers/x",
        python=str(sandbox.python),
        command=["jupyterhub-singleuser", *args],
    )
    request = JobRequest(job_name="jupyterhub-alice-x", queue="debug", walltime_seconds=600)
    return render_job_script(ADAPTERS["slurm"], request, job)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(username=hostile_text, server_name=hostile_text, args=st.lists(argument_text, max_size=4))
def test_rendered_script_runs_hostile_values_only_as_arguments(
    sandbox, username, server_name, args
):
    marker = sandbox.root / "pwned"
    values = [username, server_name, *args]
    values = [v.replace(MARKER, str(marker)) for v in values]
    username, server_name, args = values[0], values[1], values[2:]
    with TALLY.trying(values) as trial:
        script = job_script(sandbox, username, server_name, args)
        plain = job_script(sandbox, "alice", "x", [])
        # Same lines up to the server's start; only the comment line may read differently.
        head = script.split("\n")[: exec_line(script)]
        plain_head = plain.split("\n")[: exec_line(plain)]
        assert len(head) == len(plain_head)
        differ = [i for i, (a, b) in enumerate(zip(head, plain_head, strict=True)) if a != b]
        assert all(head[i].startswith("# Jupyter server for ") for i in differ)
        # bash runs exactly the one command, with every value as one argument of its own.
        assert run_script(sandbox, script) == [
            "-m", "hubdash.job.launcher", "--state-dir", ".hubdash/servers/x", "--job-id", "77",
            "--", "jupyterhub-singleuser", *args,
        ]  # fmt: skip
        assert not marker.exists()
        # Neutralised: an argument quoted, a name's unprintable characters replaced in the
        # comment. Accepted: every value went in as it was (plain words).
        names = (username, server_name)
        trial.taken(
            any(shlex.quote(a) != a for a in args) or not all(n.isprintable() for n in names)
        )


# --- scheduler directives and arguments ------------------------------------------------------

TEXT_FIELDS = ("job_name", "queue", "account", "output_path")
BENIGN = JobRequest(job_name="j", queue="q", walltime_seconds=60, account="a", output_path="o")


@settings(max_examples=400, deadline=None)
@given(
    adapter=st.sampled_from(sorted(ADAPTERS)),
    field=st.sampled_from(TEXT_FIELDS),
    value=hostile_text.filter(bool),
)
def test_directive_values_are_one_plain_word_on_their_own_line(adapter, field, value):
    scheduler = ADAPTERS[adapter]
    fields = {name: getattr(BENIGN, name) for name in (*TEXT_FIELDS, "walltime_seconds")}
    request = JobRequest(**{**fields, field: value})
    with TALLY.trying(value) as trial:
        try:
            lines = scheduler.directives(request)
            argv = scheduler.submit_command("s/job.sh", request)
        except ValueError as exc:
            assert field in str(exc)
            trial.refused()
            return
        assert len(lines) == len(scheduler.directives(BENIGN))
        for line in lines:
            assert line.splitlines() == [line] and line.startswith(scheduler.directive_prefix + " ")
        assert not value.startswith("-")
        assert value in "\n".join(lines) or value in argv
        for item in argv[1:]:
            assert item.isascii() and item.isprintable() and not set(item) & SHELL_SPECIAL
        trial.accepted()  # a plain word of the scheduler's alphabet, as it came


PAYLOADS = payloads(MARKER)


@pytest.mark.parametrize("value", PAYLOADS, ids=[f"payload{i}" for i in range(len(PAYLOADS))])
def test_queue_in_a_scheduler_query_is_refused_not_quoted_into_an_option(value):
    with TALLY.trying(value, REFUSED):
        with pytest.raises(ValueError, match="queue"):
            ADAPTERS["slurm"].position_command(value)
        with pytest.raises(ValueError, match="queue"):
            ADAPTERS["slurm"].test_only_command(
                JobRequest(job_name="j", queue=value, walltime_seconds=60)
            )


# Every adapter, Grid Engine's too: each refusal is said in the same words, field first.
EVERY_ADAPTER = {**ADAPTERS, "sge": GridEngineAdapter()}
WORD = "only letters, digits and _ . + - / = : , @"


@pytest.mark.parametrize("adapter", sorted(EVERY_ADAPTER))
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("job_name", "a b", f"job_name 'a b' cannot go in a directive: {WORD}"),
        ("queue", "-q", "queue '-q' cannot go in a directive: it starts with '-'"),
        ("output_path", "a;b", f"output_path 'a;b' cannot go in a directive: {WORD}"),
        ("account", "a b", f"account 'a b' cannot go in a directive: {WORD}"),
        ("walltime_seconds", 0, "walltime_seconds must be a whole number, at least 1, not 0"),
        ("nodes", 0, "nodes must be a whole number, at least 1, not 0"),
        ("nodes", 2.0, "nodes must be a whole number, at least 1, not 2.0"),
        ("tasks_per_node", True, "tasks_per_node must be a whole number, at least 1, not True"),
        ("memory_mb", 0, "memory_mb must be a whole number, at least 1, not 0"),
    ],
)
def test_a_value_no_directive_may_hold_is_refused_naming_its_field(adapter, field, value, message):
    with pytest.raises(ValueError) as caught:
        EVERY_ADAPTER[adapter].directives(request_with(field, value))
    assert str(caught.value) == message


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_gpus_no_directive_may_hold_are_refused_by_name(adapter):
    with pytest.raises(ValueError) as caught:
        ADAPTERS[adapter].directives(request_with("gpus", -1))
    assert str(caught.value) == "gpus must be a whole number, at least 1, not -1"


def test_a_long_refused_value_is_shown_cut_to_eighty_characters():
    with pytest.raises(ValueError) as caught:
        check_directive_value("job_name", "a b" * 40)
    assert str(caught.value) == f"job_name {('a b' * 40)[:80]!r} cannot go in a directive: {WORD}"


@pytest.mark.parametrize("adapter", sorted(EVERY_ADAPTER))
def test_a_command_argument_no_scheduler_may_read_is_refused_naming_it(adapter):
    scheduler = EVERY_ADAPTER[adapter]
    user = "username" if adapter == "sge" else "user"
    calls = [
        ("script_path", lambda bad: scheduler.submit_command(bad, request_with("job_name", "j"))),
        ("job_name", lambda bad: scheduler.jobs_named_command(bad, "alice")),
        (user, lambda bad: scheduler.jobs_named_command("j", bad)),
        (user, scheduler.user_jobs_command),
    ]
    if scheduler.position_command("q") is not None:
        calls.append(("queue", scheduler.position_command))
    for field, call in calls:
        with pytest.raises(ValueError) as caught:
            call("a b")
        assert str(caught.value) == f"{field} 'a b' cannot go in a directive: {WORD}"


def test_slurms_commands_refuse_a_script_path_or_user_by_name():
    slurm = ADAPTERS["slurm"]
    with pytest.raises(ValueError) as caught:
        slurm.test_only_command(request_with("job_name", "j"), "a b")
    assert str(caught.value) == f"script_path 'a b' cannot go in a directive: {WORD}"
    with pytest.raises(ValueError) as caught:
        slurm.lookup_command(["1", "2"], "a b")
    assert str(caught.value) == f"username 'a b' cannot go in a directive: {WORD}"


def test_a_server_job_is_never_requeued_after_a_node_failure():
    assert "#SBATCH --no-requeue" in ADAPTERS["slurm"].directives(BENIGN)
    for flavor in ("torque", "pbspro", "slurm-torque"):
        assert "#PBS -r n" in ADAPTERS[flavor].directives(BENIGN)
    # sbatch ignores '#PBS -r n': Slurm's qsub wrapper needs it on its command line.
    argv = ADAPTERS["slurm-torque"].submit_command("job.sh", BENIGN)
    assert argv[argv.index("-r") + 1] == "n"


# --- the command builder ----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(argument_text, max_size=5))
def test_command_line_reaches_a_posix_shell_as_the_same_words(argv):
    with TALLY.trying(argv) as trial:
        line = command_line(["printf", "%s\\0", "first", *argv])
        for shell in ("sh", "bash"):
            done = subprocess.run(
                [shell, "-c", line],
                capture_output=True,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                timeout=10,
            )
            assert done.returncode == 0, done.stderr
            words = done.stdout.split(b"\0")[:-1]
            assert words == [b"first", *(a.encode() for a in argv)]
        trial.taken(any(command_line([a]) != a for a in argv))  # quoted, or plain words


def test_nul_in_an_argument_is_refused_before_it_is_sent():
    # sshd would cut the command at the NUL: never send half a command.
    value = "a\x00; touch /tmp/x"
    with TALLY.trying(value, REFUSED), pytest.raises(ValueError, match="NUL"):
        command_line(["echo", value])


# --- server names ---------------------------------------------------------------------------

KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,81}")
# Names as users type them, and names long enough to be cut short in a key.
server_names = st.one_of(hostile_text, st.text(min_size=30, max_size=90))


@settings(max_examples=300, deadline=None)
@given(server_names)
def test_any_server_name_gives_a_safe_folder_and_job_name(name):
    with TALLY.trying(name) as trial:
        spawner = make_spawner(name)
        assert KEY.fullmatch(spawner.server_key), spawner.server_key
        assert ".." not in spawner.state_dir.split("/")
        assert check_directive_value("job_name", spawner.job_name) == spawner.job_name
        trial.taken(spawner.server_key != name)  # escaped or hashed, or kept as it is


@pytest.mark.parametrize("flavor", ["pbspro", "torque"])
def test_the_longest_job_name_is_one_pbs_takes(flavor):
    # PBS Pro's qsub -N: a letter first, then letters, digits, _ - +, at most 230 in all.
    config = Config()
    config.JobSpawner.scheduler = "pbs"
    config.JobSpawner.pbs_flavor = flavor
    config.JobSpawner.job_name_prefix = "j" + "." * 31
    config.JobSpawner.remote_username = "a." + "b" * 30
    config.JobSpawner.hub_id = "h" * 24
    user = SimpleNamespace(name="alice", groups=[], url="/user/alice/", escaped_name="alice")
    row = SimpleNamespace(name="é" * 40, display_name="", server=None, state=None)
    job_name = JobSpawner(config=config, user=user, orm_spawner=row).job_name
    assert len(job_name) == 32 + 1 + 24 + 1 + 32 + 1 + 82 <= 230  # the longest of each part
    if flavor == "pbspro":
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*", job_name), job_name
    else:  # Torque takes any printable characters: the names stay as the admin wrote them
        assert job_name.startswith(f"j{'.' * 31}-{'h' * 24}-a.{'b' * 30}-__c3_a9")


def key_of(name: str) -> str:
    return make_spawner(name).server_key


def look_alikes(name: str) -> list[str]:
    """Names a user can type that are built from `name` and its key: the key itself (a key
    is a name too), the key's key, the escaped text without its leading '_' or with one
    more, the key cut short or grown by a letter, other cases, a hashed key's kept part
    with another hash, and the default server's name and key."""
    key = server_key(name)
    alikes = [key, server_key(key), key[1:], "_" + key, "_" + name, name[1:], key[:-1]]
    alikes += [key + "0", key.upper(), key.lower(), name + "_", "", "default", "_default"]
    if len(key) in HASHED_KEY_LENGTHS:
        kept = key[: key.rindex("-")]
        alikes += [kept, kept[1:], f"{kept}-{'0' * 32}", f"{kept[:-1]}-{key[-32:]}"]
    return [alike for alike in alikes if alike != name]


@st.composite
def two_server_names(draw) -> tuple[str, str]:
    """A name and a look-alike built from it (never drawn apart from it), in either order.

    A key that rewrites an unsafe name ("a~b" -> "a_b-941528e5") must not be what another
    name, safe as it stands, is kept as: two names drawn apart would never meet like that.
    """
    first = draw(server_names)
    second = draw(st.sampled_from(look_alikes(first)))
    return draw(st.permutations([first, second]))


@settings(max_examples=300, deadline=None)
@example(("a~b", "a_b-941528e5"))  # shared a folder and a job name until keys were escaped
@example(("", "default"))  # the default server and a server named after its folder
@given(two_server_names())
def test_different_server_names_never_share_a_folder(names):
    first, second = names
    assert first != second
    assert key_of(first) != key_of(second)


# Names that read like each other's keys, each pair kept apart by one rule of serverkey.py.
LOOK_ALIKES = [
    ("a~b", "a_b-941528e5"),  # shared a folder and a job name until keys were escaped
    ("a b", "_a_20b"),  # an escaped key typed as a name: escaped keys start with '_'
    ("", "default"),  # the default server and a server named after its folder
    ("default", "_default"),
    (".", "_2e"),  # the escape text typed as a name: '_' itself is escaped
    ("a b.", "a_20b."),
    ("_x", "x"),
    ("-rf", "_-rf"),
    ("é", "__c3_a9"),
    ("\ud800", "__ed_a0_80"),  # a lone surrogate has bytes of its own
    ("x" * 64, "x" * 65),  # the longest plain name and the shortest hashed one
    ("x" * 65, "x" * 66),  # two hashed keys with the same kept part
    ("x" * 65, server_key("x" * 65)),
    ("é" * 30, "é" * 31),  # hashed, cut at an escape's edge
]


@pytest.mark.parametrize(("first", "second"), LOOK_ALIKES, ids=range(len(LOOK_ALIKES)))
def test_names_that_read_like_each_others_keys_get_folders_of_their_own(first, second):
    assert first != second
    assert key_of(first) != key_of(second)


def test_look_alike_server_names_get_folders_of_their_own():
    names = ["", "default", ".", "..", "-rf", "a b", "a_b", "a/b", "a\nb", "a~b", "a_b-941528e5"]
    keys = [make_spawner(name).server_key for name in names]
    assert len(set(keys)) == len(names), keys
    assert keys[0] == "default" and keys[6] == "a_b" and keys[10] == "a_b-941528e5"


def test_a_shell_would_read_the_directive_alphabet_as_plain_words():
    # The alphabet check_directive_value allows, joined as the qsub wrapper does.
    value = "a-Z_0.9+b/c=d:e,f@g"
    assert check_directive_value("queue", value) == value
    assert shlex.split(f"sbatch -p {value} -o {value}") == ["sbatch", "-p", value, "-o", value]
    assert not set(value) & SHELL_SPECIAL
