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
