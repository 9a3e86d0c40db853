"""The queue table, walltime spellings and the one validation every way in uses."""

import pytest

from hubdash.spawner.extras import parse_extra_settings
from hubdash.spawner.options import (
    ConfigError,
    OptionsError,
    QueueSpec,
    allowed_queues,
    parse_queue_table,
    validate_options,
)
from hubdash.walltime import WalltimeError, parse_walltime

QUEUES = parse_queue_table(
    {
        "debug": {
            "max_walltime": "1:00:00",
            "default_walltime": "0:30:00",
            "max_nodes": 2,
            "max_engines": 16,
            "engines_per_node": 8,
        },
        "batch": {"max_walltime": "24:00:00", "max_nodes": 4, "groups": ["physics"]},
        "vip": {"max_walltime": "2:00:00", "users": ["bob"]},
    }
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 5400), ("1:30:00", 5400), ("1-00:00:00", 86400), ("10:30", 630), ("2-1", 176400)],
)
def test_walltime_accepts_usual_hpc_spellings(text, seconds):
    assert parse_walltime(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "0", "abc", "1:2:3:4", "1;rm -rf ~", "$(id)", "1:60:00", "-5"]
)
def test_walltime_refuses_what_is_not_a_duration(text):
    with pytest.raises(WalltimeError):
        parse_walltime(text)


def test_valid_form_data_normalises_walltime():
    options = validate_options(
        {"queue": ["debug"], "walltime": ["45"], "nodes": ["1"], "engines": ["0"]}, QUEUES, "alice"
    )
    assert options.to_user_options() == {
        "queue": "debug",
        "walltime": "0:45:00",
        "nodes": 1,
        "engines": 0,
    }


def test_missing_fields_take_the_queue_defaults():
    options = validate_options({}, QUEUES, "alice")
    assert (options.queue, options.walltime_seconds, options.nodes) == ("debug", 1800, 1)


def test_walltime_over_the_queue_limit_names_limit_and_request():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", "walltime": "2:00:00"}, QUEUES, "alice")
    assert caught.value.errors == {
        "walltime": "queue 'debug' allows at most 1:00:00 of walltime; you asked for 2:00:00"
    }


def test_queue_of_a_group_is_refused_to_outsiders_and_open_to_members():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "batch"}, QUEUES, "alice")
    assert "may not submit to queue 'batch'" in caught.value.errors["queue"]
    assert (
        validate_options({"queue": "batch"}, QUEUES, "alice", groups=["physics"]).queue == "batch"
    )
    assert list(allowed_queues(QUEUES, "bob")) == ["debug", "vip"]


@pytest.mark.parametrize(
    "hostile",
    ["debug; touch /tmp/x", "$(touch /tmp/x)", "debug\n#SBATCH --uid=0", "`id`", "déb" * 100],
)
def test_unknown_queue_names_are_refused_not_passed_on(hostile):
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": hostile}, QUEUES, "alice")
    assert set(caught.value.errors) == {"queue"}
    assert len(caught.value.errors["queue"]) < 200


def test_engines_need_enough_nodes():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", "nodes": 1, "engines": 9}, QUEUES, "alice")
    assert caught.value.errors["engines"] == "9 engines need 2 nodes at 8 per node; you asked for 1"
    assert validate_options({"queue": "debug", "nodes": 2, "engines": 9}, QUEUES, "a").engines == 9


@pytest.mark.parametrize(("field", "value"), [("nodes", "two"), ("nodes", "0"), ("engines", "-1")])
def test_bad_numbers_name_their_field(field, value):
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", field: value}, QUEUES, "alice")
    assert list(caught.value.errors) == [field]
    assert caught.value.errors[field].startswith(field)


def test_unknown_options_are_refused_by_name():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", "partition": "x"}, QUEUES, "alice")
    assert "'partition'" in caught.value.errors["partition"]


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({}, "is empty"),
        ({"bad name": {}}, "queue name"),
        ({"debug": {"max_walltime": "soon"}}, "['debug']['max_walltime']"),
        ({"debug": {"max_nodes": "2"}}, "['debug']['max_nodes'] must be a whole number"),
        ({"debug": {"maxnodes": 2}}, "unknown key(s) ['maxnodes']"),
        ({"debug": {"max_walltime": "1:00:00", "default_walltime": "2:00:00"}}, "default_walltime"),
        ({"debug": {"users": "alice"}}, "['debug']['users'] must be a list"),
    ],
)
def test_bad_queue_table_names_the_setting(table, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_queue_table(table)
    assert "JobSpawner.queues" in str(caught.value)
    assert fragment in str(caught.value)


# --- each limit at its edge: the limit itself is taken, one more is refused -----------------

EDGES = parse_queue_table(
    {
        "small": {
            "max_walltime": "1:00:00",
            "max_nodes": 3,
            "max_engines": 10,  # fewer than 3 nodes hold (12): the two engine rules differ
            "engines_per_node": 4,
        },
        "plain": {"max_walltime": "1:00:00"},  # one node, no engines
    }
)


def refusals(**options) -> dict[str, str]:
    with pytest.raises(OptionsError) as caught:
        validate_options(options, EDGES, "alice")
    return caught.value.errors


def test_nodes_up_to_the_queues_limit_are_taken_and_one_more_is_refused():
    assert validate_options({"queue": "small", "nodes": 3}, EDGES, "alice").nodes == 3
    assert refusals(queue="small", nodes=4) == {
        "nodes": "queue 'small' allows at most 3 node(s); you asked for 4"
    }
    assert refusals(queue="small", nodes=40) == {
        "nodes": "queue 'small' allows at most 3 node(s); you asked for 40"
    }


def test_a_queue_without_max_nodes_takes_one_node():
    assert validate_options({"queue": "plain", "nodes": 1}, EDGES, "alice").nodes == 1
    assert refusals(queue="plain", nodes=2) == {
        "nodes": "queue 'plain' allows at most 1 node(s); you asked for 2"
    }


def test_engines_up_to_the_queues_limit_are_taken_and_one_more_is_refused():
    # 11 engines fit on 3 nodes at 4 per node: only max_engines refuses them.
    assert validate_options({"queue": "small", "nodes": 3, "engines": 10}, EDGES, "a").engines == 10
    assert refusals(queue="small", nodes=3, engines=11) == {
        "engines": "queue 'small' allows at most 10 engines; you asked for 11"
    }


def test_a_queue_without_max_engines_takes_none():
    assert validate_options({"queue": "plain", "engines": 0}, EDGES, "alice").engines == 0
    assert refusals(queue="plain", engines=1) == {
        "engines": "queue 'plain' allows at most 0 engines; you asked for 1"
    }


def test_engines_fill_the_nodes_asked_for_and_not_one_more():
    assert validate_options({"queue": "small", "nodes": 2, "engines": 8}, EDGES, "a").engines == 8
    assert validate_options({"queue": "small", "nodes": 1, "engines": 4}, EDGES, "a").engines == 4
    assert refusals(queue="small", nodes=2, engines=9) == {
        "engines": "9 engines need 3 nodes at 4 per node; you asked for 2"
    }
    assert refusals(queue="small", nodes=1, engines=5) == {
        "engines": "5 engines need 2 nodes at 4 per node; you asked for 1"
    }


def test_too_many_nodes_is_the_one_error_even_with_engines_over_the_limit():
    assert refusals(queue="small", nodes=4, engines=50) == {
        "nodes": "queue 'small' allows at most 3 node(s); you asked for 4"
    }


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"max_nodes": 2, "default_nodes": 3}, "default_nodes must be between 1 and max_nodes"),
        ({"default_nodes": 0}, "default_nodes must be between 1 and max_nodes"),
        ({"max_engines": 4, "default_engines": 5}, "default_engines must be between 0 and"),
        ({"max_engines": 4, "default_engines": -1}, "default_engines must be between 0 and"),
        ({"engines_per_node": 0}, "engines_per_node must be at least 1"),
        ({"max_gpus": 1, "default_gpus": 2}, "default_gpus must be between 0 and max_gpus"),
        ({"max_memory": "1G", "default_memory": "2G"}, "default_memory is larger than"),
    ],
)
def test_queue_defaults_beyond_the_queues_limits_name_the_setting(entry, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_queue_table({"debug": entry})
    assert str(caught.value).startswith("JobSpawner.queues['debug']: ")
    assert fragment in str(caught.value)


def test_queue_defaults_at_the_queues_limits_are_fine():
    entry = {
        "max_walltime": "2:00:00",
        "default_walltime": "2:00:00",
        "max_nodes": 2,
        "default_nodes": 2,
        "max_engines": 4,
        "default_engines": 4,
        "engines_per_node": 1,
        "max_gpus": 2,
        "default_gpus": 2,
        "max_memory": "1G",
        "default_memory": "1G",
    }
    queue = parse_queue_table({"debug": entry})["debug"]
    assert (queue.default_nodes, queue.default_engines, queue.default_gpus) == (2, 4, 2)
    assert (queue.default_walltime, queue.default_memory_mb) == (7200, 1024)


# --- what the user reads: each refusal in full, naming the field and the way out ------------


def test_a_refusal_of_several_fields_names_each_in_its_message():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", "nodes": "0", "walltime": "soon"}, QUEUES, "alice")
    assert caught.value.errors == {
        "nodes": "nodes must be at least 1",
        "walltime": str(pytest.raises(WalltimeError, parse_walltime, "soon").value),
    }
    assert str(caught.value) == "; ".join(f"{k}: {v}" for k, v in caught.value.errors.items())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nodes", "two", "nodes must be a whole number"),
        ("engines", "2.5", "engines must be a whole number"),
        ("nodes", "0", "nodes must be at least 1"),
        ("engines", "-1", "engines must be at least 0"),
        ("walltime", "", "walltime is required"),
        ("nodes", [], "nodes is required"),
    ],
)
def test_bad_numbers_and_empty_fields_are_told_in_plain_words(field, value, message):
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", field: value}, QUEUES, "alice")
    assert caught.value.errors == {field: message}


def test_a_walltime_that_is_no_duration_is_the_one_error():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", "walltime": "soon"}, QUEUES, "alice")
    assert list(caught.value.errors) == ["walltime"]
    assert "soon" in caught.value.errors["walltime"]


def test_a_walltime_of_exactly_the_queues_limit_is_taken():
    options = validate_options({"queue": "debug", "walltime": "1:00:00"}, QUEUES, "alice")
    assert options.walltime_seconds == 3600


def test_an_unknown_queue_is_named_with_the_queues_on_offer():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "nope"}, QUEUES, "bob")
    # One mistake, one error: the other fields take the first offered queue's defaults.
    assert caught.value.errors == {"queue": "there is no queue 'nope'; choose one of: debug, vip"}


def test_a_long_unknown_queue_name_is_cut_in_the_message():
    fits = "q" * 40  # its repr, quotes included, is 42 characters: shown whole
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": fits}, QUEUES, "alice")
    assert caught.value.errors["queue"].startswith(f"there is no queue '{fits}'; choose")
    longer = "q" * 41
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": longer}, QUEUES, "alice")
    assert caught.value.errors["queue"].startswith(f"there is no queue '{'q' * 39}…'; choose")


def test_a_forbidden_queue_is_the_one_error_even_when_other_fields_break_its_limits():
    with pytest.raises(OptionsError) as caught:
        validate_options(
            {"queue": "batch", "walltime": "48:00:00", "nodes": 9, "engines": 99}, QUEUES, "alice"
        )
    assert caught.value.errors == {
        "queue": "you may not submit to queue 'batch'; choose one of: debug"
    }
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "batch"}, QUEUES, "bob")
    assert caught.value.errors == {
        "queue": "you may not submit to queue 'batch'; choose one of: debug, vip"
    }


def test_a_user_offered_no_queue_is_told_so():
    closed = parse_queue_table({"staff": {"users": ["root"]}})
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "staff"}, closed, "alice")
    told = {"queue": "no queue is offered to you here; ask your admin for access"}
    assert caught.value.errors == told
    # The same, whatever was asked for (another name, or nothing): no list of no queues.
    for asked in ({"queue": "other", "walltime": "5"}, {}):
        with pytest.raises(OptionsError) as caught:
            validate_options(asked, closed, "alice")
        assert caught.value.errors == told


def test_unknown_options_are_all_named_with_the_known_ones():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", "partition": "x", "account": "y"}, QUEUES, "alice")
    assert caught.value.errors == {
        "account": "unknown option(s) 'account', 'partition'; "
        "known options: queue, walltime, nodes, engines"
    }


def test_a_long_unknown_option_name_is_cut_in_the_message():
    name = "x" * 60
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", name: "1"}, QUEUES, "alice")
    assert caught.value.errors[name].startswith(f"unknown option(s) '{'x' * 39}; known")


def test_the_forms_xsrf_token_is_not_an_unknown_option():
    options = validate_options({"queue": ["debug"], "_xsrf": ["2|abc"]}, QUEUES, "alice")
    assert options.queue == "debug"


def test_nested_json_is_refused_naming_the_field_and_its_type():
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "debug", "nodes": {"a": 1}}, QUEUES, "alice")
    assert caught.value.errors == {"nodes": "nodes must be text or a number, not dict"}


def test_fields_given_without_a_queue_apply_to_the_first_offered_queue():
    with pytest.raises(OptionsError) as caught:
        validate_options({"walltime": "2:00:00"}, QUEUES, "alice")
    assert set(caught.value.errors) == {"walltime"}
    assert validate_options({"nodes": "2"}, QUEUES, "alice").nodes == 2


def test_missing_fields_take_the_defaults_of_the_queue_asked_for():
    table = parse_queue_table(
        {
            "debug": {"max_walltime": "1:00:00", "default_walltime": "0:20:00"},
            "long": {
                "max_walltime": "8:00:00",
                "default_walltime": "4:00:00",
                "max_nodes": 4,
                "default_nodes": 2,
                "max_engines": 32,
                "default_engines": 12,
            },
        }
    )
    options = validate_options({"queue": "long"}, table, "alice")
    assert (options.walltime_seconds, options.nodes, options.engines) == (14400, 2, 12)


def test_the_queues_default_memory_and_gpus_are_asked_for_only_when_their_fields_are_on():
    table = parse_queue_table(
        {"gpu": {"max_gpus": 2, "default_gpus": 1, "max_memory": "8G", "default_memory": "4G"}}
    )
    accounts_only = parse_extra_settings(["account"])
    options = validate_options({"queue": "gpu"}, table, "alice", extras=accounts_only)
    assert (options.memory_mb, options.gpus, options.account) == (None, None, "")
    memory_only = parse_extra_settings(["memory"])
    assert validate_options({"queue": "gpu"}, table, "alice", extras=memory_only).memory_mb == 4096
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "gpu", "memory": "9G"}, table, "alice", extras=memory_only)
    assert caught.value.errors == {
        "memory": "queue 'gpu' allows at most 8G of memory per node; you asked for 9G"
    }
    gpus_only = parse_extra_settings(["gpus"])
    assert validate_options({"queue": "gpu"}, table, "alice", extras=gpus_only).gpus == 1


def test_extras_of_a_forbidden_queue_are_not_checked_as_well():
    table = parse_queue_table({"open": {}, "gpu": {"max_gpus": 2, "groups": ["ml"]}})
    extras = parse_extra_settings(["memory", "gpus"])
    with pytest.raises(OptionsError) as caught:
        validate_options({"queue": "gpu", "gpus": "9", "memory": "lots"}, table, "a", (), extras)
    assert list(caught.value.errors) == ["queue"]


def test_a_queue_of_users_and_groups_takes_either():
    table = parse_queue_table({"shared": {"users": ["bob"], "groups": ["physics"]}})
    assert list(allowed_queues(table, "bob")) == ["shared"]
    assert list(allowed_queues(table, "carol", ["physics"])) == ["shared"]
    assert list(allowed_queues(table, "alice", ["chemistry"])) == []


def test_stored_options_leave_out_what_was_not_chosen():
    options = validate_options({"queue": "debug", "walltime": "1:00:00"}, QUEUES, "alice")
    assert options.to_user_options() == {
        "queue": "debug",
        "walltime": "1:00:00",
        "nodes": 1,
        "engines": 0,
    }
    extras = parse_extra_settings(["account", "memory", "gpus"])
    table = parse_queue_table({"gpu": {"max_gpus": 2}})
    chosen = validate_options(
        {"queue": "gpu", "account": "p1", "memory": "2G", "gpus": "2"}, table, "a", extras=extras
    )
    assert chosen.to_user_options() == {
        "queue": "gpu",
        "walltime": "1:00:00",
        "nodes": 1,
        "engines": 0,
        "account": "p1",
        "memory": "2G",
        "gpus": 2,
    }


# --- the queue table: what the admin reads when it is wrong, and what the form shows ---------


def test_queue_limits_read_as_one_line_on_the_form():
    table = parse_queue_table(
        {
            "small": {"max_walltime": "0:30:00"},
            "big": {
                "max_walltime": "24:00:00",
                "max_nodes": 4,
                "max_engines": 64,
                "engines_per_node": 16,
                "max_memory": "256G",
                "max_gpus": 4,
            },
        }
    )
    assert table["small"].limits_text() == "walltime up to 0:30:00, up to 1 node"
    assert table["big"].limits_text() == (
        "walltime up to 24:00:00, up to 4 nodes, up to 64 engines, 16 per node, "
        "up to 256G of memory per node, up to 4 GPU(s) per node"
    )


def test_the_default_walltime_is_an_hour_or_the_queues_limit_if_shorter():
    table = parse_queue_table(
        {"short": {"max_walltime": "0:20:00"}, "long": {"max_walltime": "8:00:00"}, "plain": {}}
    )
    assert (table["short"].default_walltime, table["short"].max_walltime) == (1200, 1200)
    assert (table["long"].default_walltime, table["long"].max_walltime) == (3600, 28800)
    assert (table["plain"].default_walltime, table["plain"].max_walltime) == (3600, 3600)


def test_every_key_of_an_entry_is_read():
    entry = {
        "description": "Short test jobs",
        "max_walltime": "2:00:00",
        "default_walltime": "0:10:00",
        "max_nodes": 3,
        "default_nodes": 2,
        "max_engines": 8,
        "default_engines": 4,
        "engines_per_node": 4,
        "users": ["bob"],
        "groups": ["physics"],
        "max_memory": "8G",
        "default_memory": "2G",
        "max_gpus": 2,
        "default_gpus": 1,
        "accounts": ["p1"],
    }
    queue = parse_queue_table({"debug": entry})["debug"]
    assert queue == QueueSpec(
        name="debug",
        description="Short test jobs",
        max_walltime=7200,
        default_walltime=600,
        max_nodes=3,
        default_nodes=2,
        max_engines=8,
        default_engines=4,
        engines_per_node=4,
        users=("bob",),
        groups=("physics",),
        max_memory_mb=8192,
        default_memory_mb=2048,
        max_gpus=2,
        default_gpus=1,
        accounts=("p1",),
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {5: {}},
            "JobSpawner.queues[5]: a queue name may hold only letters, digits and _ . + - "
            "(at most 64 characters)",
        ),
        (
            {"q" * 65: {}},
            f"JobSpawner.queues[{'q' * 65!r}]: a queue name may hold only letters, digits "
            "and _ . + - (at most 64 characters)",
        ),
        ({"debug": 5}, "JobSpawner.queues['debug'] must be a dict of limits, not int"),
        (
            {"debug": {"max_nodes": True}},
            "JobSpawner.queues['debug']['max_nodes'] must be a whole number, not True",
        ),
        (
            {"debug": {"description": 5}},
            "JobSpawner.queues['debug']['description'] must be text, not 5",
        ),
        (
            {"debug": {"groups": 5}},
            "JobSpawner.queues['debug']['groups'] must be a list of names",
        ),
        (
            {"debug": {"max_memory": "lots"}},
            "JobSpawner.queues['debug']['max_memory']: memory 'lots' is not a size: write "
            "megabytes (4096) or a number with M, G or T (4G)",
        ),
        (
            {"debug": {"max_walltime": "1:00:00", "default_walltime": "1:00:01"}},
            "JobSpawner.queues['debug']: default_walltime is longer than max_walltime",
        ),
    ],
)
def test_bad_queue_table_entries_are_named_in_full(table, message):
    with pytest.raises(ConfigError) as caught:
        parse_queue_table(table)
    assert str(caught.value) == message


def test_bad_walltime_and_accounts_in_the_table_name_the_entry():
    with pytest.raises(ConfigError) as caught:
        parse_queue_table({"debug": {"max_walltime": "soon"}})
    assert str(caught.value).startswith("JobSpawner.queues['debug']['max_walltime']: ")
    assert "soon" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_queue_table({"debug": {"accounts": ["ok", "not ok"]}})
    assert str(caught.value).startswith("JobSpawner.queues['debug']['accounts']")
    assert "'not ok'" in str(caught.value)


def test_the_queue_table_of_another_setting_names_that_setting():
    with pytest.raises(ConfigError) as caught:
        parse_queue_table({}, "ClusterConfig.queues")
    assert str(caught.value) == "ClusterConfig.queues is empty: offer at least one queue"


def test_a_queue_name_of_64_characters_is_fine():
    assert list(parse_queue_table({"q" * 64: {}})) == ["q" * 64]
