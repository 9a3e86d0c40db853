"""The queue table, walltime spellings and the one validation every way in uses."""

import pytest

from hubdash.spawner.options import (
    ConfigError,
    OptionsError,
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
