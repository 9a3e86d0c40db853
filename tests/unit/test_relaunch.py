"""Starting a server again with earlier choices: the links that carry them, each server's
recent choices kept in its state, and the spawn form's presets gathered from all servers."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

from traitlets.config import Config

from hubdash.relaunch import (
    PRESETS,
    choice_label,
    launch_link,
    newest_distinct,
    remember_choice,
    start_again_url,
)
from hubdash.serverstate import RecentChoice, ServerState, read_server_state
from hubdash.spawner.formpresets import recent_choices_of
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.options import JobOptions

CHOICES = {
    "queue": "debug",
    "walltime": "0:10:00",
    "nodes": 2,
    "engines": 4,
    "account": "proj 1&2",
    "environment": "py3.12",  # an option this code does not know: carried all the same
}


# --- links ------------------------------------------------------------------------------------


def test_start_again_carries_every_option_in_an_opt_query_of_the_servers_spawn_url():
    url = urlsplit(start_again_url("/hub/", "alice", "run 1", CHOICES))
    assert url.path == "/hub/spawn/alice/run%201"
    assert parse_qsl(url.query) == [(f"opt-{k}", str(v)) for k, v in CHOICES.items()]
    assert not url.fragment


def test_a_launch_link_carries_the_options_in_its_fragment_so_the_hub_starts_nothing():
    url = urlsplit(launch_link("/base/hub/", "alice", "", CHOICES))
    assert url.path == "/base/hub/spawn/alice" and not url.query
    assert dict(parse_qsl(url.fragment)) == {f"opt-{k}": str(v) for k, v in CHOICES.items()}


def test_links_leave_out_what_no_form_field_can_hold():
    options = {"queue": "debug", "gpus": None, "flag": True, "nested": {"a": 1}, "list": [1]}
    assert start_again_url("/hub/", "bob", "", options) == "/hub/spawn/bob?opt-queue=debug"


def test_without_options_start_again_is_the_spawn_form():
    assert start_again_url("/hub/", "bob", "x", {}) == "/hub/spawn/bob/x"
    assert launch_link("/hub/", "bob", "x", None) == "/hub/spawn/bob/x"


def test_a_presets_label_names_each_option_in_its_order():
    label = choice_label(CHOICES)
    assert (
        label == "debug · 0:10:00 · 2 node(s) · 4 engines · account proj 1&2 · environment py3.12"
    )


# --- the recent choices ---------------------------------------------------------------------


def test_the_newest_five_distinct_sets_are_kept_newest_first():
    recent: list[RecentChoice] = []
    for at, walltime in enumerate(["1", "2", "3", "2", "4", "5", "6", "7"]):
        recent = remember_choice(recent, {"queue": "debug", "walltime": walltime}, float(at))
    assert [c.options["walltime"] for c in recent] == ["7", "6", "5", "4", "2"]
    assert len(recent) == PRESETS


def test_the_same_choices_spelled_as_text_or_number_are_one_set():
    older = RecentChoice({"nodes": 2, "queue": "debug"}, 1.0)
    newer = RecentChoice({"queue": "debug", "nodes": "2"}, 2.0)
    assert newest_distinct([older, newer]) == [newer]


def test_recent_choices_are_saved_in_the_state_and_read_back():
    saved = ServerState(recent_choices=[RecentChoice(dict(CHOICES), 1_700_000_000.0)]).to_state()
    back = read_server_state(saved)
    assert back.recent_choices == [RecentChoice(dict(CHOICES), 1_700_000_000.0)]
    assert not back.problems


def test_unreadable_recent_choices_are_named_and_left_out():
    state = {
        "version": 2,
        "recent_choices": [{"options": {"queue": "a"}, "at": 5}, {"options": "x", "at": 1}, 7],
    }
    back = read_server_state(state)
    assert back.recent_choices == [RecentChoice({"queue": "a"}, 5)]
    assert back.problems == [
        "recent_choices[1].options: 'x' is not dict",
        "recent_choices[1]: no options: left out",
        "recent_choices[2]: 7 is not an object",
        "recent_choices[2]: no options: left out",
    ]


def make_spawner() -> JobSpawner:
    config = Config()
    config.JobSpawner.queues = {"debug": {"max_walltime": "1:00:00", "max_nodes": 2}}
    spawner = JobSpawner(
        config=config,
        user=SimpleNamespace(name="alice", groups=[], orm_spawners={}),
        hub=SimpleNamespace(base_url="/hub/"),
    )
    return spawner


def test_a_start_puts_its_checked_options_first_and_they_outlive_stop_and_reload():
    spawner = make_spawner()
    spawner.remember_choices(JobOptions(queue="debug", walltime_seconds=600, nodes=2))
    spawner.remember_choices(JobOptions(queue="debug", walltime_seconds=1200))
    spawner.clear_state()  # JupyterHub's, before each start and after a stop
    state = spawner.get_state()
    again = make_spawner()
    again.load_state(state)
    assert [c.options for c in again.recent_choices] == [
        {"queue": "debug", "walltime": "0:20:00", "nodes": 1, "engines": 0},
        {"queue": "debug", "walltime": "0:10:00", "nodes": 2, "engines": 0},
    ]


def orm_spawner(state=None, user_options=None, started=None) -> SimpleNamespace:
    return SimpleNamespace(
        state=state, user_options=user_options, started=started, last_activity=None
    )


def test_the_forms_presets_are_the_users_newest_sets_across_all_servers():
    def state(*choices: tuple[str, float]) -> dict:
        recent = [RecentChoice({"queue": "debug", "walltime": w}, at) for w, at in choices]
        return ServerState(recent_choices=recent).to_state()

    user = SimpleNamespace(
        orm_spawners={
            "": orm_spawner(state(("10", 30.0), ("20", 10.0))),
            "big": orm_spawner(state(("30", 40.0), ("10", 20.0), ("40", 5.0))),
            # Saved before recent choices were kept: its last user_options, as of its start.
            "old": orm_spawner(
                {}, {"queue": "debug", "walltime": "50"}, datetime(1970, 1, 1, 0, 0, 25)
            ),
            "never": orm_spawner(None, None),
        }
    )
    found = recent_choices_of(user)
    assert [(c.options["walltime"], c.at) for c in found] == [
        ("30", 40.0),
        ("10", 30.0),
        ("50", 25.0),
        ("20", 10.0),
        ("40", 5.0),
    ]
